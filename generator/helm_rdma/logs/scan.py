"""One pass over the logs of a group: what each line tells, kept small.

Only what a finding needs is kept: the first line of each kind with the logs it appeared in, versions per pod, NCCL
ranks per communicator (the START line of a rank only until it completes). Every collection is capped (MAX_KEPT),
so memory does not grow with the length of a log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from helm_rdma.errors import LogUnavailable
from helm_rdma.logs import formats as fmt
from helm_rdma.logs.sources import LogSource, source_label, split_prefix
from helm_rdma.suggest import clip

EVIDENCE_CHARS = 300
MAX_KEPT = 64


def trim(line: str) -> str:
    """A line as evidence: stripped, and cut to EVIDENCE_CHARS."""
    return clip(line.strip(), EVIDENCE_CHARS)


@dataclass
class Seen:
    """Where one kind of line was seen: the first such line, the logs (in order), how many lines."""

    evidence: str = ""
    labels: dict[str, None] = field(default_factory=dict)
    count: int = 0

    def add(self, label: str, line: str) -> None:
        if not self.count:
            self.evidence = trim(line)
        self.count += 1
        if label not in self.labels and len(self.labels) < MAX_KEPT:
            self.labels[label] = None


@dataclass
class Comm:
    """One NCCL communicator: its size, the ranks that started init and have not completed, those that completed."""

    nranks: int
    started: dict[int, tuple[str, str]] = field(default_factory=dict)  # rank -> (log, START line)
    completed: dict[int, str] = field(default_factory=dict)  # rank -> log
    first_line: str = ""


@dataclass(frozen=True)
class Version:
    """One pod's version of a component, from its current instance when it has one, and the line that says so."""

    name: str  # NCCL, RCCL, vLLM
    number: str  # 2.21.5
    full: str  # 2.21.5+cuda12.4; empty when the line gives no build
    line: str
    previous: bool


@dataclass
class RayMismatch:
    """Ray's "Version mismatch" message: the log, its first line, and the versions it names (cluster's, this node's)."""

    label: str
    evidence: str
    versions: list[str] = field(default_factory=list)
    lines_left: int = 8


class Scan:
    """The state of one pass over every log; ``read`` each source, then read the attributes."""

    def __init__(self) -> None:
        self.lines = 0
        self.labels: dict[str, None] = {}
        self.rules: dict[str, Seen] = {}
        self.socket, self.ib = Seen(), Seen()
        self.channels: dict[str, list[int]] = {}  # log -> [IB channel lines, those with GDRDMA]
        self.non_gdr: dict[str, str] = {}  # log -> its first IB channel line without GDRDMA
        self.interfaces: dict[str, Seen] = {}  # bootstrap or OOB interface -> where
        self.versions: dict[str, dict[str, Version]] = {"nccl": {}, "vllm": {}}  # kind -> pod -> version
        self.comms: dict[str, Comm] = {}
        self.warns = Seen()
        self.warn_messages: dict[str, None] = {}
        self.ray: list[RayMismatch] = []
        self.ray_pending: dict[str, RayMismatch] = {}
        self.preflight: dict[str, tuple[dict[str, Any] | None, str]] = {}  # log -> (result or None, line)
        self.unavailable: dict[str, str] = {}
        self.nccl_lines = 0

    def read(self, source: LogSource) -> None:
        """Feed every line of ``source``; a LogUnavailable from it is noted against the source."""
        default = source_label(source.pod, source.container, source.previous)
        self._label(default)
        try:
            for line in source.lines():
                self.lines += 1
                prefixed = split_prefix(line)
                if prefixed is None:
                    self.feed(default, source.pod, source.previous, line)
                else:
                    pod, container, rest = prefixed
                    self.feed(source_label(pod, container or None, source.previous), pod, source.previous, rest)
        except LogUnavailable as exc:
            self.unavailable[default] = exc.reason
        self.ray.extend(self.ray_pending.values())
        self.ray_pending.clear()

    def _label(self, label: str) -> None:
        if label not in self.labels and len(self.labels) < 16 * MAX_KEPT:
            self.labels[label] = None

    def feed(self, label: str, pod: str, previous: bool, line: str) -> None:
        """Take one line of the log ``label`` (of ``pod``, its previous instance or not)."""
        self._label(label)
        if label in self.ray_pending:
            self._ray_continues(label, line)
        if not fmt.TRIGGER.search(line):
            return
        if "CCL" in line:
            self.nccl_lines += 1
            self._nccl(label, pod, previous, line)
        if "nccl==" in line and (m := fmt.PYNCCL_VERSION.search(line)) is not None:
            self._version("nccl", pod, Version("NCCL", m.group(1), "", trim(line), previous))
        if "vLLM" in line and (m := fmt.VLLM_VERSION.search(line)) is not None:
            number = m.group(1) or m.group(2)
            self._version("vllm", pod, Version("vLLM", number, number, trim(line), previous))
        if fmt.RAY_MISMATCH in line and len(self.ray) < MAX_KEPT:
            self.ray_pending[label] = RayMismatch(label=label, evidence=trim(line))
        if "RESULT" in line or "result:" in line:
            if (m := fmt.PREFLIGHT.search(line)) is not None:
                try:
                    self.preflight[label] = (dict(json.loads(m.group(1))), trim(line))
                except (ValueError, TypeError):
                    self.preflight[label] = (None, trim(line))
        if fmt.ANY_RULE.search(line):
            for rule in fmt.LINE_RULES:
                if any(needle in line for needle in rule.needles) and rule.pattern.search(line):
                    self.rules.setdefault(rule.check, Seen()).add(label, line)
                    break

    def _nccl(self, label: str, pod: str, previous: bool, line: str) -> None:
        # Each pattern runs only on lines holding its literal part: NCCL INFO lines are most of a debug log.
        if "version" in line and (m := fmt.NCCL_VERSION.search(line)) is not None:
            self._version("nccl", pod, Version(m.group(1), m.group(2), m.group(2) + m.group(3), trim(line), previous))
        if "- Init " in line and (m := fmt.NCCL_INIT.search(line)) is not None:
            self._init(label, line, m.group(4), int(m.group(2)), int(m.group(3)), m.group(5) == "COMPLETE")
        if "Using" in line:
            for m in (fmt.BOOTSTRAP.search(line), fmt.IB_OOB.search(line) if "OOB" in line else None):
                if m is not None and "<" in m.group(2):  # an address with "<port>": the name before it is an interface
                    seen = self.interfaces.get(m.group(1))
                    if seen is None and len(self.interfaces) < MAX_KEPT:
                        seen = self.interfaces[m.group(1)] = Seen()
                    if seen is not None:
                        seen.add(label, line)
            if "Using network" in line and (m := fmt.USING_NETWORK.search(line)) is not None:
                self._network(label, m.group(1), line)
        if "via NET/" in line and (m := fmt.CHANNEL.search(line)) is not None:
            self._network(label, m.group(1), line)
            if m.group(1).startswith("IB"):
                counts = self.channels.setdefault(label, [0, 0])
                counts[0] += 1
                if m.group(2):
                    counts[1] += 1
                else:
                    self.non_gdr.setdefault(label, trim(line))
        if "NCCL WARN" in line and (m := fmt.NCCL_WARN.search(line)) is not None:
            self.warns.add(label, line)
            if len(self.warn_messages) < 3:  # distinct messages, numbers aside
                self.warn_messages.setdefault("".join("#" if c.isdigit() else c for c in m.group(1).strip())[:160])

    def _network(self, label: str, name: str, line: str) -> None:
        if name.startswith("Socket"):
            self.socket.add(label, line)
        elif name.startswith("IB"):
            self.ib.add(label, line)

    def _init(self, label: str, line: str, comm_id: str, rank: int, nranks: int, complete: bool) -> None:
        comm = self.comms.get(comm_id)
        if comm is None:
            if len(self.comms) >= 16 * MAX_KEPT:
                return
            comm = self.comms[comm_id] = Comm(nranks=nranks, first_line=trim(line))
        if complete:
            comm.completed[rank] = label
            comm.started.pop(rank, None)
        elif rank not in comm.completed:
            comm.started[rank] = (label, trim(line))

    def _version(self, kind: str, pod: str, found: Version) -> None:
        known = self.versions[kind].get(pod)
        if known is None:
            if len(self.versions[kind]) < 16 * MAX_KEPT:
                self.versions[kind][pod] = found
        elif (known.previous and not found.previous) or (
                known.previous == found.previous and found.full and not known.full):
            self.versions[kind][pod] = found  # the current instance wins; a line with the build wins over one without

    def _ray_continues(self, label: str, line: str) -> None:
        mismatch = self.ray_pending[label]
        if (m := fmt.RAY_LINE.search(line)) is not None:
            mismatch.versions.append(m.group(1))
        mismatch.lines_left -= 1
        if len(mismatch.versions) == 2 or mismatch.lines_left <= 0:
            self.ray.append(self.ray_pending.pop(label))
