"""`helm-rdma generate`: write a complete chart directory for one release."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from helm_rdma.chart.images import chart_images
from helm_rdma.chart.meta import read_identity
from helm_rdma.chart.package import ChartPackage, package_chart
from helm_rdma.chart.registry import resolve_digest
from helm_rdma.chart.write import write_chart
from helm_rdma.checks.doctor import require_clean
from helm_rdma.errors import HelmNotFoundError
from helm_rdma.helm import find_helm, run_chart_command
from helm_rdma.resolve.values import ChartRequest, Resolved, check_values, resolve
from helm_rdma.sizing.planner import Plan


class GenerateResult(NamedTuple):
    """The chart that was written and the plan behind it."""

    path: Path
    files: tuple[str, ...]
    plan: Plan
    notice: str | None = None
    package: ChartPackage | None = None


def generate(request: ChartRequest, *, output: Path, force: bool = False, pin_digests: bool = False,
             package: bool = False) -> GenerateResult:
    """Resolve and check the values (stopping on errors, as `doctor` reports them), render the chart with helm when
    one is installed (so that plain helm is known to take it), then write it into ``output`` atomically (nothing
    is written on error). With ``package``, `helm package` then writes NAME-VERSION.tgz beside ``output``.

    ``pin_digests`` asks each image's registry for the digest its tag points at and writes it into the image's
    ``digest`` value (images whose digest is set already are left alone).

    Raises:
        RegistryError: With ``pin_digests``, a registry that did not answer with a digest (nothing is written).
        HelmNotFoundError: ``package`` without a helm binary.
    """
    resolved = resolve(request)
    warnings = require_clean(resolved)
    pinned = _pin_digests(resolved) if pin_digests else []
    unchecked: list[str] = []
    written = write_chart(resolved, output=output, force=force,
                          check=lambda chart: _render(resolved, chart, unchecked))
    notice = "\n".join([*warnings, *pinned, *unchecked]) or None
    packaged = None
    if package:
        name, version = read_identity(written.path)
        packaged = package_chart(written.path, destination=written.path.parent, name=name, version=version,
                                 helm=find_helm())
    return GenerateResult(path=written.path, files=written.files, plan=resolved.plan, notice=notice,
                          package=packaged)


def _pin_digests(resolved: Resolved) -> list[str]:
    """Set the digest of every image of the chart that has none to what its tag points at now; one line each."""

    lines = []
    for image in chart_images(resolved.values):
        if image.digest:
            continue
        tag = image.tag or "latest"
        digest = resolve_digest(repository=image.repository, tag=tag, key=image.key)
        target = resolved.values
        for part in image.key.split("."):
            target = target[part]
        target["digest"] = digest
        resolved.notes[f"{image.key}.digest"] = (f"Pinned by `helm-rdma generate --pin-digests`: what "
                                                 f"{image.repository}:{tag} pointed at when this chart was written.")
        lines.append(f"pinned {image.key} {image.repository}:{tag} to {digest}")
    return lines


def _render(resolved: Resolved, chart: Path, unchecked: list[str]) -> None:
    """Render the staged chart with `helm template`, as Argo CD or Flux will; a chart helm refuses is not written."""
    try:
        helm = find_helm()
    except HelmNotFoundError:
        unchecked.append("helm was not found, so the chart was not rendered before it was written; "
                         "check it with `helm template` (or set HELM_BIN)")
        return
    run_chart_command(["template", resolved.release, str(chart)], helm=helm, explain=lambda: check_values(resolved))
