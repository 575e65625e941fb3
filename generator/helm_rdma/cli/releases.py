"""Commands that act on a release in a cluster: install, upgrade, status, uninstall, verify, diagnose."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from helm_rdma.cli.base import (
    ANY_RELEASE,
    CHART_RELEASE,
    _chart_options,
    _helm_args,
    _namespace_option,
    _notice,
    _provision_options,
    main,
)
from helm_rdma.cli.cloud import oci_check_options
from helm_rdma.cli.output import emit, output_option, warn
from helm_rdma.cli.params import PRESET, UPGRADE_RELEASE, DryRunCommand, Finite, GoDuration, dry_run_option
from helm_rdma.helmenv import HelmEnv

if TYPE_CHECKING:
    from helm_rdma.commands.deploy import DryRun
    from helm_rdma.oci.clients import OciAuth
    from helm_rdma.resolve.values import ChartRequest

INSTALL_EXAMPLES = [
    ("Llama 3.1 405B on two BM.GPU.H100.8 nodes; return once every group serves",
     "install llama405b --preset h100 -n llm --wait"),
    ("a gated model, its token and the API key from existing Secrets",
     "install llama70b --preset a100-v2 -n llm --set model.hfTokenSecret.name=hf-token "
     "--set api.keySecret.name=vllm-api-key"),
    ("print the manifests instead; no cluster needed", "install llama405b --preset h100 --dry-run"),
    ("let the cluster check the objects without changing anything",
     "install llama405b --preset h100 -n llm --dry-run=server"),
]
UPGRADE_EXAMPLES = [
    ("a longer context; `diff` with the same flags shows first what would change",
     "upgrade llama405b --preset h100 -n llm --max-model-len 65536 --wait"),
    ("roll back by itself when the upgrade fails", "upgrade llama405b --preset h100 -n llm -f values.yaml --atomic"),
    ("print the manifests instead; no cluster needed", "upgrade llama405b --preset h100 --dry-run"),
]


def _deploy_command(upgrade: bool) -> Any:
    verb = "upgrade" if upgrade else "install"
    doc = (
        "Generate RELEASE's chart and upgrade it (or install it).\n\n"
        "This is helm upgrade --install --reset-values: it installs RELEASE if it is absent, and takes the values of"
        " the chart it generates alone, never those helm kept from the last release; `diff` with the same flags"
        " shows first what it would change."
        if upgrade else
        "Generate RELEASE's chart and install it with helm.\n\n"
        "It fails if the release exists, like helm install."
    ) + (
        " The values are checked first (as doctor), then, when a cluster answers, the cluster (as doctor --cluster):"
        " errors stop before helm runs. The chart is kept under $HELM_CACHE_HOME/rdma/NAMESPACE/RELEASE."
        " --dry-run (or --dry-run=client) renders the manifests and needs no cluster; --dry-run=server is helm's:"
        " the cluster validates the objects, nothing changes. Under hostNetwork with more than one node, each serving"
        " pod's port guard closes the group's own ports (the torch store, NCCL, vLLM's ZMQ sockets, the group watch)"
        " on its node to all but the node and the release's pods. With distributed.portGuard.enabled=false the OCI"
        " ingress rules that reach the GPU nodes are read first instead (--oci-config, --oci-profile): a rule that"
        " admits those ports from anyone but the group (an NSG counts only when every member is a GPU node judged),"
        " a flannel overlay (which no OCI rule sees), or rules that cannot be read, stop the install unless"
        " distributed.allowOpenGroupPorts=true."
        " Arguments after -- go to helm, except those that would change the values, the manifests or the cluster or"
        " namespace (the --set family, -f, --reuse-values, --post-renderer, -n, --kube-context, --kubeconfig,"
        " --kube-apiserver; a second --timeout or --dry-run; --no-hooks when the release provisions): those are"
        " refused (exit 2), naming helm-rdma's own way to say them."
    )

    @click.argument("release", type=UPGRADE_RELEASE if upgrade else CHART_RELEASE)
    @_chart_options
    @_namespace_option
    @click.option("--wait", is_flag=True, help="Wait until every group serves: helm --wait, then until each "
                                              "group's leader is Ready, with progress (exit 1 naming the pod that "
                                              "holds it up).")
    @click.option("--poll-interval", type=Finite(0.01), default=10.0, hidden=True)
    @click.option("--timeout", type=GoDuration(), default=None, metavar="DURATION",
                  help="helm --timeout, a Go duration such as 90m or 1h30m (default from the plan: the image pull, "
                       "download and barrier, preflight and model load).")
    @dry_run_option
    @click.option("--skip-cluster-checks", is_flag=True, envvar="HELM_RDMA_SKIP_CLUSTER_CHECKS",
                  help="Do not check the cluster before helm runs (as `doctor --cluster` does; by default they run "
                       "when a cluster answers, and errors stop the install).")
    @click.option("--atomic", "--rollback-on-failure", "atomic", is_flag=True,
                  help="Roll back on failure (helm 3 --atomic, helm 4 --rollback-on-failure), and wait as --wait does: "
                       "groups that do not serve in time are rolled back too (uninstalled when this run installed "
                       "them), since helm cannot wait on a LeaderWorkerSet.")
    @_provision_options
    @oci_check_options
    @_helm_args
    def command(request: ChartRequest, namespace: str | None, wait: bool, timeout: str | None, dry_run: DryRun,
                atomic: bool, helm_args: tuple[str, ...], poll_interval: float, skip_cluster_checks: bool,
                oci: OciAuth) -> None:
        from helm_rdma.commands.deploy import HelmRun, deploy

        run = HelmRun(upgrade=upgrade, wait=wait, timeout=timeout, dry_run=dry_run, atomic=atomic,
                      cluster_checks=not skip_cluster_checks, helm_args=helm_args)
        result = deploy(request, env=HelmEnv.from_environ(namespace=namespace), run=run, oci=oci,
                        on_progress=lambda line: click.echo(f"helm-rdma: {line}", err=True), on_warning=warn,
                        poll_seconds=poll_interval)
        sys.stdout.write(result.output)
        if result.chart is not None:
            click.echo(f"helm-rdma: chart kept in {result.chart}", err=True)
        if result.serving is not None:
            click.echo(f"helm-rdma: serving: {result.serving}", err=True)

    command.__doc__ = doc
    return main.command(verb, cls=DryRunCommand, examples=UPGRADE_EXAMPLES if upgrade else INSTALL_EXAMPLES)(command)


install = _deploy_command(upgrade=False)
upgrade = _deploy_command(upgrade=True)


@main.command(examples=[
    ("helm's status, then how many pods of each group are ready, and where the chart is kept",
     "status llama405b -n llm"),
    ("a release in the namespace helm targets ($HELM_NAMESPACE, else default)", "status llama405b"),
])
@click.argument("release", type=ANY_RELEASE)
@_namespace_option
@output_option()
def status(release: str, namespace: str | None, fmt: str) -> None:
    """Show RELEASE's helm status, groups, preflights, kept chart.

    With no Helm release (Argo CD applied it), the release's ConfigMap and workloads say what helm would.
    """
    from helm_rdma.commands.status import status as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace))
    emit(result, fmt, table=lambda: _status_table(release, result))


def _status_table(release: str, result: Any) -> str:
    from helm_rdma.cluster.groups import preflight_line

    if result.helm_status is not None:
        lines = [result.helm_status.rstrip("\n")]
    else:
        lines = [f"NAME: {release}", f"NAMESPACE: {result.namespace}",
                 f"STATUS: no Helm release; read from the cluster"
                 f"{' (' + result.managed_by + ')' if result.managed_by else ''}",
                 f"CHART VERSION: {result.chart}", f"APP VERSION: {result.app_version}"]
    if result.workloads:
        lines += ["", "WORKLOADS:"]
        lines += [f"  {w['kind']} {w['name']}: {w['ready']}/{w['replicas']} ready, {w['updated']} updated"
                  for w in result.workloads]
    lines += ["", f"GROUPS (namespace {result.namespace}):"]
    if not result.groups:
        lines.append("  no pods of this release")
    for g in result.groups:
        leader = "ready" if g.serving else "not ready"
        ready = sum(1 for p in g.pods if p.ready)
        lines.append(f"  group {g.group}: {ready}/{len(g.pods)} pods ready, leader {leader}")
    if result.preflights:
        lines += ["", "PREFLIGHTS (recorded as Events, oldest first):"]
        lines += [f"  {preflight_line(e)}" for e in result.preflights]
    elif result.preflights_note:
        lines += ["", f"PREFLIGHTS: not read ({result.preflights_note})"]
    lines.append(f"CHART: {result.kept_chart}" if result.kept_chart else "CHART: not kept here (installed by another "
                                                                         "tool)")
    return "\n".join(lines)


@main.command(examples=[
    ("uninstall the release and drop the chart kept for it", "uninstall llama405b -n llm"),
    ("keep helm's history of the release (arguments after -- go to helm)",
     "uninstall llama405b -n llm -- --keep-history"),
])
@click.argument("release", type=ANY_RELEASE)
@_namespace_option
@click.option("--timeout", type=GoDuration(), default=None, metavar="DURATION",
              help="helm uninstall --timeout, a Go duration such as 5m (default helm's 5m, or the cluster network's "
                   "termination time when its pre-delete hook terminates it).")
@_helm_args
def uninstall(release: str, namespace: str | None, timeout: str | None, helm_args: tuple[str, ...]) -> None:
    """Uninstall RELEASE with helm and drop its kept chart.

    Arguments after -- go to helm uninstall, except those that would change the cluster or namespace (-n,
    --kube-context, --kubeconfig, --kube-apiserver): those are refused (exit 2).
    """
    from helm_rdma.commands.uninstall import uninstall as run

    args = ("--timeout", timeout, *helm_args) if timeout is not None else helm_args
    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), helm_args=args)
    sys.stdout.write(result.output)


@main.command(examples=[
    ("helm test and every group's preflight bandwidth, in one summary", "verify llama405b -n llm"),
    ("restart the groups to measure the bandwidth again, without asking", "verify llama405b -n llm --nccl --yes"),
])
@click.argument("release", type=ANY_RELEASE)
@_namespace_option
@click.option("--timeout", type=GoDuration(), default="15m", show_default=True, metavar="DURATION",
              help="helm test --timeout, a Go duration such as 15m or 1h30m.")
@click.option("--nccl", is_flag=True,
              help="Measure the bandwidth again first: restarts every group, whose preflight runs before vLLM "
                   "(asks before).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --nccl restarts the groups.")
@click.option("--poll-interval", type=Finite(0.01), default=15.0, hidden=True)
@output_option()
def verify(release: str, namespace: str | None, timeout: str, nccl: bool, yes: bool, poll_interval: float,
           fmt: str) -> None:
    """Prove RELEASE's fabric: helm test and each group's bandwidth.

    helm test checks that the RDMA NICs are ACTIVE on every node and that the API answers; each group's preflight
    all-reduce bandwidth is read from its leader's log and held against the preset's floor. With no Helm release
    (Argo CD applied it), the test Job and Pod the chart renders run as plain objects. Exit 1 on any failure.
    """
    from helm_rdma.commands.verify import verify as run

    def confirm(warning: str) -> bool:
        click.echo(f"helm-rdma: {warning}", err=True)
        return yes or click.confirm("Restart the groups and measure again?", default=False, err=True)

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), timeout=timeout,
                 remeasure=confirm if nccl else None, poll_seconds=poll_interval)
    marks = {True: "PASS", False: "FAIL", None: "    "}
    emit({"release": release, **result.to_dict()}, fmt,
         table=lambda: "\n".join(f"{marks[c.passed]}  {c.name:<10} {c.detail}" for c in result.checks))
    if not result.passed:
        sys.exit(1)


@main.command(examples=[
    ("why the group hangs, from the logs of every pod of the release", "diagnose llama405b -n llm"),
    ("the same findings as JSON", "diagnose llama405b -n llm -o json"),
    ("from logs saved earlier (one file per pod); no cluster needed", "diagnose llama405b --logs ./logs --preset h100"),
])
@click.argument("release", type=ANY_RELEASE)
@_namespace_option
@click.option("--logs", "logs_dir", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Read saved logs instead of the cluster: one file per pod, POD.log (or POD.CONTAINER.log, "
                   "POD.previous.log); lines with kubectl's --prefix count for the pod they name.")
@click.option("--interface", default=None, metavar="NAME",
              help="The nodes' front-end interface NCCL should bootstrap on (default: the release's "
                   "network.interface, else the preset's, else the chart's).")
@click.option("--preset", "-p", default=None, type=PRESET,
              help="Shape preset, for its GPUDirect RDMA support and bandwidth floor (default: the release's).")
@output_option()
def diagnose(release: str, namespace: str | None, logs_dir: Path | None, interface: str | None, preset: str | None,
             fmt: str) -> None:
    """Read the logs of RELEASE's pods and say why a group hangs.

    It reads every container of every pod, the current and the previous instance, and finds why a group hangs or
    fails at start-up: NCCL on TCP sockets or without GPUDirect RDMA, bootstrap on the wrong interface, NCCL, vLLM
    or Ray versions that differ, ranks that never finish NCCL init, timeouts, GPU out of memory, dead workers, a
    gated or missing model, the preflight's bandwidth. Exit 1 when an error is found.
    """
    from helm_rdma.commands.diagnose import diagnose as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), logs_dir=logs_dir,
                 interface=interface, preset=preset)
    _notice(result.notice)
    emit(result.diagnosis, fmt, table=lambda: "\n".join(
        [*(f.line() for f in result.diagnosis.findings), f"{result.diagnosis.summary.line()} ({result.read_from})"]))
    if not result.diagnosis.passed:
        sys.exit(1)
