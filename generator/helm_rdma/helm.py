"""Running the helm binary: HELM_BIN (set by helm for its plugins), else `helm` on PATH."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from helm_rdma.errors import ChartValuesError, DurationError, HelmCommandError, HelmInterruptedError, HelmNotFoundError
from helm_rdma.helmenv import cache_get, cache_put

# What `helm version --short` prints ("print the version number": helm.sh/docs/helm/helm_version): the release's
# semantic version and the commit, v3.17.2+gcc0bbbd and v4.1.4+g05fa379 for the helms `make setup` fetches.
HELM_VERSION = re.compile(r"v[34]\.[0-9]+\.[0-9]+\S*")
HELM_VERSION_TIMEOUT_SECONDS = 10
# The helm commands that change a release. helm install and upgrade handle SIGINT and SIGTERM themselves to leave the
# release consistent: they cancel the operation, which marks the release failed (and rolls it back with --atomic /
# --rollback-on-failure) instead of leaving it pending (helm/helm v4.1.4 pkg/cmd/upgrade.go:245 and
# pkg/cmd/install.go:320 signal.Notify; pkg/action/upgrade.go:437 handleContext -> failRelease :523; v3.17.2
# cmd/helm/upgrade.go:234, cmd/helm/install.go:310). uninstall and rollback do not, yet a signal sent on to them still
# ends them as a terminal's Ctrl-C would, and their release may be left uninstalling or pending-rollback.
RELEASE_COMMANDS = frozenset({"install", "upgrade", "uninstall", "rollback"})
# How long helm may take, after the signal, to record the release before it is killed.
HELM_SIGNAL_GRACE_SECONDS = 60.0
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_POLL_SECONDS = 0.5


class HelmResult(NamedTuple):
    """A helm command and what it printed on standard output."""

    command: tuple[str, ...]
    stdout: str


def find_helm() -> str:
    """The helm binary to call: HELM_BIN, else helm on PATH, once known to answer `helm version` as helm 3 or 4.

    Raises:
        HelmNotFoundError: HELM_BIN names no executable or one that is not helm, or there is no helm (or not helm)
            on PATH.
    """
    explicit = os.environ.get("HELM_BIN")
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise HelmNotFoundError(tried=f"HELM_BIN={explicit} is not an executable")
        _check_helm(found, named=f"HELM_BIN={explicit}")
        return found
    found = shutil.which("helm")
    if found is None:
        raise HelmNotFoundError(tried="no helm on PATH and HELM_BIN is not set")
    _check_helm(found, named=f"helm on PATH ({found})")
    return found


def _check_helm(binary: str, *, named: str) -> None:
    """Ask ``binary`` for `helm version --short` once: the verdict is kept in helm-rdma's cache, keyed by the
    binary's path, size and modification time (a new helm is asked again), so commands stay quick."""
    try:
        st = os.stat(binary)
    except OSError as exc:
        raise HelmNotFoundError(tried=f"{named}: {exc.strerror}") from None
    key = f"{os.path.realpath(binary)}:{st.st_size}:{st.st_mtime_ns}"
    if cache_get("helm", key) is not None:
        return
    try:
        proc = subprocess.run([binary, "version", "--short"], capture_output=True, encoding="utf-8",
                              errors="replace", stdin=subprocess.DEVNULL, timeout=HELM_VERSION_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise HelmNotFoundError(tried=f"{named} did not answer `version --short` within "
                                      f"{HELM_VERSION_TIMEOUT_SECONDS} s") from None
    except (OSError, ValueError) as exc:
        raise HelmNotFoundError(tried=f"{named}: {exc}") from None
    answer = proc.stdout.strip()
    if proc.returncode != 0 or not HELM_VERSION.fullmatch(answer):
        raise HelmNotFoundError(tried=f"{named} is not helm 3 or 4: `version --short` answered "
                                      f"{(answer or proc.stderr.strip())[:80]!r} (exit {proc.returncode})")
    cache_put("helm", key, {"version": answer})  # only a pass is kept


def run_helm(args: Sequence[str], *, helm: str | None = None) -> HelmResult:
    """Run helm with ``args`` and capture its output.

    Raises:
        HelmNotFoundError: No helm binary.
        HelmCommandError: helm exited non-zero (the message holds the command and its stderr).
    """
    binary = helm or find_helm()
    command = (binary, *args)
    try:
        if args and args[0] in RELEASE_COMMANDS:
            returncode, stdout, stderr = _run_release_command(command)
        else:
            # helm writes UTF-8; a byte that is not (a binary a values file or a HELM_BIN put there) is shown as
            # U+FFFD.
            proc = subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace")
            returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except OSError as exc:
        raise HelmNotFoundError(tried=f"{binary}: {exc.strerror}") from None
    if returncode != 0:
        raise HelmCommandError(command=command, returncode=returncode, stderr=stderr)
    return HelmResult(command=command, stdout=stdout)


class _Forwarder:
    """The SIGINT/SIGTERM handler while helm changes a release: the first signal goes on to helm, once; later ones
    only wait with it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None
        self.signum: int | None = None
        self.at = 0.0

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            return
        self.signum, self.at = signum, time.monotonic()
        self.forward()

    @property
    def sent(self) -> int:
        """What helm gets: the signal itself, or SIGTERM for a SIGHUP (a closed terminal, a dropped ssh session),
        which helm does not handle and would die of without recording the release."""
        return signal.SIGTERM if self.signum == signal.SIGHUP else int(self.signum or signal.SIGTERM)

    def forward(self) -> None:
        if self.proc is not None and self.signum is not None and self.proc.returncode is None:
            try:
                self.proc.send_signal(self.sent)
            except ProcessLookupError:  # helm has just ended
                pass


def _run_release_command(command: tuple[str, ...]) -> tuple[int, str, str]:
    """Run a helm command that changes a release, with an interrupt sent on to helm rather than killing it.

    Python's subprocess.run kills its child on any exception (CPython Lib/subprocess.py, run: ``except:
    process.kill()``), and a SIGINT (KeyboardInterrupt) or SIGTERM (SystemExit, cli/base.py) is one: helm would never
    record the release. Here helm starts in a session of its own, so a terminal's Ctrl-C, sent to the terminal's
    foreground process group, reaches helm-rdma only and helm gets it once, from here; a SIGTERM sent to helm-rdma
    alone (CI, timeout, kill) reaches helm the same way. helm then has HELM_SIGNAL_GRACE_SECONDS to finish (mark the
    release failed, roll back), after which it is killed. A new session rather than only a process group: helm keeps
    its standard input (an exec credential plugin's prompt reads it) without a controlling terminal that would stop
    a background group reading it (SIGTTIN).

    Raises:
        HelmInterruptedError: A signal came while helm ran; helm has ended.
    """
    forwarder = _Forwarder()
    try:
        # A signal already ignored stays so (nohup ignores SIGHUP for the run and helm alike: taking it over would
        # cancel the very upgrade nohup was to keep going).
        previous = {signum: signal.signal(signum, forwarder) for signum in FORWARDED
                    if signal.getsignal(signum) is not signal.SIG_IGN}
    except ValueError:  # not the main thread: signals are not ours to handle, so helm runs as any other command
        done = subprocess.run(command, capture_output=True, encoding="utf-8", errors="replace")
        return done.returncode, done.stdout, done.stderr
    killed = False
    try:
        forwarder.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding="utf-8",
                                          errors="replace", start_new_session=True)
        forwarder.forward()  # a signal that came while helm was starting
        proc = forwarder.proc
        while True:
            try:
                stdout, stderr = proc.communicate(timeout=_POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if forwarder.signum is not None and time.monotonic() - forwarder.at > HELM_SIGNAL_GRACE_SECONDS:
                    try:  # helm leads its own process group: whatever it started ends with it
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    killed = True
                    stdout, stderr = proc.communicate()
                    break
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if forwarder.signum is not None:
        raise HelmInterruptedError(command=command, signal_name=signal.Signals(forwarder.signum).name,
                                   sent_name=signal.Signals(forwarder.sent).name,
                                   returncode=proc.returncode, output=stderr or stdout, killed=killed,
                                   grace_seconds=HELM_SIGNAL_GRACE_SECONDS)
    return proc.returncode, stdout, stderr


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


def run_chart_command(args: Sequence[str], *, helm: str, explain: Callable[[], None]) -> HelmResult:
    """``run_helm`` for commands that render our chart. When helm fails, ``explain`` (our own check of the values,
    with the file or flag of each problem) may raise first; when the chart's cross-field checks fail, the error is a
    ChartValuesError (bad input, exit 2) listing the problems, not helm's raw output."""
    try:
        return run_helm(args, helm=helm)
    except HelmCommandError as exc:
        explain()
        raise ChartValuesError.from_helm(exc) from None


# Go's time.ParseDuration (src/time/format.go): units and their nanoseconds; "µs" is U+00B5, "μs" U+03BC.
_UNIT_NANOS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
               "m": 60_000_000_000, "h": 3_600_000_000_000}
_MAX = 1 << 63  # Go's Duration is an int64 of nanoseconds
# One number and its unit: the digits before the point, after it, and the unit (what follows up to the next number).
_SEGMENT = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def _fraction(text: str) -> tuple[int, float]:
    """Go's leadingFraction: the digits after the point as an integer and its scale, reading digits only while the
    integer stays within an int64 (later ones are ignored)."""
    value, scale = 0, 1.0
    for ch in text:
        if value > (_MAX - 1) // 10 or value * 10 + int(ch) > _MAX:
            break
        value, scale = value * 10 + int(ch), scale * 10
    return value, scale


def go_duration_nanos(text: str) -> int:
    r"""Nanoseconds in ``text`` read exactly as Go's time.ParseDuration reads it, which is how helm reads --timeout:
    ``[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`` such as 300ms, 1.5h, 1m30s500ms; a unit after every number ("300" alone is
    refused; "0" is the one exception), within an int64 of nanoseconds.

    Raises:
        ValueError: Go would refuse ``text``; the message says why as Go's does.
    """
    s, neg = text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError("not a duration")
    total, i = 0, 0
    while i < len(s):
        segment = _SEGMENT.match(s, i)
        assert segment is not None  # every part of the pattern may be empty
        digits_before, fraction, unit = segment.group(1), segment.group(2) or "", segment.group(3)
        if not digits_before and not fraction:
            raise ValueError("not a duration")
        if not unit:
            raise ValueError("missing unit")
        if unit not in _UNIT_NANOS:
            raise ValueError(f'unknown unit "{unit}"')
        i = segment.end()
        whole, scale = int(digits_before or "0"), _UNIT_NANOS[unit]
        if whole > _MAX // scale:
            raise ValueError("out of range")
        value = whole * scale
        digits, ten = _fraction(fraction)
        if digits:
            value += int(float(digits) * (float(scale) / ten))  # in float64, as Go computes it
        total += value
        if value > _MAX or total > _MAX:
            raise ValueError("out of range")
    if not neg and total > _MAX - 1:
        raise ValueError("out of range")
    return -total if neg else total


def duration_seconds(text: str, *, flag: str = "--timeout") -> float:
    """Seconds in a duration as helm reads it (Go's time.ParseDuration: see ``go_duration_nanos``).

    Raises:
        DurationError: ``text`` is not such a duration (the message names ``flag`` and the fix).
    """
    try:
        return go_duration_nanos(text) / 1e9
    except ValueError as exc:
        raise DurationError(flag=flag, text=text, problem=str(exc)) from None
