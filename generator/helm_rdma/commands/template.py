"""`helm-rdma template`: generate into a temporary directory and render it with `helm template`."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..chart import write_chart
from ..errors import ChartValuesError, HelmCommandError
from ..helm import find_helm, run_helm
from ..values import resolve


@dataclass(frozen=True)
class TemplateResult:
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
    namespace: str | None = None,
    helm_args: Sequence[str] = (),
) -> TemplateResult:
    """Render the chart of one release with ``helm template``; ``helm_args`` go to helm as they are."""
    resolved = resolve(release=release, preset=preset, model=model, value_files=value_files,
                       set_values=set_values, nodes=nodes, max_model_len=max_model_len)
    helm = find_helm()
    with tempfile.TemporaryDirectory(prefix="helm-rdma-") as tmp:
        chart = write_chart(resolved, output=Path(tmp) / "chart", readme=False).path
        args = ["template", release, str(chart)]
        if namespace:
            args += ["--namespace", namespace]
        try:
            result = run_helm([*args, *helm_args], helm=helm)
        except HelmCommandError as exc:
            raise ChartValuesError.from_helm(exc) from None
    return TemplateResult(manifests=result.stdout, command=result.command)
