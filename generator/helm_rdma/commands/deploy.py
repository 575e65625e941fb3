"""`helm-rdma install` and `upgrade`: generate the chart, run helm install / upgrade --install, keep the chart."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from helm_rdma.chart.write import write_chart
from helm_rdma.clock import Polling
from helm_rdma.cluster.apikey import ensure_api_key_secret
from helm_rdma.cluster.kube import connect, kubeconfig_found
from helm_rdma.cluster.release import deployed_values, last_deployed
from helm_rdma.cluster.rollout import wait_until_serving
from helm_rdma.commands.doctor import (
    chart_verdict,
    cluster_report,
    refusal,
    render_checked,
    rendered_needs,
    require_clean,
)
from helm_rdma.commands.groupports import PortsVerdict, judge, judged_ports, require_judged_closed
from helm_rdma.errors import (
    AtomicUndoError,
    ChartValuesError,
    ClusterCheckError,
    ClusterError,
    DroppedValuesError,
    HelmArgumentError,
    HelmCommandError,
    NotServingError,
    ValuesCheckError,
)
from helm_rdma.helm import duration_seconds, find_helm, helm_major_version, run_helm
from helm_rdma.helmenv import HelmEnv
from helm_rdma.oci.clients import OciAuth
from helm_rdma.resolve.carried import dropped_values, renamed_model
from helm_rdma.resolve.values import ChartRequest, Resolved, generated_api_key_secret, resolve
from helm_rdma.sizing.planner import Plan

# helm upgrade given no values of its own (helm-rdma's are all in the chart it writes) merges the last release's
# user-supplied values over the chart's (helm pkg/action/upgrade.go reuseValues: v3.17.4 line 585, v4.2.4 line 642),
# values helm-rdma never checked; --reset-values makes helm take the chart's values alone.
_RESET = ("--reset-values",)
UPGRADE_AGAIN = ("pass them again as before (--set KEY=VALUE, the -f file that held them, --model), or give the new "
                 "value explicitly to change it on purpose")
# What an undone install says of a network it provisioned and its uninstall does not delete.
NETWORK_LEFT = ("the cluster network the install provisioned is still there (clusterNetwork.deleteOnUninstall is "
                "false): its nodes bill until you delete it (`helm rdma deprovision --help`) or install again")
IMAGE_PULL_MINUTES = 15  # the vLLM image (about 10 GB) onto a node that has never pulled it; helm's default is 5m


def first_start_minutes(values: dict[str, Any]) -> int:
    """Minutes a group may take from its pods' start to serving, as the chart reckons them
    (templates/_pod.tpl, vllm-rdma.firstStartMinutes): the download and the group's barrier, the preflight, then
    the leader's start-up budget, each from the plan unless the values set them."""
    group = int(values["nodes"]) > 1
    preflight = group and bool(values["verify"]["preflight"]["enabled"])
    return (int(values["distributed"]["barrierMinutes"]) * group
            + int(values["verify"]["preflight"]["timeoutMinutes"]) * preflight
            + int(values["probes"]["startupMinutes"]))


def default_timeout(values: dict[str, Any]) -> str:
    """helm's --timeout: the image pull and a group's first start (``first_start_minutes``), plus the provisioning
    hook's own limits when it runs (each hook gets the whole timeout)."""
    minutes = IMAGE_PULL_MINUTES + first_start_minutes(values)
    cn = values.get("clusterNetwork", {})
    if cn.get("provision"):
        minutes += int(cn["timeoutMinutes"]) + int(cn["nodeTimeoutMinutes"])
    return f"{minutes}m"


class DeployResult(NamedTuple):
    """What helm printed, the command that ran, and where the installed chart is kept (None for a dry run)."""

    output: str
    command: tuple[str, ...]
    chart: Path | None
    plan: Plan
    notice: str | None = None
    serving: str | None = None  # the last progress line of --wait


DryRun = Literal["none", "client", "server"]


@dataclass(frozen=True)
class HelmRun:
    """How install or upgrade runs helm.

    Attributes:
        upgrade: helm upgrade --install --reset-values instead of helm install.
        wait: Wait until every group serves (see ``deploy``).
        timeout: helm's --timeout (a Go duration); None: ``default_timeout`` of the values.
        dry_run: helm's --dry-run: "client" renders with no cluster (`helm template`, as helm 4's client dry run
            does; helm 3's would want a cluster), "server" runs helm's own --dry-run=server (the cluster validates
            and lookups answer); neither keeps anything. "none": install.
        atomic: Roll back on failure (helm 3 --atomic, helm 4 --rollback-on-failure); implies ``wait``, and groups
            that do not serve in time are undone too (see ``_undo``).
        cluster_checks: Check the cluster first when one answers (as `doctor --cluster`).
        helm_args: Passed to helm as they are.
    """

    upgrade: bool = False
    wait: bool = False
    timeout: str | None = None
    dry_run: DryRun = "none"
    atomic: bool = False
    cluster_checks: bool = False
    helm_args: tuple[str, ...] = ()


def deploy(request: ChartRequest, *, env: HelmEnv, run: HelmRun, oci: OciAuth | None = None,
           on_progress: Callable[[str], None] = lambda _: None, on_warning: Callable[[str], None] = lambda _: None,
           poll_seconds: float = 10) -> DeployResult:
    """Install or upgrade-or-install one release, as ``run`` says.

    ``run.timeout`` is checked first, before anything is resolved or written. The values' warnings (and the cluster
    checks' ones) go to ``on_warning`` before helm runs.

    A dry run (``HelmRun.dry_run``) renders a chart in a temporary directory, a server's after the cluster checks,
    and keeps nothing. Otherwise the chart is written to a staging directory beside the cache, helm runs on it, and
    only a successful run replaces the kept chart, so the cache always holds what is installed.

    When the values provision a cluster network (install --provision), helm's --timeout also covers the
    provisioning hook (network and nodes) unless the caller set one.

    With ``run.cluster_checks``, when a cluster answers, it is checked before helm runs (as `doctor --cluster`):
    errors stop here, warnings go to ``on_warning``, a summary to ``on_progress``. A client dry run never contacts
    the cluster.

    Under hostNetwork with more than one node, unless distributed.allowOpenGroupPorts accepts it, the OCI ingress
    rules that reach the GPU nodes (the nodes that exist, or the subnet and NSGs of the nodes the release
    provisions) are read with ``oci`` (default: the API key of ~/.oci/config) before anything is created: a rule
    that opens the group's ports to more than the group, or rules that cannot be read, stop the install (see
    commands/groupports.py). A dry run does not read them.

    When helm-rdma named the API key Secret (the values name none), it is created with a random key before helm
    runs if it is missing, and never changed when it exists (see cluster.apikey); without a kubeconfig helm cannot
    install either, and nothing is created.

    With ``run.wait``, after helm returns this waits (within what is left of the timeout) until every group's leader is
    Ready, calling ``on_progress`` with a line of where the rollout stands: helm has no readiness rule for a
    LeaderWorkerSet, so its own --wait returns at once.

    Raises:
        InputError: A bad release name or namespace, bad values (before helm runs), or values the chart's checks
            reject.
        ClusterCheckError: With ``run.cluster_checks``, the cluster would not run the release (nothing installed).
        GroupPortsOpenError, GroupPortsUncheckedError: The group's ports are open, or could not be judged (nothing
            installed).
        HelmNotFoundError, HelmCommandError: helm is missing or failed.
        NotServingError: With ``run.wait``, the groups did not serve in time (names the pod and its last log lines).
        AtomicUndoError: With ``run.atomic`` (which implies the wait), the groups did not serve in time: the release
            was rolled back, or uninstalled when this run installed it (see ``_undo``).
    """
    release, helm_args = request.release, run.helm_args
    if run.timeout is not None:
        duration_seconds(run.timeout)  # before anything is resolved or written: helm would refuse it only later
    cache = env.chart_cache(release)  # checks the release name and namespace before anything else
    # Checked here, not only by helm: helm-rdma's own checks read the values, and with --provision nothing may
    # reach OCI before every check passed.
    resolved = resolve(request)
    if "--no-hooks" in helm_args and resolved.values["clusterNetwork"]["provision"]:
        # The provisioning hook is where the network is made, and where its nodes' rules are judged against the
        # nodes OCI really has: without it the release would run on whatever nodes are there.
        raise HelmArgumentError(argument="--no-hooks", flag="--no-hooks", command="upgrade" if run.upgrade else
                                "install", effect="skip the hook that provisions the cluster network and judges its "
                                "nodes' OCI rules (clusterNetwork.provision is on)",
                                fix="drop --no-hooks, or set clusterNetwork.provision=false for nodes that exist")
    findings = require_clean(resolved)
    # Not one of the cluster checks --skip-cluster-checks skips: one `helm get values`, and a refusal of bad input.
    if run.upgrade and run.dry_run != "client" and kubeconfig_found(env):
        last = deployed_values(release=release, env=env) or {}
        dropped = dropped_values(last, resolved, model_given=request.model is not None, where="in the last revision")
        renamed = renamed_model(last, resolved) if not dropped else None
        if renamed:
            on_warning(renamed)
        if dropped:
            raise DroppedValuesError(action=f'upgrade of release "{release}"', holder="its last revision",
                                     lines=dropped, fix=UPGRADE_AGAIN)
    for finding in findings:
        on_warning(_text(finding.key, finding.message, finding.fix))
    notice = "\n".join(f.line() for f in findings) or None
    timeout = run.timeout or default_timeout(resolved.values)
    budget = duration_seconds(timeout)
    helm = find_helm()
    if run.dry_run != "none":
        with tempfile.TemporaryDirectory(prefix="helm-rdma-") as tmp:
            chart = write_chart(resolved, output=Path(tmp) / "chart", compact=True).path
            if run.dry_run == "client":
                args = ["template", release, str(chart), *env.global_flags()]
            else:  # the cluster answers anyway: the same checks as a real install
                if run.cluster_checks:
                    _check_cluster(chart=chart, resolved=resolved, env=env, helm=helm, on_progress=on_progress,
                                   on_warning=on_warning, create_namespace="--create-namespace" in helm_args)
                args = [*(["upgrade", "--install"] if run.upgrade else ["install"]), release, str(chart),
                        *env.global_flags(), "--timeout", timeout, *(_RESET if run.upgrade else ()), "--dry-run=server"]
            result = render_checked([*args, *helm_args], helm=helm, resolved=resolved)
        return DeployResult(output=result.stdout, command=result.command, chart=None, plan=resolved.plan,
                            notice=notice)

    staging, kept = _staging(cache, release=release, on_warning=on_warning)
    try:
        chart = write_chart(resolved, output=staging / "chart").path
        rendered = run.cluster_checks and _check_cluster(
            chart=chart, resolved=resolved, env=env, helm=helm, on_progress=on_progress, on_warning=on_warning,
            create_namespace="--create-namespace" in helm_args)
        rendered = _check_group_ports(resolved, chart=chart, env=env, oci=oci or OciAuth(), on_progress=on_progress,
                                      rendered=rendered)
        _ensure_api_key(resolved, env=env, create_namespace="--create-namespace" in helm_args,
                        on_progress=on_progress, rendered=rendered)
        args = ["upgrade", "--install"] if run.upgrade else ["install"]
        args += [release, str(chart), *env.global_flags(), "--timeout", timeout, *(_RESET if run.upgrade else ())]
        if run.wait:
            args.append("--wait")
        if run.atomic:
            args.append("--atomic" if helm_major_version(helm) < 4 else "--rollback-on-failure")
        back_to = last_deployed(release=release, env=env) if run.atomic and run.upgrade else None
        started = time.monotonic()
        result = render_checked([*args, *helm_args], helm=helm, resolved=resolved)
        if kept and not run.atomic:
            kept = _keep(chart, cache, on_warning=on_warning)
        serving = None
        if run.wait or run.atomic:  # --atomic implies --wait, as helm's does
            left = max(budget - (time.monotonic() - started), 0.0)
            try:
                serving = _wait(resolved.values, release=release, env=env, seconds=left, poll_seconds=poll_seconds,
                                on_progress=on_progress)
            except (NotServingError, KeyboardInterrupt, SystemExit) as exc:  # SIGTERM is SystemExit (cli/base.py)
                if not run.atomic:
                    raise
                # helm's own --atomic undoes on an interrupt of its wait too (pkg/action/upgrade.go, handleContext)
                failure = str(exc) if isinstance(exc, NotServingError) else \
                    f"interrupted while waiting for the groups of {release} to serve"
                network = resolved.values["clusterNetwork"]
                network_left = back_to is None and network["provision"] and not network["deleteOnUninstall"]
                undone = _undo(failure, release=release, env=env, back_to=back_to, timeout=timeout,
                               note=NETWORK_LEFT if network_left else "")
                if back_to is None and undone.undone and cache.exists():  # uninstalled: no chart of it to keep
                    shutil.rmtree(cache, ignore_errors=True)
                raise undone from None
        if kept and run.atomic:  # only now is it what runs; an undone one leaves the kept chart of the one before
            kept = _keep(chart, cache, on_warning=on_warning)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return DeployResult(output=result.stdout, command=result.command, chart=cache if kept else None,
                        plan=resolved.plan, notice=notice, serving=serving)


def _wait(values: dict[str, Any], *, release: str, env: HelmEnv, seconds: float, poll_seconds: float,
          on_progress: Callable[[str], None]) -> str:
    """Wait up to ``seconds`` until the groups serve (see cluster/rollout.py). With autoscaling the scaler keeps at
    least minReplicas groups (KEDA sets them at once) and replicas is not rendered: those are the groups that must
    serve.

    Raises:
        NotServingError: They did not in time.
    """
    auto = values["autoscaling"]
    groups = int(auto["minReplicas"]) if auto["enabled"] else int(values["replicas"])
    polling = Polling(timeout_seconds=seconds, poll_seconds=poll_seconds, max_poll_seconds=poll_seconds)
    return wait_until_serving(release=release, env=env, groups=groups, nodes=int(values["nodes"]), polling=polling,
                              on_progress=on_progress)


def _undo(failure: str, *, release: str, env: HelmEnv, back_to: int | None, timeout: str,
          note: str = "") -> AtomicUndoError:
    """--atomic for what helm cannot wait on: helm undoes a release when its own wait fails (pkg/action/upgrade.go
    failRelease rolls back to the last revision that ran; install.go uninstalls), but it counts a LeaderWorkerSet as
    ready at once (pkg/kube/ready.go, IsReady), so a group that never serves fails only helm-rdma's wait. Undone the
    same way here: a rollback to ``back_to``, the last revision that ran before this one (see
    cluster.release.last_deployed), or an uninstall when there was none (None); with earlier revisions of which none
    ran (0) there is nothing to go back to."""
    if back_to == 0:
        return AtomicUndoError(failure=failure, command="", problem="no earlier revision ran", note=note)
    args = ["rollback", release, str(back_to)] if back_to else ["uninstall", release]
    args += [*env.global_flags(), "--wait", "--timeout", timeout]
    command = " ".join(["helm", *args])
    try:
        run_helm(args)
    except HelmCommandError as exc:
        return AtomicUndoError(failure=failure, command=command, problem=exc.stderr.strip(), note=note)
    return AtomicUndoError(failure=failure, command=command, problem=None, note=note)


def _staging(cache: Path, *, release: str, on_warning: Callable[[str], None]) -> tuple[Path, bool]:
    """A directory to write the chart in: next to where it is kept (so keeping it is a rename), or, when helm's
    cache cannot hold it (a file, a directory without write access), a temporary one and False: the kept chart is
    a convenience (status shows it, uninstall drops it), never a reason to fail an install."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{release}.", dir=cache.parent)), True
    except OSError as exc:
        on_warning(_unkept(cache, exc))
        return Path(tempfile.mkdtemp(prefix="helm-rdma-")), False


def _keep(chart: Path, cache: Path, *, on_warning: Callable[[str], None]) -> bool:
    """Keep the installed ``chart`` at ``cache``; a warning and False when that fails (helm has installed it)."""
    try:
        if cache.exists():
            shutil.rmtree(cache)
        os.replace(chart, cache)
    except OSError as exc:
        on_warning(_unkept(cache, exc))
        return False
    return True


def _unkept(cache: Path, exc: OSError) -> str:
    return _text(f"HELM_CACHE_HOME ({cache.parent.parent.parent})",
                 f"cannot keep the release's chart at {cache} ({exc.strerror or exc}), so it is not kept",
                 "make HELM_CACHE_HOME a directory you may write, or unset it")


def _text(subject: str, message: str, fix: str) -> str:
    """A warning as the user reads it, after its ``warning:`` prefix."""
    return f"{subject}: {message}" + (f"; fix: {fix}" if fix else "")


def _check_cluster(*, chart: Path, resolved: Resolved, env: HelmEnv, helm: str, create_namespace: bool,
                   on_progress: Callable[[str], None], on_warning: Callable[[str], None]) -> bool:
    """The cluster checks before helm, when a cluster is reachable (a kubeconfig, or an in-cluster service account,
    whose API server answers within 5 s; otherwise helm reports the cluster's absence itself): raise on errors, report
    warnings and a summary line. Whether they ran (and so rendered the chart, applying its rules).

    Raises:
        ValuesCheckError: The chart's rules refuse the values.
        ClusterCheckError: Any check is an error.
    """
    if not kubeconfig_found(env):
        on_progress("no kubeconfig: cluster checks skipped (`helm rdma doctor --cluster` runs them)")
        return False
    try:
        connection = connect(env)
    except ClusterError as exc:
        on_progress(f"cluster checks skipped: {exc}")
        return False
    try:
        report = cluster_report(chart=chart, resolved=resolved, connection=connection, helm=helm,
                                create_namespace=create_namespace)
    except ChartValuesError as exc:
        raise refusal(exc) from None
    if report.errors:
        raise ClusterCheckError(context=report.context, namespace=report.namespace,
                                lines=[c.line() for c in report.checks if c.status != "ok"])
    for check in report.checks:
        if check.status == "warning":
            on_warning(_text(check.check + (f" {check.subject}" if check.subject else ""), check.message, check.fix))
    ok = len(report.checks) - report.warnings
    on_progress(f"cluster checks (kube context {report.context}, namespace {report.namespace}): {ok} ok, "
                f"{report.warnings} warning(s)")
    return True


def _check_group_ports(resolved: Resolved, *, chart: Path, env: HelmEnv, oci: OciAuth,
                       on_progress: Callable[[str], None], rendered: bool) -> bool:
    """Refuse when OCI's rules open the group's ports, or cannot be read (see ``deploy``). Values the chart's rules
    refuse are refused first, as bad input: unless the cluster checks ``rendered`` the chart, one `helm template`
    asks it. Whether the chart's rules have been applied.

    Raises:
        ValuesCheckError: The chart's rules refuse the values.
        GroupPortsOpenError, GroupPortsUncheckedError: See commands.groupports.require_judged_closed.
        ClusterError: The API server stopped answering while the nodes were listed.
    """
    values = resolved.values
    ports = judged_ports(values)
    if ports is None:
        return rendered
    refused = [] if rendered else chart_verdict(resolved)
    if refused:
        raise ValuesCheckError(lines=[f.line() for f in refused])
    if values["clusterNetwork"]["provision"] or not kubeconfig_found(env):
        verdict = judge(values, ports=ports, connection=None, oci=oci, release=resolved.release,
                        namespace=env.namespace)
    else:
        try:
            connection = connect(env)
        except ClusterError as exc:
            verdict = PortsVerdict(ports, note=f"the GPU nodes could not be listed ({exc})")
        else:
            needs = rendered_needs(chart=chart, resolved=resolved, namespace=connection.namespace)
            selector = dict(needs.node_selector)
            verdict = judge(values, ports=ports, connection=connection, oci=oci, release=resolved.release,
                            namespace=connection.namespace, node_selector=selector)
    require_judged_closed(verdict)
    on_progress(f"group ports: no OCI ingress rule opens them to more than the group, and no overlay reaches them "
                f"({len(verdict.found)} {'subject(s)' if values['clusterNetwork']['provision'] else 'node(s)'} "
                "read); pods and processes on the GPU nodes themselves still reach them")
    return True


def _ensure_api_key(resolved: Resolved, *, env: HelmEnv, create_namespace: bool,
                    on_progress: Callable[[str], None], rendered: bool) -> None:
    """Create the API key Secret helm-rdma named, when it is missing (see cluster.apikey). Values the chart's rules
    refuse create nothing: unless the cluster checks ``rendered`` the chart, one `helm template` asks it first.

    Raises:
        ValuesCheckError: The chart's rules refuse the values.
    """
    name = generated_api_key_secret(resolved)
    if name is None or not kubeconfig_found(env):
        return
    refused = [] if rendered else chart_verdict(resolved)
    if refused:
        raise ValuesCheckError(lines=[f.line() for f in refused])
    made = ensure_api_key_secret(name=name, key=str(resolved.values["api"]["keySecret"]["key"]),
                                 release=resolved.release, env=env, create_namespace=create_namespace)
    if made.created:
        on_progress(f"created Secret {made.name} in namespace {made.namespace} with a random API key (kept on "
                    f"upgrade and uninstall); read it: {made.read_command()}")
