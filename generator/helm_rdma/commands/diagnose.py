"""`helm-rdma diagnose`: read the logs of every pod of a release (or a directory of saved logs) and say why the group
hangs or fails at start-up."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helm_rdma.cluster.kube import pod_log_sources
from helm_rdma.contract import INSTANCE_LABEL
from helm_rdma.datafiles import values_default
from helm_rdma.errors import (
    HelmCommandError,
    HelmNotFoundError,
    NoPodsError,
    UnknownPresetError,
)
from helm_rdma.helm import run_helm
from helm_rdma.helmenv import HelmEnv
from helm_rdma.logs.check import Diagnosis, Expectations, diagnose_logs
from helm_rdma.logs.sources import LogSource, directory_sources
from helm_rdma.sizing.presets import Preset, load_preset


@dataclass(frozen=True)
class DiagnoseResult:
    """The diagnosis, where the logs came from, and a notice for the user (or None)."""

    diagnosis: Diagnosis
    read_from: str
    notice: str | None = None


def diagnose(*, release: str, env: HelmEnv, logs_dir: Path | None = None, interface: str | None = None,
             preset: str | None = None) -> DiagnoseResult:
    """Diagnose ``release`` from the cluster, or from ``logs_dir`` when given.

    The expectations come from the flags, then (cluster only) the release's values (`helm get values`), then the
    preset, then the chart's defaults: the front-end interface (network.interface), GPUDirect RDMA support (the
    preset's rdma.gpuDirectRdma) and the bandwidth floor (verify.preflight.thresholdGBps).

    Raises:
        LogsDirError: ``logs_dir`` is missing or holds no log file (exit 2).
        UnknownPresetError: ``preset`` names no preset (exit 2).
        ClusterError: The cluster could not be read (exit 1).
        NoPodsError: The release has no pods in the namespace (exit 1).
    """
    notice = None
    values: dict[str, Any] = {}
    sources: list[LogSource]
    if logs_dir is not None:
        sources = directory_sources(logs_dir)  # checked first: a bad directory is bad input, whatever else
        read_from = f"directory {logs_dir}"
    else:
        try:
            values = json.loads(run_helm(["get", "values", release, "--all", "--output", "json",
                                          *env.global_flags()]).stdout or "{}") or {}
        except (HelmCommandError, HelmNotFoundError, ValueError):
            notice = (f"no values of a helm release {release} here (installed by Argo CD or `helm template`?): "
                      "expecting the chart's defaults; --interface and --preset set them")
        namespace, sources = pod_log_sources(release=release, env=env)
        if not sources:
            raise NoPodsError(release=release, namespace=namespace, label=INSTANCE_LABEL)
        read_from = f"namespace {namespace}"
    expect = expectations(values=values, interface=interface, preset=preset)
    return DiagnoseResult(diagnosis=diagnose_logs(sources, expect=expect), read_from=read_from, notice=notice)


def expectations(*, values: dict[str, Any], interface: str | None, preset: str | None) -> Expectations:
    """What the logs of a healthy group show, from the flags, the release's values, the preset and the chart.

    Raises:
        UnknownPresetError: ``preset`` (the flag) names no preset.
    """
    chosen = _preset(preset, values)
    threshold = _get(values, "verify", "preflight", "thresholdGBps")
    if threshold is None and chosen is not None:
        threshold = chosen.bus_bandwidth.threshold_gbps
    if interface is None:
        interface = _get(values, "network", "interface")
    if interface is None and chosen is not None:
        interface = chosen.network.interface
    if interface is None:
        interface = values_default("network.interface")
    return Expectations(interface=str(interface),
                        gpu_direct_rdma=chosen.gpu_direct_rdma if chosen is not None else Expectations.gpu_direct_rdma,
                        threshold_gbps=float(threshold) if isinstance(threshold, (int, float)) else None)


def _preset(flag: str | None, values: dict[str, Any]) -> Preset | None:
    if flag is not None:
        return load_preset(flag)
    name = _get(values, "preset", "name")
    try:
        return load_preset(str(name)) if name else None
    except UnknownPresetError:  # a release made from a preset this helm-rdma does not ship
        return None


def _get(values: dict[str, Any], *keys: str) -> Any:
    node: Any = values
    for key in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node
