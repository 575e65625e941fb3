"""`helm-rdma verify`: run helm test, read the preflight's result, and print one summary of the fabric."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import HelmCommandError, InputError
from ..helm import run_helm
from ..helmenv import HelmEnv
from ..kube import read_configmap, scale_workload


class Check(NamedTuple):
    """One line of the summary."""

    name: str
    passed: bool | None  # None: nothing to judge (not run)
    detail: str


class VerifyResult(NamedTuple):
    """The summary: every check, and whether all that ran passed."""

    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)


def fullname(release: str, values: dict[str, Any]) -> str:
    """The chart's vllm-rdma.fullname for these values (see _helpers.tpl)."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])[:52].rstrip("-")
    name = values.get("nameOverride") or "vllm-rdma"
    return (release if name in release else f"{release}-{name}")[:52].rstrip("-")


def verify(*, release: str, env: HelmEnv, timeout: str = "15m",
           rerun_bandwidth: Callable[[str], bool] | None = None) -> VerifyResult:
    """Verify ``release``: helm test (RDMA NICs on every node, then the API), and the preflight's bandwidth.

    With ``rerun_bandwidth`` (verify --nccl), the bandwidth test runs again first; the callback gets the warning to
    show and says whether to go on.

    Raises:
        HelmCommandError: `helm get values` failed (no such release, no cluster).
        ClusterError: The preflight result could not be read.
        InputError: --nccl without the chart that helm rdma installed.
    """
    values = json.loads(run_helm(["get", "values", release, "--all", "--output", "json", *env.global_flags()]).stdout)
    rerun = None
    if rerun_bandwidth is not None:
        rerun = _rerun_preflight(release, values, env, rerun_bandwidth)
    preset = values.get("preset", {})
    nodes = int(values.get("nodes", 1)) * int(values.get("replicas", 1))
    checks = [Check("release", None, f"{release}: {nodes} x {preset.get('shape')} "
                                     f"({values.get('nodes')} per group, {values.get('replicas')} group(s))")]
    try:
        tested = run_helm(["test", release, *env.global_flags(), "--timeout", timeout])
        checks.append(Check("helm test", True, _last_line(tested.stdout) or "all test hooks succeeded"))
    except HelmCommandError as exc:
        checks.append(Check("helm test", False, _last_line(exc.stderr) or f"exit {exc.returncode}"))
    hcas = str(values.get("nccl", {}).get("settings", {}).get("NCCL_IB_HCA", ""))
    checks.append(Check("RDMA NICs", checks[-1].passed, f"{len(hcas.lstrip('=^').split(','))} per node expected "
                                                        f"({hcas}); checked ACTIVE by helm test on every node"))
    if rerun is not None:
        checks.append(rerun)
    checks.append(_preflight(release, values, env))
    return VerifyResult(checks=tuple(checks))


def _rerun_preflight(release: str, values: dict[str, Any], env: HelmEnv, confirm: Callable[[str], bool]) -> Check:
    """Stop the serving pods (the test needs every GPU), run the pre-upgrade preflight hook through helm upgrade
    --reuse-values (which also brings the pods back), and put the replicas back by hand if helm did not."""
    chart = env.chart_cache(release)
    if not (chart / "Chart.yaml").is_file():
        raise InputError(f"verify --nccl re-runs the chart helm rdma installed, kept in {chart}, and there is none: "
                         "install or upgrade with helm rdma first")
    if int(values.get("nodes", 1)) < 2:
        return Check("re-run", None, "groups of one node have no RDMA path to test")
    kind, name = values.get("workload", {}).get("kind", "LeaderWorkerSet"), fullname(release, values)
    warning = (f"The bandwidth test needs every GPU of the nodes: the {kind} {name} is scaled to 0 (the model "
               "unloads), the preflight runs, and helm upgrade --reuse-values brings the pods back (a 405B model "
               "takes long to load again).")
    if not confirm(warning):
        return Check("re-run", None, "declined: the last preflight result is shown")
    before = scale_workload(kind=kind, name=name, replicas=0, env=env)
    try:
        run_helm(["upgrade", release, str(chart), "--reuse-values", *env.global_flags(), "--timeout", "60m",
                  "--set", "verify.preflight.enabled=true"])
    except HelmCommandError as exc:
        scale_workload(kind=kind, name=name, replicas=before, env=env)
        return Check("re-run", False, f"helm upgrade failed, replicas put back: {_last_line(exc.stderr)}")
    return Check("re-run", True, f"preflight ran again; {kind} {name} restored by helm upgrade")


def _preflight(release: str, values: dict[str, Any], env: HelmEnv) -> Check:
    preset = values.get("preset", {})
    line_rate = int(preset.get("rdmaNics", 0)) * int(preset.get("rdmaNicGbps", 0)) / 8
    if int(values.get("nodes", 1)) < 2:
        return Check("bandwidth", None, "groups of one node have no RDMA path to test")
    name = f"{fullname(release, values)}-preflight-result"
    data = read_configmap(name=name, env=env)
    if data is None or "result.json" not in data:
        return Check("bandwidth", False, f"no preflight result (ConfigMap {name}): the preflight did not run "
                                         "(verify.preflight.enabled) or failed before measuring")
    result = json.loads(data["result.json"])
    expected = preset.get("busBandwidthExpectedGBps")
    transport = result.get("transport", "unknown") + (" with GPUDirect RDMA" if result.get("gdrdma") else "")
    detail = (f"{result.get('busbw_gbps', 0):.1f} GB/s all_reduce bus bandwidth over {transport} "
              f"(floor {result.get('threshold_gbps'):g}, published {expected if expected else 'n/a'}, "
              f"line rate {line_rate:g} GB/s per node); NCCL {result.get('nccl_version') or 'unknown'}, "
              f"{result.get('ranks')} ranks, measured {result.get('time', '?')}")
    return Check("bandwidth", bool(result.get("passed")), detail if result.get("passed") else
                 f"{result.get('reason')}: {detail}")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
