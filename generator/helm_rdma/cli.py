"""The helm-rdma command line: parse options, call one core function, turn a HelmRdmaError into an exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import HelmRdmaError
from .helmenv import HelmEnv


class Cli(click.Group):
    """A click group that reports our errors as `helm-rdma: error: ...` with their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HelmRdmaError as exc:
            click.echo(f"helm-rdma: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _notice(text: str | None) -> None:
    if text:
        click.echo(f"helm-rdma: {text}", err=True)


def _preset_option(func: Any) -> Any:
    return click.option("--preset", "-p", required=True, help="Shape preset (see `helm-rdma presets`).")(func)


def _chart_options(func: Any) -> Any:
    options = [
        click.option("--model", "-m", help="Catalog model alias; defaults to RELEASE when that is an alias."),
        click.option("--nodes", type=click.IntRange(1, 64), help="Nodes per group; default: the planner's minimum."),
        click.option("--max-model-len", type=click.IntRange(1), help="Context length; default: the model's."),
        click.option("-f", "--values", "value_files", multiple=True, type=click.Path(path_type=Path),
                     help="A values file, applied after the preset and the model (repeatable, in order)."),
        click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
                     help="Set a value, after the -f files (repeatable), e.g. --set vllm.maxModelLen=32768."),
        _preset_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _namespace_option(func: Any) -> Any:
    return click.option("-n", "--namespace", default=None,
                        help="Namespace of the release (default: $HELM_NAMESPACE, as helm sets it for plugins).")(func)


def _helm_args(func: Any) -> Any:
    return click.argument("helm_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- HELM_ARGS]...")(func)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="helm-rdma")
def main() -> None:
    """Serve one large model with vLLM across RDMA-connected OCI GPU nodes, as a Helm chart."""


@main.command()
@click.argument("release")
@_chart_options
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory to write the chart into.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
def generate(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
             value_files: tuple[Path, ...], set_values: tuple[str, ...], output: Path, force: bool) -> None:
    """Write a complete chart for RELEASE into a directory (for GitOps: render it later with plain helm)."""
    from .commands.generate import generate as run

    result = run(release=release, preset=preset, model=model, nodes=nodes, max_model_len=max_model_len,
                 value_files=value_files, set_values=set_values, output=output, force=force)
    _notice(result.notice)
    p = result.plan
    click.echo(f"wrote {result.path} ({len(result.files)} files): {p.model} on {p.nodes} x {p.preset}, "
               f"TP {p.tensor_parallel_size} x PP {p.pipeline_parallel_size}")


@main.command()
@click.argument("release")
@_chart_options
@_namespace_option
@_helm_args
def template(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
             value_files: tuple[Path, ...], set_values: tuple[str, ...], namespace: str | None,
             helm_args: tuple[str, ...]) -> None:
    """Render the chart of RELEASE with `helm template`; arguments after -- go to helm."""
    from .commands.template import template as run

    result = run(release=release, preset=preset, model=model, nodes=nodes, max_model_len=max_model_len,
                 value_files=value_files, set_values=set_values,
                 namespace=HelmEnv.from_environ(namespace=namespace).namespace, helm_args=helm_args)
    _notice(result.notice)
    sys.stdout.write(result.manifests)


AUTH_VALUES = {"api_key": "apiKey", "instance_principal": "instancePrincipal", "workload_identity": "workloadIdentity"}


def _deploy_command(upgrade: bool) -> Any:
    verb = "upgrade" if upgrade else "install"
    doc = (
        "Upgrade RELEASE, or install it if it is absent (helm upgrade --install)."
        if upgrade else
        "Install RELEASE: generate its chart and run helm install (fails if the release exists, like helm)."
    ) + (
        " The chart is kept under $HELM_CACHE_HOME/rdma/NAMESPACE/RELEASE. --dry-run renders the manifests and needs"
        " no cluster. Arguments after -- go to helm."
    )

    @click.argument("release")
    @_chart_options
    @_namespace_option
    @click.option("--wait", is_flag=True, help="Wait until the pods are ready (helm --wait).")
    @click.option("--timeout", default=None, metavar="DURATION",
                  help="helm --timeout (default 60m: a large model takes long to load).")
    @click.option("--dry-run", is_flag=True, help="Render the manifests instead, with no cluster.")
    @click.option("--atomic", "--rollback-on-failure", "atomic", is_flag=True,
                  help="Roll back on failure (helm 3 --atomic, helm 4 --rollback-on-failure).")
    @click.option("--provision", is_flag=True,
                  help="Provision the OCI cluster network in the chart's pre-install hook (with the flags below).")
    @click.option("--compartment", help="Compartment OCID (with --provision).")
    @click.option("--availability-domain", help="Availability domain (with --provision).")
    @click.option("--subnet", help="Subnet OCID of the nodes (with --provision).")
    @click.option("--image", help="Image OCID of the nodes (with --provision).")
    @click.option("--auth", type=click.Choice(sorted(AUTH_VALUES)), default=None,
                  help="How the hook signs in to OCI (default workload_identity).")
    @click.option("--oci-api-key-secret", help="Secret with the OCI config and key, for --auth api_key.")
    @click.option("--oci-endpoint", envvar="HELM_RDMA_OCI_ENDPOINT", default=None, help="Compute Management endpoint.")
    @_helm_args
    def command(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
                value_files: tuple[Path, ...], set_values: tuple[str, ...], namespace: str | None, wait: bool,
                timeout: str | None, dry_run: bool, atomic: bool, provision: bool, compartment: str | None,
                availability_domain: str | None, subnet: str | None, image: str | None, auth: str | None,
                oci_api_key_secret: str | None, oci_endpoint: str | None, helm_args: tuple[str, ...]) -> None:
        from .commands.deploy import deploy

        network = {key: value for key, value in (
            ("provision", provision or None), ("compartmentId", compartment),
            ("availabilityDomain", availability_domain), ("subnetId", subnet), ("imageId", image),
            ("auth", AUTH_VALUES.get(auth or "")), ("apiKeySecret", oci_api_key_secret), ("endpoint", oci_endpoint),
        ) if value is not None}
        result = deploy(upgrade=upgrade, release=release, preset=preset, model=model, nodes=nodes,
                        max_model_len=max_model_len, value_files=value_files, set_values=set_values,
                        env=HelmEnv.from_environ(namespace=namespace), wait=wait, timeout=timeout,
                        dry_run=dry_run, atomic=atomic, cluster_network=network or None, helm_args=helm_args)
        _notice(result.notice)
        sys.stdout.write(result.output)
        if result.chart is not None:
            click.echo(f"helm-rdma: chart kept in {result.chart}", err=True)

    command.__doc__ = doc
    return main.command(verb)(command)


install = _deploy_command(upgrade=False)
upgrade = _deploy_command(upgrade=True)


@main.command()
@click.argument("release")
@_namespace_option
def status(release: str, namespace: str | None) -> None:
    """helm's status of RELEASE, how many pods of each group are ready, and where its chart is kept."""
    from .commands.status import status as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace))
    sys.stdout.write(result.helm_status)
    click.echo(f"\nGROUPS (namespace {result.namespace}):")
    if not result.groups:
        click.echo("  no pods of this release")
    for g in result.groups:
        leader = "ready" if g.leader_ready else "not ready"
        click.echo(f"  group {g.group}: {g.ready}/{g.total} pods ready, leader {leader}")
    click.echo(f"CHART: {result.chart}" if result.chart else "CHART: not kept here (installed by another tool)")


@main.command()
@click.argument("release")
@_namespace_option
@_helm_args
def uninstall(release: str, namespace: str | None, helm_args: tuple[str, ...]) -> None:
    """Uninstall RELEASE with helm and drop its kept chart; arguments after -- go to helm."""
    from .commands.uninstall import uninstall as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), helm_args=helm_args)
    sys.stdout.write(result.output)


@main.command()
@click.argument("release", required=False)
@_chart_options
def doctor(release: str | None, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
           value_files: tuple[Path, ...], set_values: tuple[str, ...]) -> None:
    """Check values before anything is applied: NCCL look-alikes, device lists, TP x PP, backend and image, host
    ports, the model's token. Exit 1 on errors, 0 with warnings only. RELEASE names the model as for install."""
    from .commands.doctor import doctor as run

    result = run(release=release or (model or "llama405b"), preset=preset, model=model, nodes=nodes,
                 max_model_len=max_model_len, value_files=value_files, set_values=set_values)
    for finding in result.findings:
        click.echo(finding.line())
    click.echo(f"{result.errors} error(s), {result.warnings} warning(s)")
    if result.errors:
        sys.exit(1)


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
@click.option("--release", help="Release the network belongs to (tags); default: --name, or the hook's release.")
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
    from .commands.provision import plan_from_flags, plan_from_values, result_json
    from .commands.provision import provision as run

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
@click.option("--release", help="Release the network belongs to (tags); default: --name.")
@_namespace_option
@_oci_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def deprovision(name: str, compartment: str, release: str | None, namespace: str | None, auth: str,
                oci_config: str, oci_profile: str, oci_endpoint: str | None, poll_interval: float, yes: bool) -> None:
    """Terminate the cluster network NAME and delete its instance configuration: only resources tagged as ours."""
    from .clusternet import NetworkSpec
    from .commands.provision import deprovision as run
    from .ocicloud import OciAuth

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


@main.command()
@click.argument("release")
@_namespace_option
@click.option("--timeout", default="15m", show_default=True, help="helm test --timeout.")
@click.option("--nccl", is_flag=True, help="Re-run the bandwidth test first (it needs the GPUs: asks before).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --nccl stops the serving pods.")
def verify(release: str, namespace: str | None, timeout: str, nccl: bool, yes: bool) -> None:
    """Prove RELEASE's fabric: helm test (RDMA NICs ACTIVE on every node, the API answers) and the preflight's
    all-reduce bandwidth against the preset's expectation. Exit 1 on any failure."""
    from .commands.verify import verify as run

    def confirm(warning: str) -> bool:
        click.echo(f"helm-rdma: {warning}", err=True)
        return yes or click.confirm("Stop the serving pods and run the bandwidth test?", default=False, err=True)

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), timeout=timeout,
                 rerun_bandwidth=confirm if nccl else None)
    marks = {True: "PASS", False: "FAIL", None: "    "}
    for check in result.checks:
        click.echo(f"{marks[check.passed]}  {check.name:<10} {check.detail}")
    if not result.passed:
        sys.exit(1)


@main.command("complete-words", hidden=True)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def complete_words(words: tuple[str, ...]) -> None:
    """Shell completion candidates for `helm rdma WORDS...` (used by plugin.complete)."""
    from .completion import candidates

    for candidate in candidates(list(words)):
        click.echo(candidate)
    click.echo(":4")  # cobra's ShellCompDirectiveNoFileComp


@main.command()
@click.argument("model")
@_preset_option
@click.option("--nodes", type=click.IntRange(1, 64), help="Check this many nodes instead of picking the minimum.")
@click.option("--max-model-len", type=click.IntRange(1), help="Context length to plan for; default: the model's.")
@click.option("--gpu-memory-utilization", type=click.FloatRange(0.05, 1.0), default=0.9, show_default=True)
@click.option("--output", "-o", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def plan(model: str, preset: str, nodes: int | None, max_model_len: int | None, gpu_memory_utilization: float,
         fmt: str) -> None:
    """How many nodes of a preset MODEL needs at TP = GPUs per node, and how many full-length sequences fit."""
    from .commands.plan import plan as run
    from .commands.plan import plan_table

    result = run(model=model, preset=preset, nodes=nodes, max_model_len=max_model_len,
                 gpu_memory_utilization=gpu_memory_utilization)
    click.echo(json.dumps(result.to_dict(), indent=2) if fmt == "json" else plan_table(result))


@main.group(invoke_without_command=True)
@click.option("--output", "-o", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def presets(ctx: click.Context, fmt: str) -> None:
    """List the shape presets; `presets show NAME` prints one."""
    if ctx.invoked_subcommand is not None:
        return
    from .commands.presets import list_presets

    rows = list_presets()
    if fmt == "json":
        click.echo(json.dumps([r._asdict() for r in rows], indent=2))
        return
    header = ("PRESET", "SHAPE", "GPUS", "RDMA", "BUSBW MIN GB/s", "IMAGE")
    table = [header] + [(r.name, r.shape, r.gpus, r.rdma, f"{r.busbw_threshold_gbps:g}", r.image) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@presets.command("show")
@click.argument("name")
@click.option("--output", "-o", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def presets_show(name: str, fmt: str) -> None:
    """Print one preset, with the sources of its values."""
    from .commands.presets import show_preset

    data = show_preset(name)
    import yaml

    click.echo(json.dumps(data, indent=2) if fmt == "json" else yaml.safe_dump(data, sort_keys=False, width=1000))

