"""`helm-rdma generate`: write a complete chart directory for one release."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..chart import write_chart
from ..chartmeta import read_identity
from ..chartpackage import ChartPackage, package_chart
from ..doctor import require_clean
from ..errors import HelmNotFoundError
from ..helm import find_helm, run_chart_command
from ..planner import Plan
from ..values import Resolved, check_values, resolve
from ..valuesources import ValueSources


class GenerateResult(NamedTuple):
    """The chart that was written and the plan behind it."""

    path: Path
    files: tuple[str, ...]
    plan: Plan
    notice: str | None = None
    package: ChartPackage | None = None


def generate(
    *,
    release: str,
    preset: str,
    output: Path,
    model: str | None = None,
    nodes: int | None = None,
    max_model_len: int | None = None,
    value_files: tuple[Path, ...] = (),
    set_values: tuple[str, ...] = (),
    sources: ValueSources | None = None,
    force: bool = False,
    package: bool = False,
) -> GenerateResult:
    """Resolve and check the values (stopping on errors, as `doctor` reports them), render the chart with helm when
    one is installed (so that plain helm is known to take it), then write it into ``output`` atomically (nothing
    is written on error). With ``package``, `helm package` then writes NAME-VERSION.tgz beside ``output``.

    Raises:
        HelmNotFoundError: ``package`` without a helm binary.
    """
    resolved = resolve(release=release, preset=preset, model=model, value_files=value_files, set_values=set_values,
                       sources=sources, nodes=nodes, max_model_len=max_model_len)
    warnings = require_clean(resolved)
    unchecked: list[str] = []
    written = write_chart(resolved, output=output, force=force,
                          check=lambda chart: _render(resolved, chart, unchecked))
    notice = "\n".join(filter(None, [resolved.model_note, *warnings, *unchecked])) or None
    packaged = None
    if package:
        name, version = read_identity(written.path)
        packaged = package_chart(written.path, destination=written.path.parent, name=name, version=version,
                                 helm=find_helm())
    return GenerateResult(path=written.path, files=written.files, plan=resolved.plan, notice=notice,
                          package=packaged)



def _render(resolved: Resolved, chart: Path, unchecked: list[str]) -> None:
    """Render the staged chart with `helm template`, as Argo CD or Flux will; a chart helm refuses is not written."""
    try:
        helm = find_helm()
    except HelmNotFoundError:
        unchecked.append("helm was not found, so the chart was not rendered before it was written; "
                         "check it with `helm template` (or set HELM_BIN)")
        return
    run_chart_command(["template", resolved.release, str(chart)], helm=helm, explain=lambda: check_values(resolved))
