"""Commands that act on OCI: provision and deprovision the cluster network."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from helm_rdma.cli.base import ANY_RELEASE, _namespace_option, _stacked, main
from helm_rdma.cli.output import columns, emit, output_option
from helm_rdma.cli.params import PRESET, AliasedChoice, Finite, GoDuration
from helm_rdma.datafiles import go_minutes, values_default, values_range
from helm_rdma.helmenv import HelmEnv

if TYPE_CHECKING:
    from helm_rdma.commands.provision import ProvisionFlags, Watch
    from helm_rdma.oci.clients import OciAuth


def _oci_auth(mode: str, config: str, profile: str, endpoint: str | None) -> OciAuth:
    """The sign-in the options give. A --oci-config the user names must exist (bad input, exit 2); the default may be
    absent: the commands then say what they could not read, and how to sign in."""
    from helm_rdma.errors import OciConfigError
    from helm_rdma.oci.clients import OciAuth, check_endpoint

    source = click.get_current_context().get_parameter_source("oci_config")
    if source == click.core.ParameterSource.COMMANDLINE and not os.path.exists(os.path.expanduser(config)):
        raise OciConfigError(path=config, profile=profile, problem="no such file")
    return OciAuth(mode=mode, config_file=config, profile=profile,
                   endpoint=check_endpoint(endpoint, source="--oci-endpoint") if endpoint else None)


def _oci_config_options(purpose: str = "") -> list[Callable[[Any], Any]]:
    """--oci-config and --oci-profile: the API key to sign in to OCI with, ``purpose`` said in their help."""
    return [click.option("--oci-config", default="~/.oci/config", show_default=True,
                         help=f"OCI config file (apiKey){purpose}."),
            click.option("--oci-profile", default="DEFAULT", show_default=True, help="Profile in the config file.")]


def oci_check_options(func: Any) -> Any:
    """install's and upgrade's sign-in for reading the OCI rules that reach the group's ports (--oci-config,
    --oci-profile; --auth instancePrincipal and --oci-endpoint, the hook's options, apply too), handed to the command
    as ``oci`` (an oci.clients.OciAuth)."""

    @functools.wraps(func)
    def command(*args: Any, oci_config: str, oci_profile: str, **kwargs: Any) -> Any:
        network = (kwargs["request"].flag_values or {}).get("clusterNetwork") or {}
        mode = "instancePrincipal" if network.get("auth") == "instancePrincipal" else "apiKey"
        return func(*args, oci=_oci_auth(mode, oci_config, oci_profile, network.get("endpoint")), **kwargs)

    purpose = (", to read the OCI ingress rules that reach the GPU nodes before helm runs (hostNetwork, more than "
               "one node; with --auth instancePrincipal the check signs in as the instance)")
    return _stacked(command, _oci_config_options(purpose))


def _oci_auth_options(func: Any) -> Any:
    """How to sign in to OCI (--auth, --oci-config, --oci-profile, --oci-endpoint), handed to the command as ``auth``
    (an oci.clients.OciAuth)."""
    from helm_rdma.oci.clients import AUTH_ALIASES, AUTH_MODES

    @functools.wraps(func)
    def command(*args: Any, auth: str, oci_config: str, oci_profile: str, oci_endpoint: str | None,
                **kwargs: Any) -> Any:
        return func(*args, auth=_oci_auth(auth, oci_config, oci_profile, oci_endpoint), **kwargs)

    options = [
        click.option("--auth", type=AliasedChoice(AUTH_MODES, AUTH_ALIASES), default="apiKey", show_default=True,
                     help="How to sign in to OCI, spelled as clusterNetwork.auth "
                     f"({', '.join(AUTH_MODES)}); {', '.join(AUTH_ALIASES)} are accepted as aliases."),
        *_oci_config_options(),
        click.option("--oci-endpoint", envvar="HELM_RDMA_OCI_ENDPOINT", default=None,
                     help="Endpoint of every OCI client (Compute Management, Compute, Virtual Network, Container "
                          "Engine), for dedicated regions or a local test server [env HELM_RDMA_OCI_ENDPOINT]."),
    ]
    return _stacked(command, options)


def _oci_options(func: Any) -> Any:
    """How to sign in to OCI and how to wait for it, handed to the command as ``auth`` (an oci.clients.OciAuth) and
    ``watch`` (a commands.provision.Watch)."""

    @functools.wraps(func)
    def command(*args: Any, oci_timeout: float, oci_retry_for: float, poll_interval: float, **kwargs: Any) -> Any:
        return func(*args, watch=_watch(oci_timeout, oci_retry_for, poll_interval), **kwargs)

    options = [
        click.option("--oci-timeout", type=GoDuration(seconds=True, positive=True, most=3600, example="60s"),
                     default="60s", show_default=True,
                     help="How long one OCI request may go unanswered (above 0s, at most 1h)."),
        click.option("--oci-retry-for", type=GoDuration(seconds=True, most=24 * 3600, example="5m"), default="5m",
                     show_default=True,
                     help="How long to keep retrying an OCI request that fails on the network, times out, is "
                          "throttled or meets a server error."),
        click.option("--poll-interval", type=Finite(0.01), default=10.0, show_default=True,
                     help="Seconds before the first status check; later checks back off to 60 s. A request to OCI "
                          "still unanswered is reported at this interval (at most every 30 s)."),
    ]
    return _oci_auth_options(_stacked(command, options))


def _int_or_none(_ctx: Any, _param: Any, value: str | None) -> int | None:
    return None if value is None else int(value)


def _provision_flags(func: Any) -> Any:
    """The network, node and wait flags of provision, handed to the command as one ``flags``
    (a commands.provision.ProvisionFlags)."""

    @functools.wraps(func)
    def command(*args: Any, no_wait_nodes: bool, **kwargs: Any) -> Any:
        from helm_rdma.commands.provision import ProvisionFlags

        names = {f.name for f in dataclasses.fields(ProvisionFlags)}
        given = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
        return func(*args, flags=ProvisionFlags(**given, wait_nodes=not no_wait_nodes), **kwargs)

    options: list[Callable[[Any], Any]] = [
        click.option("--preset", "-p", type=PRESET, help="Shape preset."),
        click.option("--nodes", type=click.IntRange(1, 256), help="Nodes in the cluster network."),
        click.option("--name", help="Cluster network display name."),
        click.option("--compartment", help="Compartment OCID."),
        click.option("--availability-domain", help="Availability domain, e.g. Uocm:US-ASHBURN-AD-1."),
        click.option("--subnet", help="Subnet OCID of the nodes' primary VNIC."),
        click.option("--image", help="Image OCID of the nodes (an OKE GPU image)."),
        click.option("--boot-volume-gbs", type=click.IntRange(50),
                     default=values_default("clusterNetwork.bootVolumeSizeGBs"), show_default=True),
        click.option("--ssh-key-file", type=click.Path(path_type=Path), help="Public SSH key for the nodes."),
        click.option("--placement-constraint", type=click.Choice(["SINGLE_TIER", "SINGLE_BLOCK",
                                                                   "PACKED_DISTRIBUTION_MULTI_BLOCK"])),
        click.option("--instance-configuration", help="Use this existing instance configuration OCID."),
        click.option("--node-label", metavar="KEY=VALUE", help="Initial node label that marks the network's nodes "
                     "(default helm-rdma.io/cluster-network=NAME)."),
        click.option("--oke-cluster", metavar="OCID", help="OKE cluster the nodes join: its private endpoint, CA "
                     "and CNI are read with the Container Engine API and the nodes' cloud-init is generated."),
        click.option("--pod-subnet", metavar="OCID", help="Pod subnet of a VCN-native (OCI_VCN_IP_NATIVE) cluster."),
        click.option("--pod-nsg", "pod_nsgs", multiple=True, metavar="OCID", help="NSG of the pods (repeatable)."),
        click.option("--nsg", "nsgs", multiple=True, metavar="OCID",
                     help="NSG of the nodes' primary VNIC (repeatable): clusterNetwork.nsgIds."),
        click.option("--nvme-raid-level", type=click.Choice(["10", "0"]), callback=_int_or_none,
                     help="RAID level of the nodes' NVMe array (clusterNetwork.nvmeRaidLevel; default "
                          f"{values_default('clusterNetwork.nvmeRaidLevel')})."),
        click.option("--node-package-repository", metavar="URIS",
                     help="Where nodes without the OKE node package install it from when the image's own repository "
                          "fails (clusterNetwork.oke.nodePackageRepository; default Oracle's)."),
        click.option("--max-pods", type=click.IntRange(1, 110), default=values_default("clusterNetwork.oke.maxPods"),
                     show_default=True,
                     help="Pods per node on a VCN-native cluster."),
        click.option("--api-server-host", help="OKE API server host (instead of reading it with --oke-cluster)."),
        click.option("--cluster-ca-cert-file", type=click.Path(path_type=Path),
                     help="OKE cluster CA, base64 (instead of reading it with --oke-cluster)."),
        click.option("--cloud-init-file", type=click.Path(path_type=Path),
                     help="Your own cloud-init for the nodes, used instead of the generated one."),
        _oci_options,
        click.option("--timeout", "timeout_seconds", type=_minutes_of("clusterNetwork.timeoutMinutes"),
                     default=go_minutes(values_default("clusterNetwork.timeoutMinutes")), show_default=True,
                     help="How long to wait for RUNNING."),
        click.option("--node-timeout", "node_timeout_seconds", type=_minutes_of("clusterNetwork.nodeTimeoutMinutes"),
                     default=go_minutes(values_default("clusterNetwork.nodeTimeoutMinutes")), show_default=True,
                     help="How long to wait for the nodes to be Ready."),
        click.option("--no-wait-nodes", is_flag=True, help="Do not wait for the nodes to join the cluster."),
    ]
    return _stacked(command, options)


def _minutes_of(key: str) -> GoDuration:
    """A duration flag above 0 and at most the values schema's maximum of ``key`` (in minutes; its minimum of a minute
    is the chart's, and the tests wait less)."""
    _, most = values_range(key)
    return GoDuration(seconds=True, positive=True, most=most * 60 if most is not None else None,
                      example=go_minutes(values_default(key)))


def _watch(oci_timeout: float, oci_retry_for: float, poll_interval: float) -> Any:
    """How provision and deprovision talk to OCI and report progress, from --oci-timeout, --oci-retry-for and
    --poll-interval."""
    from helm_rdma.commands.provision import Watch
    from helm_rdma.oci.clients import OciPatience

    patience = OciPatience(connect_timeout=min(10.0, oci_timeout), read_timeout=oci_timeout,
                           retry_seconds=oci_retry_for, heartbeat_seconds=min(30.0, max(poll_interval, 0.5)))
    return Watch(poll_seconds=poll_interval, on_progress=_progress, on_wait=_waiting, patience=patience)


def _progress(event: Any) -> None:
    running = f"{event.instances_running}/{event.size} instances running, " if event.size else ""
    click.echo(f"helm-rdma: cluster network {event.state}, {running}{event.elapsed_seconds:.0f}s", err=True)


def _nodes_progress(event: Any) -> None:
    click.echo(f"helm-rdma: nodes Ready {event.ready}/{event.wanted} ({event.total} seen), "
               f"{event.elapsed_seconds:.0f}s", err=True)


def _waiting(event: Any) -> None:
    why = f"; last attempt: {event.last_error}, retrying" if event.last_error else ""
    click.echo(f"helm-rdma: still waiting for OCI at {event.endpoint} ({event.operation}), "
               f"{event.elapsed_seconds:.0f}s{why}", err=True)


@main.command(examples=[
    ("two H100 nodes that join an OKE cluster, signed in with the API key of ~/.oci/config",
     "provision --preset h100 --nodes 2 --name llama405b --oke-cluster ocid1.cluster.oc1.iad.xxx "
     "--compartment ocid1.compartment.oc1..xxx --availability-domain Uocm:US-ASHBURN-AD-1 "
     "--subnet ocid1.subnet.oc1..xxx --image ocid1.image.oc1..xxx"),
    ("what the chart's pre-install hook runs",
     "provision --from-values /etc/helm-rdma/values.json --release llama405b"),
])
@click.option("--from-values", type=click.Path(path_type=Path), help="A vllm-rdma values file (what the hook runs).")
@click.option("--release", type=ANY_RELEASE,
              help="Release the network belongs to (tags); default: --name, or the hook's release.")
@_namespace_option
@_provision_flags
@click.option("--resize", type=click.Choice(["any", "grow", "shrink"]), default="any", show_default=True,
              help="The one direction this run may resize an existing network in: grow (the chart's pre-install, "
                   "pre-upgrade and pre-rollback hook) never shrinks; shrink (its post-upgrade and post-rollback "
                   "hook) never grows nor creates, and removes only nodes without a serving pod of the release.")
@output_option()
def provision(from_values: Path | None, release: str | None, namespace: str | None, flags: ProvisionFlags,
              resize: str, auth: OciAuth, watch: Watch, fmt: str) -> None:
    """Create or find an OCI cluster network and wait for its nodes.

    The cluster network of RDMA-connected GPU nodes is waited for until it is RUNNING, then its nodes until they have
    joined the cluster. Idempotent: a second run finds the network by its tags and returns at once when its nodes
    match; another node count resizes it; another shape, image, availability domain or boot volume is refused
    (exit 2). A run after a crash resumes with what the crashed run created; a network that died is replaced.
    """
    from helm_rdma.commands.provision import plan_from_flags, plan_from_values
    from helm_rdma.commands.provision import provision as run

    env = HelmEnv.from_environ(namespace=namespace)
    ns = env.namespace or "default"
    if from_values is not None:
        plan = plan_from_values(from_values, release=release or "", namespace=ns, name=flags.name,
                                node_label=flags.node_label)
        if not release:
            raise click.UsageError("--from-values needs --release (the hook passes the release name)")
        if auth.endpoint:
            plan = plan._replace(auth=plan.auth._replace(endpoint=auth.endpoint))
        if not flags.wait_nodes:
            plan = plan._replace(wait_nodes=False)
    else:
        plan = plan_from_flags(flags, auth=auth, release=release, namespace=ns)
    plan = plan._replace(resize=resize)
    result = run(plan, env=env, watch=watch, on_nodes=_nodes_progress)
    n = result.network
    click.echo(f"helm-rdma: {n.api_calls} OCI API calls", err=True)
    if n.left_larger:
        click.echo(f"helm-rdma: the network has {n.size} nodes, {plan.spec.size} asked: a grow-only run leaves it "
                   "(the chart's post-upgrade hook removes the idle ones once the workload has shrunk)", err=True)
    if n.state == "ABSENT":
        click.echo(f"helm-rdma: no cluster network {plan.spec.name}: nothing to shrink", err=True)
    rows = [("cluster network", n.cluster_network_id), ("state", n.state),
            ("instances running", f"{n.instances_running}/{plan.spec.size}"),
            ("resized", "no" if n.resized_from is None else f"{n.resized_from} -> {n.size} nodes"),
            ("instances removed", ", ".join(n.removed_instances) or "none"),
            ("instance configuration", n.instance_configuration_id),
            ("created by this run", ", ".join(w for w, c in (("cluster network", n.created_cluster_network),
                                                              ("instance configuration",
                                                               n.created_instance_configuration)) if c) or "nothing"),
            ("nodes ready", "not waited for" if result.nodes is None else f"{result.nodes.ready}/{plan.spec.size}"),
            ("api calls", str(n.api_calls)), ("elapsed", f"{n.elapsed_seconds:.0f}s")]
    emit(result, fmt, table=lambda: columns(rows))


@main.command(examples=[
    ("terminate the network and its instance configuration, after asking",
     "deprovision --name llama405b --compartment ocid1.compartment.oc1..xxx"),
    ("without asking", "deprovision --name llama405b --compartment ocid1.compartment.oc1..xxx --yes"),
])
@click.option("--name", required=True, help="Cluster network display name.")
@click.option("--compartment", required=True, help="Compartment OCID.")
@click.option("--release", type=ANY_RELEASE, help="Release the network belongs to (tags); default: --name.")
@_namespace_option
@_oci_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@output_option()
def deprovision(name: str, compartment: str, release: str | None, namespace: str | None, auth: OciAuth,
                watch: Watch, yes: bool, fmt: str) -> None:
    """Terminate a cluster network and its instance configuration.

    Only the network NAME and configuration tagged as helm-rdma's are touched.
    """
    from helm_rdma.commands.provision import deprovision as run
    from helm_rdma.oci.inputs import check_flags
    from helm_rdma.oci.network import NetworkSpec

    check_flags({"--name": name, "--compartment": compartment}, command="deprovision")
    ns = HelmEnv.from_environ(namespace=namespace).namespace or "default"
    spec = NetworkSpec(name=name, compartment_id=compartment, availability_domain="", subnet_id="", image_id="",
                       shape="", size=0, release=release or name, namespace=ns)

    def confirm(lines: list[str]) -> bool:
        click.echo("helm-rdma: this terminates (the nodes and their local disks go with them):", err=True)
        for line in lines:
            click.echo(f"  {line}", err=True)
        if yes:
            return True
        if not sys.stdin.isatty() and sys.stdin.closed:
            raise click.UsageError("no terminal to confirm on: pass --yes")
        return click.confirm("Terminate them?", default=False, err=True)

    result = run(spec, auth, confirm=confirm, watch=watch)
    removed = result.removed
    data = {"name": name, "release": spec.release, "namespace": ns, "foundNetworks": list(result.found_networks),
            "foundInstanceConfigurations": list(result.found_configurations),
            "terminatedNetworks": list(removed.terminated_networks) if removed else [],
            "deletedInstanceConfigurations": list(removed.deleted_instance_configurations) if removed else [],
            "apiCalls": removed.api_calls if removed else 0}

    def table() -> str:
        if not result.found_networks and not result.found_configurations:
            return f"nothing tagged as ours named {name} in the compartment (release {spec.release}, namespace {ns})"
        if removed is None:
            return "nothing terminated"
        return (f"terminated {len(removed.terminated_networks)} cluster network(s), deleted "
                f"{len(removed.deleted_instance_configurations)} instance configuration(s) in {removed.api_calls} OCI "
                "API calls")

    emit(data, fmt, table=table)
    if removed is None and (result.found_networks or result.found_configurations):
        sys.exit(1)  # the user declined
