"""`helm-rdma template`: generate into a temporary directory and render it with `helm template`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from ..chart import write_chart
from ..helm import find_helm, run_chart_command
from ..values import check_values, resolve
from ..valuesources import ValueSources


class TemplateResult(NamedTuple):
    """The rendered manifests and the helm command that rendered them."""

    manifests: str
    command: tuple[str, ...]


def template(
    *,
    release: str,
    preset: str,
    model: str | None = None,
    nodes: int | None = None,
    max_model_len: int | None = None,
    value_files: tuple[Path, ...] = (),
    set_values: tuple[str, ...] = (),
    sources: ValueSources | None = None,
    namespace: str | None = None,
    helm_args: Sequence[str] = (),
) -> TemplateResult:
    """Render the chart of one release with ``helm template``; ``helm_args`` go to helm as they are."""
    resolved = resolve(release=release, preset=preset, model=model, value_files=value_files, set_values=set_values,
                       sources=sources, nodes=nodes, max_model_len=max_model_len, validate=False)
    helm = find_helm()
    with tempfile.TemporaryDirectory(prefix="helm-rdma-") as tmp:
        chart = write_chart(resolved, output=Path(tmp) / "chart", compact=True).path
        args = ["template", release, str(chart)]
        if namespace:
            args += ["--namespace", namespace]
        result = run_chart_command([*args, *helm_args], helm=helm, explain=lambda: check_values(resolved))
    return TemplateResult(manifests=result.stdout, command=result.command)
