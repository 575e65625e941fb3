"""`helm-rdma uninstall`: helm uninstall, then forget the kept chart."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import NamedTuple

from ..helm import run_helm
from ..helmenv import HelmEnv


class UninstallResult(NamedTuple):
    """What helm printed and whether a kept chart was removed."""

    output: str
    removed_chart: bool


def uninstall(*, release: str, env: HelmEnv, helm_args: Sequence[str] = ()) -> UninstallResult:
    """Uninstall ``release`` with helm; the kept chart goes only once helm succeeded.

    Raises:
        HelmNotFoundError, HelmCommandError: helm is missing or failed.
    """
    result = run_helm(["uninstall", release, *env.global_flags(), *helm_args])
    cache = env.chart_cache(release)
    removed = cache.is_dir()
    if removed:
        shutil.rmtree(cache)
    return UninstallResult(output=result.stdout, removed_chart=removed)
