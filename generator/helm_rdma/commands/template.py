"""`helm-rdma template`: generate into a temporary directory and render it with `helm template`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from helm_rdma.chart.write import write_chart
from helm_rdma.helm import find_helm, run_chart_command
from helm_rdma.resolve.values import ChartRequest, check_values, resolve


class TemplateResult(NamedTuple):
    """The rendered manifests."""

    manifests: str


def template(request: ChartRequest, *, namespace: str | None = None, helm_args: Sequence[str] = ()) -> TemplateResult:
    """Render the chart of one release with ``helm template``; ``helm_args`` go to helm as they are."""
    resolved = resolve(request, validate=False)
    helm = find_helm()
    with tempfile.TemporaryDirectory(prefix="helm-rdma-") as tmp:
        chart = write_chart(resolved, output=Path(tmp) / "chart", compact=True).path
        args = ["template", request.release, str(chart)]
        if namespace:
            args += ["--namespace", namespace]
        result = run_chart_command([*args, *helm_args], helm=helm, explain=lambda: check_values(resolved))
    return TemplateResult(manifests=result.stdout)
