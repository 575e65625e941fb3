"""Running the helm binary: HELM_BIN (set by helm for its plugins), else `helm` on PATH."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from helm_rdma.errors import ChartValuesError, HelmCommandError, HelmNotFoundError, InputError


class HelmResult(NamedTuple):
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


def helm_major_version(helm: str) -> int:
    """The major version of a helm binary (3 or 4), from `helm version --short`.

    Raises:
        HelmCommandError: helm did not answer with a version.
    """
    out = run_helm(["version", "--short"], helm=helm).stdout.strip()
    try:
        return int(out.lstrip("v").split(".", 1)[0])
    except ValueError:
        raise HelmCommandError(command=(helm, "version", "--short"), returncode=0,
                               stderr=f"unexpected version output: {out!r}") from None


def run_chart_command(args: Sequence[str], *, helm: str, explain: Callable[[], None] | None = None) -> HelmResult:
    """``run_helm`` for commands that render our chart. When helm fails, ``explain`` (our own check of the values,
    with the file or flag of each problem) may raise first; when the chart's cross-field checks fail, the error is a
    ChartValuesError (bad input, exit 2) listing the problems, not helm's raw output."""
    try:
        return run_helm(args, helm=helm)
    except HelmCommandError as exc:
        if explain is not None:
            explain()
        raise ChartValuesError.from_helm(exc) from None


def duration_seconds(text: str, *, flag: str = "--timeout") -> float:
    """Seconds in a duration as helm writes them (90m, 2h, 1h30m, 45s; a bare number is seconds).

    Raises:
        InputError: ``text`` is not such a duration (the message names ``flag``).
    """
    import re

    value = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|m|s)", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise InputError(f"{flag} {text!r} is not a duration; use for example 90m, 2h or 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
