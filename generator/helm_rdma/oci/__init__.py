"""Provisioning on OCI with the oci SDK: the cluster network of RDMA-connected GPU nodes, its clients, and the nodes'
join to OKE.
"""
