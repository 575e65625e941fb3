#!/usr/bin/env bash
# Joins this node to its OKE cluster as a self-managed node. helm-rdma's provisioner puts this file in the node's
# cloud-init, with the API server host in /etc/oke/oke-apiserver and the cluster CA in /etc/kubernetes/ca.crt.
# The steps follow Oracle's own stack (oracle-quickstart/oci-hpc-oke, terraform/oke-workers.tf and
# files/oke-ubuntu-cloud-init.sh): Ubuntu OKE images ship the `oke` command and join with `oke bootstrap`; Oracle
# Linux OKE images join with /etc/oke/oke-install.sh, given the endpoint and the base64 CA. The API server may not
# answer at once (a new node's instance-principal certificate, a busy control plane), so each attempt is retried.
set -euo pipefail

attempts=20
pause=15

retry() {
    local attempt=1
    until "$@"; do
        if [ "$attempt" -ge "$attempts" ]; then
            echo "helm-rdma: '$*' failed $attempts times; giving up" >&2
            return 1
        fi
        echo "helm-rdma: '$*' failed (attempt $attempt of $attempts); retrying in ${pause}s" >&2
        sleep "$pause"
        attempt=$((attempt + 1))
    done
}

apiserver=$(tr -d '[:space:]' < /etc/oke/oke-apiserver)
ca_file=/etc/kubernetes/ca.crt

if command -v oke > /dev/null 2>&1; then
    echo "helm-rdma: joining ${apiserver} with oke bootstrap"
    retry oke bootstrap
elif [ -f /etc/oke/oke-install.sh ]; then
    echo "helm-rdma: joining ${apiserver} with /etc/oke/oke-install.sh"
    ca_b64=$(base64 -w 0 < "$ca_file")
    retry bash /etc/oke/oke-install.sh --apiserver-endpoint "$apiserver" --kubelet-ca-cert "$ca_b64"
else
    echo "helm-rdma: neither the oke command nor /etc/oke/oke-install.sh is on this node: use an OKE node image" >&2
    exit 1
fi
echo "helm-rdma: the node joined the cluster"
