"""Packaging a chart directory with `helm package`, and the `helm push` line that publishes it to an OCI registry."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from helm_rdma.errors import PackageError, PackagePathError
from helm_rdma.helm import run_helm

# OCI Registry (OCIR): REGION is the region key (iad, phx, fra...), NAMESPACE the tenancy's Object Storage namespace.
OCIR_EXAMPLE = "oci://iad.ocir.io/NAMESPACE/charts"


@dataclass(frozen=True)
class ChartPackage:
    """A packaged chart: the archive, the chart's name and version."""

    path: Path
    name: str
    version: str

    def push_command(self) -> str:
        """The `helm push` that publishes it to OCIR (helm stores the version's `+` as `_` in the tag)."""
        return f"helm push {self.path} {OCIR_EXAMPLE}"


def package_chart(chart: Path, *, destination: Path, name: str, version: str, helm: str) -> ChartPackage:
    """Run `helm package` on ``chart`` (its .helmignore keeps caches and leftovers out) into ``destination``.

    helm writes into a fresh directory inside ``destination``, and the archive is then renamed over
    NAME-VERSION.tgz: whatever stood at that predictable name (a symbolic link included) is replaced, never written
    through, and a failed run leaves no half-written archive.

    Raises:
        HelmCommandError: helm package failed.
        PackageError: The archive is not where helm writes it.
        PackagePathError: What stands at the archive's name cannot be replaced (a directory).
    """
    destination.mkdir(parents=True, exist_ok=True)
    archive_name = f"{name}-{version}.tgz"
    if (destination / archive_name).is_dir() and not (destination / archive_name).is_symlink():
        raise PackagePathError(path=destination / archive_name, chart=chart, problem="is a directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{archive_name}.", dir=destination))
    try:
        run_helm(["package", str(chart), "--destination", str(staging)], helm=helm)
        written = staging / archive_name
        if written.is_symlink() or not written.is_file():
            raise PackageError(chart=chart, expected=written)
        path = destination / archive_name
        try:
            os.replace(written, path)
        except OSError as exc:
            raise PackagePathError(path=path, chart=chart, problem=exc.strerror or str(exc)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ChartPackage(path=path, name=name, version=version)
