"""`helm-rdma uninstall`: helm uninstall, then forget the kept chart."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from helm_rdma.datafiles import values_default
from helm_rdma.helm import run_helm
from helm_rdma.helmenv import HelmEnv


class UninstallResult(NamedTuple):
    """What helm printed."""

    output: str


def _deprovision_timeout(chart: Path) -> list[str]:
    """helm's --timeout for a release whose pre-delete hook terminates the cluster network (deleteOnUninstall): the
    hook waits up to clusterNetwork.timeoutMinutes for TERMINATED, and helm gives every hook only --timeout (5m by
    default), after which the release is left `uninstalling`. Read from the kept chart's values; none, no change."""
    import yaml

    try:
        values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8")) or {}
        cn = values.get("clusterNetwork") or {}
        if cn.get("deleteOnUninstall"):
            minutes = int(cn.get("timeoutMinutes") or values_default("clusterNetwork.timeoutMinutes"))
            return ["--timeout", f"{minutes + 10}m"]
    except (OSError, ValueError, TypeError, yaml.YAMLError):
        pass
    return []


# Go's strconv.ParseBool, which reads a bool flag's `--flag=VALUE` (spf13/pflag bool.go); a bare --dry-run is true.
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})


def _dry_run(helm_args: Sequence[str]) -> bool:
    """Whether helm was asked for `uninstall --dry-run` ("simulate a uninstall": helm/helm v4.1.4
    pkg/cmd/uninstall.go:75, v3.17.2 cmd/helm/uninstall.go:75), read as pflag reads a bool flag: the last one wins."""
    asked = False
    for arg in helm_args:
        if arg == "--dry-run":
            asked = True
        elif arg.startswith("--dry-run="):
            asked = arg.partition("=")[2] in _GO_TRUE
    return asked


def uninstall(*, release: str, env: HelmEnv, helm_args: Sequence[str] = ()) -> UninstallResult:
    """Uninstall ``release`` with helm; the kept chart goes only once helm succeeded, and never after a dry run
    (``--dry-run`` among ``helm_args``), which uninstalls nothing. A release whose chart
    terminates its cluster network on uninstall gets a helm --timeout that covers the termination, unless one is
    given after --.

    Raises:
        HelmNotFoundError, HelmCommandError: helm is missing or failed.
    """
    cache = env.chart_cache(release)
    args = ["uninstall", release, *env.global_flags(), *helm_args]
    if not any(a == "--timeout" or a.startswith("--timeout=") for a in helm_args):
        args += _deprovision_timeout(cache)
    result = run_helm(args)
    if cache.is_dir() and not _dry_run(helm_args):
        shutil.rmtree(cache)
    return UninstallResult(output=result.stdout)
