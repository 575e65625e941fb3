"""Packaging a chart directory with `helm package`, and the `helm push` line that publishes it to an OCI registry."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

from helm_rdma.errors import PackageError
from helm_rdma.helm import run_helm

# OCI Registry (OCIR): REGION is the region key (iad, phx, fra...), NAMESPACE the tenancy's Object Storage namespace.
OCIR_EXAMPLE = "oci://iad.ocir.io/NAMESPACE/charts"


@dataclass(frozen=True)
class ChartPackage:
    """A packaged chart: the archive, the chart's name and version, and the files inside it."""

    path: Path
    name: str
    version: str
    members: tuple[str, ...]

    def push_command(self, registry: str = OCIR_EXAMPLE) -> str:
        """The `helm push` that publishes it (helm stores the version's `+` as `_` in the tag)."""
        return f"helm push {self.path} {registry}"


def package_chart(chart: Path, *, destination: Path, name: str, version: str, helm: str) -> ChartPackage:
    """Run `helm package` on ``chart`` (its .helmignore keeps caches and leftovers out) into ``destination``.

    Raises:
        HelmCommandError: helm package failed.
        PackageError: The archive is not where helm writes it.
    """
    destination.mkdir(parents=True, exist_ok=True)
    run_helm(["package", str(chart), "--destination", str(destination)], helm=helm)
    path = destination / f"{name}-{version}.tgz"
    if not path.is_file():
        raise PackageError(chart=chart, expected=path)
    with tarfile.open(path) as archive:
        members = tuple(sorted(m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile() and "/" in m.name))
    return ChartPackage(path=path, name=name, version=version, members=members)
