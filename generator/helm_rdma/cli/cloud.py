"""Commands that act on OCI: provision and deprovision the cluster network."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..helmenv import HelmEnv
from .base import ANY_RELEASE, _namespace_option, main


class Duration(click.ParamType):  # type: ignore[type-arg]
    """A duration like helm's: 90m, 2h, 1h30m, 45s (a bare number is seconds)."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        import re

        text = str(value).strip()
        parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", text)
        if re.fullmatch(r"\d+(\.\d+)?", text):
            return float(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            self.fail(f"{value!r} is not a duration; use for example 90m, 2h or 1h30m", param, ctx)
        return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def _oci_options(func: Any) -> Any:
    options = [
        click.option("--auth", type=click.Choice(["api_key", "instance_principal", "workload_identity"]),
                     default="api_key", show_default=True, help="How to sign in to OCI."),
        click.option("--oci-config", default="~/.oci/config", show_default=True, help="OCI config file (api_key)."),
        click.option("--oci-profile", default="DEFAULT", show_default=True, help="Profile in the config file."),
        click.option("--oci-endpoint", envvar="HELM_RDMA_OCI_ENDPOINT", default=None,
                     help="Compute Management endpoint, for dedicated regions or tests [env HELM_RDMA_OCI_ENDPOINT]."),
        click.option("--poll-interval", type=click.FloatRange(0.01), default=10.0, show_default=True,
                     help="Seconds before the first status check; later checks back off to 60 s."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _progress(event: Any) -> None:
    if event.size:
        click.echo(f"helm-rdma: cluster network {event.state}, {event.instances_running}/{event.size} instances "
                   f"running, {event.elapsed_seconds:.0f}s", err=True)
    else:
        click.echo(f"helm-rdma: cluster network {event.state}, {event.elapsed_seconds:.0f}s", err=True)


def _nodes_progress(event: Any) -> None:
    click.echo(f"helm-rdma: nodes Ready {event.ready}/{event.wanted} ({event.total} seen), "
               f"{event.elapsed_seconds:.0f}s", err=True)


@main.command()
@click.option("--from-values", type=click.Path(path_type=Path), help="A vllm-rdma values file (what the hook runs).")
@click.option("--release", type=ANY_RELEASE,
              help="Release the network belongs to (tags); default: --name, or the hook's release.")
@_namespace_option
@click.option("--preset", "-p", help="Shape preset.")
@click.option("--nodes", type=click.IntRange(1, 256), help="Nodes in the cluster network.")
@click.option("--name", help="Cluster network display name.")
@click.option("--compartment", help="Compartment OCID.")
@click.option("--availability-domain", help="Availability domain, e.g. Uocm:US-ASHBURN-AD-1.")
@click.option("--subnet", help="Subnet OCID of the nodes' primary VNIC.")
@click.option("--image", help="Image OCID of the nodes (an OKE GPU image).")
@click.option("--boot-volume-gbs", type=click.IntRange(50), default=512, show_default=True)
@click.option("--ssh-key-file", type=click.Path(path_type=Path), help="Public SSH key for the nodes.")
@click.option("--placement-constraint", type=click.Choice(["SINGLE_TIER", "SINGLE_BLOCK",
                                                           "PACKED_DISTRIBUTION_MULTI_BLOCK"]))
@click.option("--instance-configuration", help="Use this existing instance configuration OCID.")
@click.option("--node-label", metavar="KEY=VALUE",
              help="Initial node label that marks the network's nodes (default helm-rdma.io/cluster-network=RELEASE).")
@click.option("--api-server-host", help="OKE API server host, for self-managed nodes to join.")
@click.option("--cluster-ca-cert-file", type=click.Path(path_type=Path), help="OKE cluster CA certificate file.")
@click.option("--cloud-init-file", type=click.Path(path_type=Path), help="cloud-init user data for the nodes.")
@_oci_options
@click.option("--timeout", type=Duration(), default="2h", show_default=True, help="How long to wait for RUNNING.")
@click.option("--node-timeout", type=Duration(), default="30m", show_default=True,
              help="How long to wait for the nodes to be Ready.")
@click.option("--no-wait-nodes", is_flag=True, help="Do not wait for the nodes to join the cluster.")
@click.option("--output", "-o", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def provision(from_values: Path | None, release: str | None, namespace: str | None, preset: str | None,
              nodes: int | None, name: str | None, compartment: str | None, availability_domain: str | None,
              subnet: str | None, image: str | None, boot_volume_gbs: int, ssh_key_file: Path | None,
              placement_constraint: str | None, instance_configuration: str | None, node_label: str | None,
              api_server_host: str | None, cluster_ca_cert_file: Path | None, cloud_init_file: Path | None,
              auth: str, oci_config: str, oci_profile: str, oci_endpoint: str | None, poll_interval: float,
              timeout: float, node_timeout: float, no_wait_nodes: bool, fmt: str) -> None:
    """Create (or find) the OCI cluster network of RDMA-connected GPU nodes and wait until it is RUNNING.

    Idempotent: a second run finds the network by its tags and returns at once when it is RUNNING; a run after a
    crash resumes and reuses what the crashed run created.
    """
    from ..commands.provision import plan_from_flags, plan_from_values, result_json
    from ..commands.provision import provision as run

    env = HelmEnv.from_environ(namespace=namespace)
    ns = env.namespace or "default"
    if from_values is not None:
        plan = plan_from_values(from_values, release=release or "", namespace=ns)
        if not release:
            raise click.UsageError("--from-values needs --release (the hook passes the release name)")
        if oci_endpoint:
            plan = plan._replace(auth=plan.auth._replace(endpoint=oci_endpoint))
        if no_wait_nodes:
            plan = plan._replace(wait_nodes=False)
    else:
        plan = plan_from_flags(
            preset=preset, nodes=nodes, name=name, compartment=compartment, availability_domain=availability_domain,
            subnet=subnet, image=image, release=release, namespace=ns, boot_volume_gbs=boot_volume_gbs,
            ssh_key_file=ssh_key_file, placement_constraint=placement_constraint,
            instance_configuration=instance_configuration, node_label=node_label, api_server_host=api_server_host,
            cluster_ca_cert_file=cluster_ca_cert_file, cloud_init_file=cloud_init_file, auth=auth,
            oci_config=oci_config, oci_profile=oci_profile, oci_endpoint=oci_endpoint, timeout_seconds=timeout,
            node_timeout_seconds=node_timeout, wait_nodes=not no_wait_nodes)
    result = run(plan, env=env, poll_seconds=poll_interval, on_progress=_progress, on_nodes=_nodes_progress)
    n = result.network
    click.echo(f"helm-rdma: {n.api_calls} OCI API calls", err=True)
    if fmt == "json":
        click.echo(result_json(result))
        return
    rows = [("cluster network", n.cluster_network_id), ("state", n.state),
            ("instances running", f"{n.instances_running}/{plan.spec.size}"),
            ("instance configuration", n.instance_configuration_id),
            ("created by this run", ", ".join(w for w, c in (("cluster network", n.created_cluster_network),
                                                              ("instance configuration",
                                                               n.created_instance_configuration)) if c) or "nothing"),
            ("nodes ready", "not waited for" if result.nodes is None else f"{result.nodes.ready}/{plan.spec.size}"),
            ("api calls", str(n.api_calls)), ("elapsed", f"{n.elapsed_seconds:.0f}s")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {value}")


@main.command()
@click.option("--name", required=True, help="Cluster network display name.")
@click.option("--compartment", required=True, help="Compartment OCID.")
@click.option("--release", type=ANY_RELEASE, help="Release the network belongs to (tags); default: --name.")
@_namespace_option
@_oci_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def deprovision(name: str, compartment: str, release: str | None, namespace: str | None, auth: str,
                oci_config: str, oci_profile: str, oci_endpoint: str | None, poll_interval: float, yes: bool) -> None:
    """Terminate the cluster network NAME and delete its instance configuration: only resources tagged as ours."""
    from ..clusternet import NetworkSpec
    from ..commands.provision import deprovision as run
    from ..ocicloud import OciAuth

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

    result = run(spec, OciAuth(mode=auth, config_file=oci_config, profile=oci_profile, endpoint=oci_endpoint),
                 confirm=confirm, poll_seconds=poll_interval, on_progress=_progress)
    if not result.found_networks and not result.found_configurations:
        click.echo(f"nothing tagged as ours named {name} in the compartment (release {spec.release}, namespace {ns})")
    elif result.removed is None:
        click.echo("nothing terminated")
        sys.exit(1)
    else:
        click.echo(f"terminated {len(result.removed.terminated_networks)} cluster network(s), deleted "
                   f"{len(result.removed.deleted_instance_configurations)} instance configuration(s) "
                   f"in {result.removed.api_calls} OCI API calls")
