"""`helm-rdma verify`: run helm test, read the preflight's result, and print one summary of the fabric."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from ..errors import HelmCommandError
from ..helm import run_helm
from ..helmenv import HelmEnv
from ..kube import read_configmap


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


def verify(*, release: str, env: HelmEnv, timeout: str = "15m") -> VerifyResult:
    """Verify ``release``: helm test (RDMA NICs on every node, then the API), and the preflight's bandwidth.

    Raises:
        HelmCommandError: `helm get values` failed (no such release, no cluster).
        ClusterError: The preflight result could not be read.
    """
    values = json.loads(run_helm(["get", "values", release, "--all", "--output", "json", *env.global_flags()]).stdout)
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
    checks.append(_preflight(release, values, env))
    return VerifyResult(checks=tuple(checks))


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
