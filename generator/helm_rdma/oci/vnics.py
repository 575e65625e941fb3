"""The VNICs of OCI instances (the nodes of a cluster), their subnets and network security groups, for the judge of
the group's ports (oci/groupports.py): under hostNetwork the group's ports listen on the node's VNIC addresses, where
the subnet's security lists and the VNIC's NSGs together decide who reaches them.

An instance's VNICs are its VNIC attachments (ComputeClient.list_vnic_attachments, in the instance's compartment,
which GetInstance gives), each VNIC's subnet in its `subnet_id` and its NSGs in its `nsg_ids`
(VirtualNetworkClient.get_vnic): docs.oracle.com, API reference, Core Services, VnicAttachment and Vnic."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from helm_rdma.errors import HelmRdmaError
from helm_rdma.oci.clients import CountingApi

ATTACHED = "ATTACHED"
# The prefix the OCI cloud controller manager gives a node's spec.providerID (oracle/oci-cloud-controller-manager,
# pkg/cloudprovider/providers/oci/instances.go, providerPrefix).
PROVIDER_PREFIX = "oci://"


@dataclass(frozen=True)
class Vnic:
    """One attached VNIC: its OCID, its subnet and the NSGs it carries."""

    vnic_id: str
    subnet_id: str
    nsg_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceVnics:
    """One instance's attached VNICs; ``problem`` says why they could not be read."""

    instance_id: str
    vnics: tuple[Vnic, ...] = ()
    problem: str = ""


def instance_id(provider_id: str) -> str | None:
    """The instance OCID of a node's spec.providerID (oci://OCID, or the bare OCID), or None for another cloud's."""
    found = provider_id.removeprefix(PROVIDER_PREFIX)
    return found if found.startswith("ocid1.instance.") else None


def instance_vnics(api: CountingApi, instance_ids: Iterable[str]) -> list[InstanceVnics]:
    """The attached VNICs of each instance, with their subnets and NSGs; an instance that cannot be read carries its
    problem (the others are still read)."""
    found = []
    for ocid in instance_ids:
        try:
            compartment = api.call("get_instance", ocid).compartment_id
            attachments = api.all_pages("list_vnic_attachments", compartment, instance_id=ocid)
            read = [api.call("get_vnic", a.vnic_id) for a in attachments
                    if a.lifecycle_state == ATTACHED and a.vnic_id]
            vnics = tuple(Vnic(vnic_id=v.id, subnet_id=v.subnet_id, nsg_ids=tuple(v.nsg_ids or ())) for v in read)
        except HelmRdmaError as exc:
            found.append(InstanceVnics(instance_id=ocid, problem=str(exc)))
            continue
        found.append(InstanceVnics(instance_id=ocid, vnics=vnics))
    return found
