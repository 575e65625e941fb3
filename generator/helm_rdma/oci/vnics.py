"""The VNICs of OCI instances (the nodes of a cluster), their subnets and network security groups, for the judge of
the group's ports (oci/groupports.py): under hostNetwork the group's ports listen on the node's VNIC addresses, where
the subnet's security lists and the VNIC's NSGs together decide who reaches them.

An instance's VNICs are its VNIC attachments (ComputeClient.list_vnic_attachments, in the instance's compartment,
which GetInstance gives), each VNIC's subnet in its `subnet_id` and its NSGs in its `nsg_ids`
(VirtualNetworkClient.get_vnic): docs.oracle.com, API reference, Core Services, VnicAttachment and Vnic.

The VNICs of nodes not launched yet are those of their instance configuration (ComputeManagementClient.
get_instance_configuration): the primary VNIC's NSGs in instance_details.launch_details.create_vnic_details.nsg_ids
(its subnet is the cluster network's placement, which a pool's instances take), each secondary VNIC's subnet and NSGs
in instance_details.secondary_vnics[].create_vnic_details (the SDK's compute_instance_details.py and
instance_configuration_attach_vnic_details.py)."""

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
    primary: bool = False


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
            vnics = tuple(Vnic(vnic_id=v.id, subnet_id=v.subnet_id, nsg_ids=tuple(v.nsg_ids or ()),
                               primary=bool(v.is_primary)) for v in read)
        except HelmRdmaError as exc:
            found.append(InstanceVnics(instance_id=ocid, problem=str(exc)))
            continue
        # No attached VNIC (still launching, or being terminated): nothing says which rules will reach it.
        found.append(InstanceVnics(instance_id=ocid, vnics=vnics, problem="" if vnics else
                                   f"instance {ocid} has no attached VNIC yet, so its rules could not be read"))
    return found


def configured_vnics(api: CountingApi, config_id: str, *, subnet_id: str) -> tuple[Vnic, ...]:
    """The VNICs instance configuration ``config_id`` gives each node it launches into a cluster network placed in
    ``subnet_id``: the primary (that subnet, the configuration's NSGs), then each secondary VNIC.

    Raises:
        HelmRdmaError: OCI refused or failed the read.
    """
    details = api.call("get_instance_configuration", config_id).instance_details
    launch = getattr(details, "launch_details", None)
    primary = getattr(launch, "create_vnic_details", None)
    vnics = [Vnic(vnic_id=f"the primary VNIC of {config_id}", subnet_id=subnet_id,
                  nsg_ids=tuple(getattr(primary, "nsg_ids", None) or ()), primary=True)]
    for index, attached in enumerate(getattr(details, "secondary_vnics", None) or ()):
        made = attached.create_vnic_details
        vnics.append(Vnic(vnic_id=f"secondary VNIC {index} of {config_id}", subnet_id=str(made.subnet_id or subnet_id),
                          nsg_ids=tuple(made.nsg_ids or ())))
    return tuple(vnics)
