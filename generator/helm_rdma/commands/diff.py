"""`helm-rdma diff`: what an upgrade would change, by the helm-diff plugin, on the very chart upgrade would install."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from helm_rdma.chart.write import write_chart
from helm_rdma.commands.doctor import render_checked, require_clean
from helm_rdma.errors import HelmDiffMissingError
from helm_rdma.helm import find_helm, helm_major_version, run_helm
from helm_rdma.helmenv import HelmEnv
from helm_rdma.resolve.values import ChartRequest, resolve


class DiffResult(NamedTuple):
    """What helm diff printed, and the warnings of helm-rdma's checks (or None)."""

    output: str
    notice: str | None = None


def has_helm_diff(helm: str) -> bool:
    """Whether ``helm`` has the helm-diff plugin (named `diff` in `helm plugin list`, on Helm 3 and 4 alike).

    Raises:
        HelmCommandError: helm could not list its plugins.
    """
    listed = run_helm(["plugin", "list"], helm=helm).stdout.splitlines()[1:]  # under a NAME ... header
    return any(line.split()[:1] == ["diff"] for line in listed)


def diff(request: ChartRequest, *, env: HelmEnv, helm_args: Sequence[str] = ()) -> DiffResult:
    """Show what `upgrade` with the same options would change in ``release``, changing nothing.

    The chart is generated exactly as upgrade generates it, into a temporary directory, and handed to
    `helm diff upgrade --allow-unreleased` (upgrade installs a release that is absent) with helm's global flags
    from ``env`` and `--reset-values` (as upgrade: the chart holds every value); ``helm_args`` go to helm diff as
    they are.

    Raises:
        InputError: Bad values, or values helm-rdma's checks (as doctor) or the chart's reject.
        HelmNotFoundError, HelmCommandError: helm is missing or failed.
        HelmDiffMissingError: helm has no helm-diff plugin (the message holds the line that installs it).
    """
    resolved = resolve(request)
    warnings = [f.line() for f in require_clean(resolved)]
    notice = "\n".join(warnings) or None
    helm = find_helm()
    if not has_helm_diff(helm):
        raise HelmDiffMissingError(helm=helm, major=helm_major_version(helm))
    with tempfile.TemporaryDirectory(prefix="helm-rdma-") as tmp:
        chart = write_chart(resolved, output=Path(tmp) / "chart").path
        args = ["diff", "upgrade", request.release, str(chart), "--allow-unreleased", *env.global_flags(),
                "--reset-values", *helm_args]  # as upgrade: helm-diff reuses the last values too (cmd/helm.go:221)
        result = render_checked(args, helm=helm, resolved=resolved)
    return DiffResult(output=result.stdout, notice=notice)
