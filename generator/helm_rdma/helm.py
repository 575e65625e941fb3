"""Running the helm binary: HELM_BIN (set by helm for its plugins), else `helm` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import HelmCommandError, HelmNotFoundError


@dataclass(frozen=True)
class HelmResult:
    """What a helm command printed."""

    command: tuple[str, ...]
    stdout: str
    stderr: str


def find_helm() -> str:
    """The helm binary to call.

    Raises:
        HelmNotFoundError: HELM_BIN names no executable, or there is no helm on PATH.
    """
    explicit = os.environ.get("HELM_BIN")
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise HelmNotFoundError(tried=f"HELM_BIN={explicit} is not an executable")
        return found
    found = shutil.which("helm")
    if found is None:
        raise HelmNotFoundError(tried="no helm on PATH and HELM_BIN is not set")
    return found


def run_helm(args: Sequence[str], *, helm: str | None = None, cwd: Path | None = None) -> HelmResult:
    """Run helm with ``args`` and capture its output.

    Raises:
        HelmNotFoundError: No helm binary.
        HelmCommandError: helm exited non-zero (the message holds the command and its stderr).
    """
    binary = helm or find_helm()
    command = (binary, *args)
    try:
        proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    except OSError as exc:
        raise HelmNotFoundError(tried=f"{binary}: {exc.strerror}") from None
    if proc.returncode != 0:
        raise HelmCommandError(command=command, returncode=proc.returncode, stderr=proc.stderr)
    return HelmResult(command=command, stdout=proc.stdout, stderr=proc.stderr)
