"""Where `diagnose` reads logs from: a directory of saved logs, or any stream of bytes, one bounded line at a time.

A log is never held whole: lines are read one by one, and a line longer than MAX_LINE is cut into pieces of that
size, so that a 1 GB log (or one without a newline) costs a few hundred kilobytes of memory.

Saved logs, one file per pod and container instance, named:

- ``POD.log``: the pod's log (its only container, or every container one after the other);
- ``POD.CONTAINER.log``: one container of the pod;
- ``POD.previous.log`` and ``POD.CONTAINER.previous.log``: the instance before the last restart
  (``kubectl logs --previous``).

Lines that carry kubectl's ``--prefix`` (``[pod/NAME/CONTAINER] ``) are counted for the pod and container the prefix
names, whatever the file is called: ``kubectl logs -l app.kubernetes.io/instance=R --all-containers --prefix > all.log``
gives a usable directory of one file.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from helm_rdma.errors import LogsDirError

MAX_LINE = 64 * 1024
LOG_SUFFIX = ".log"
PREVIOUS = "previous"
# kubectl logs --prefix writes "[pod/NAME/CONTAINER] " before each line (kubectl, pkg/cmd/logs/logs.go).
KUBECTL_PREFIX = re.compile(r"^\[pod/([^/\]\s]+)/([^\]\s]*)\] ")


@dataclass(frozen=True)
class LogSource:
    """One log: a pod, optionally one of its containers, the current or the previous instance, and its lines."""

    pod: str
    container: str | None
    previous: bool
    lines: Callable[[], Iterable[str]]


def source_label(pod: str, container: str | None, previous: bool) -> str:
    """How findings name one log: ``POD``, ``POD/CONTAINER``, with `` (previous)`` for the earlier instance."""
    return pod + (f"/{container}" if container else "") + (" (previous)" if previous else "")


def split_prefix(line: str) -> tuple[str, str, str] | None:
    """(pod, container, rest) of a line that carries kubectl's --prefix, else None."""
    match = KUBECTL_PREFIX.match(line)
    if match is None:
        return None
    return match.group(1), match.group(2), line[match.end():]


def directory_sources(path: Path) -> list[LogSource]:
    """Every ``*.log`` file of ``path`` as a log source, named as the module docstring says.

    Raises:
        LogsDirError: The directory does not exist or holds no ``*.log`` file.
    """
    if not path.is_dir():
        raise LogsDirError(path=str(path), problem="no such directory" if not path.exists() else "not a directory")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(LOG_SUFFIX)
                   and not p.name.startswith("."))
    if not files:
        raise LogsDirError(path=str(path), problem=f"holds no {LOG_SUFFIX} files")
    sources = []
    for file in files:
        pod, container, previous = parse_log_name(file.name)
        sources.append(LogSource(pod=pod, container=container, previous=previous, lines=partial(file_lines, file)))
    return sorted(sources, key=lambda s: (s.pod, s.container or "", s.previous))


def parse_log_name(name: str) -> tuple[str, str | None, bool]:
    """(pod, container or None, previous) from a saved log's file name (see the module docstring)."""
    stem = name[: -len(LOG_SUFFIX)] if name.endswith(LOG_SUFFIX) else name
    previous = stem.endswith("." + PREVIOUS)
    if previous:
        stem = stem[: -len(PREVIOUS) - 1]
    pod, _, container = stem.partition(".")
    return pod, container or None, previous


def file_lines(path: Path) -> Iterator[str]:
    """The lines of a file, streamed (see chunk_lines)."""
    with path.open("rb") as handle:
        yield from chunk_lines(iter(partial(handle.read, MAX_LINE), b""))


def chunk_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Decoded lines (without their end of line) of a stream of byte chunks (a file, an HTTP body), each at most
    MAX_LINE characters."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    for chunk in chunks:
        pending += decoder.decode(chunk)
        *complete, pending = pending.split("\n")
        for line in complete:
            yield from _pieces(line.rstrip("\r"))
        while len(pending) > MAX_LINE:
            yield pending[:MAX_LINE]
            pending = pending[MAX_LINE:]
    pending += decoder.decode(b"", final=True)
    if pending:
        yield from _pieces(pending.rstrip("\r"))


def _pieces(line: str) -> Iterator[str]:
    if len(line) <= MAX_LINE:
        yield line
        return
    for start in range(0, len(line), MAX_LINE):
        yield line[start:start + MAX_LINE]
