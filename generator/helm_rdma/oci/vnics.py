"""The network security groups on the VNICs of OCI instances (the nodes of a cluster), for `doctor --cluster`: under
hostNetwork the group's ports listen on the node's VNIC addresses, where only an NSG (or the subnet's security list)
filters them.

An instance's VNICs are its VNIC attachments (ComputeClient.list_vnic_attachments, in the instance's compartment,
which GetInstance gives), each VNIC's NSGs in its `nsg_ids` (VirtualNetworkClient.get_vnic): docs.oracle.com, API
reference, Core Services, VnicAttachment and Vnic."""

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
class InstanceVnics:
    """One instance's attached VNICs and the NSGs each carries; ``problem`` says why they could not be read."""

    instance_id: str
    vnics: tuple[tuple[str, tuple[str, ...]], ...] = ()
    problem: str = ""

    @property
    def without_nsg(self) -> tuple[str, ...]:
        """The attached VNICs that carry no NSG."""
        return tuple(vnic for vnic, nsgs in self.vnics if not nsgs)


def instance_id(provider_id: str) -> str | None:
    """The instance OCID of a node's spec.providerID (oci://OCID, or the bare OCID), or None for another cloud's."""
    found = provider_id.removeprefix(PROVIDER_PREFIX)
    return found if found.startswith("ocid1.instance.") else None


def instance_vnics(api: CountingApi, instance_ids: Iterable[str]) -> list[InstanceVnics]:
    """The attached VNICs of each instance and their NSGs; an instance that cannot be read carries its problem (the
    others are still read)."""
    found = []
    for ocid in instance_ids:
        try:
            compartment = api.call("get_instance", ocid).compartment_id
            attachments = api.all_pages("list_vnic_attachments", compartment, instance_id=ocid)
            vnics = tuple((a.vnic_id, tuple(api.call("get_vnic", a.vnic_id).nsg_ids or ()))
                          for a in attachments if a.lifecycle_state == ATTACHED and a.vnic_id)
        except HelmRdmaError as exc:
            found.append(InstanceVnics(instance_id=ocid, problem=str(exc)))
            continue
        found.append(InstanceVnics(instance_id=ocid, vnics=vnics))
    return found
