"""Reading the logs of a multi-node vLLM group for why it hangs or fails at start-up.

Pure functions over LogSources, streamed line by line: no printing, no cluster, no click. The logs are read once
(scan.py) and only what a finding needs is kept, so memory does not grow with the size of a log. The line formats,
with their sources, and the fixes live in formats.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from helm_rdma.logs import formats as fmt
from helm_rdma.logs.scan import Scan, Seen, Version
from helm_rdma.logs.sources import LogSource

SEVERITIES = ("error", "warning", "info")
# Every check, in the order findings of one severity are listed.
CHECKS = ("rdma-device", "transport-socket", "bootstrap-interface", "init-incomplete", "nccl-version", "vllm-version",
          "ray-version", "rendezvous-timeout", "nccl-timeout", "vllm-startup-timeout", "gpu-oom", "model-gated",
          "model-not-found", "hub-auth", "worker-failed", "preflight-bandwidth", "no-gdrdma", "init-pending",
          "nccl-warn", "preflight-unreadable", "log-unavailable", "nccl-silent", "init-unseen", "transport",
          "preflight")


@dataclass(frozen=True)
class Expectations:
    """What a healthy group of the release logs: its front-end interface (NCCL_SOCKET_IFNAME syntax; None: only
    loopback and container bridges are wrong), whether its shape supports GPUDirect RDMA (every shipped preset's
    does), and its all-reduce bus bandwidth floor (None: the one the preflight judged against)."""

    interface: str | None = None
    gpu_direct_rdma: bool = True
    threshold_gbps: float | None = None


@dataclass(frozen=True)
class Finding:
    """One thing the logs show: how bad, which check, in which logs, why, the line that shows it, and the fix."""

    severity: str
    check: str
    pods: tuple[str, ...]
    cause: str
    evidence: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pods": list(self.pods)}

    def line(self) -> str:
        """The finding on one line: severity, check, logs, cause, evidence, fix."""
        where = f" [{', '.join(self.pods)}]" if self.pods else ""
        evidence = f'; evidence: "{self.evidence}"' if self.evidence else ""
        fix = f"; fix: {self.fix}" if self.fix != fmt.FIXES["ok"] else ""
        return f"{self.severity:<7} {self.check}{where}: {self.cause}{evidence}{fix}"


@dataclass(frozen=True)
class Summary:
    """How many findings of each severity, which logs were read, how many lines."""

    errors: int
    warnings: int
    info: int
    logs: tuple[str, ...]
    lines: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "logs": list(self.logs), "passed": self.errors == 0}

    def line(self) -> str:
        """The summary on one line."""
        return (f"{self.errors} error(s), {self.warnings} warning(s), {self.info} note(s) in {len(self.logs)} log(s), "
                f"{self.lines} line(s) read")


@dataclass(frozen=True)
class Diagnosis:
    """Every finding (errors first, then warnings, then info) and the summary."""

    findings: tuple[Finding, ...]
    summary: Summary

    @property
    def passed(self) -> bool:
        """True when nothing worse than a warning was found."""
        return self.summary.errors == 0

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `diagnose -o json`: {"findings": [...], "summary": {...}} (documented in README)."""
        return {"findings": [f.to_dict() for f in self.findings], "summary": self.summary.to_dict()}


def diagnose_logs(sources: Iterable[LogSource], *, expect: Expectations | None = None) -> Diagnosis:
    """Read every log once, line by line, and judge what they show.

    Raises:
        Whatever a source's line iterator raises (a ClusterError when the cluster fails mid-read), except
        LogUnavailable, which becomes a log-unavailable finding.
    """
    expect = expect or Expectations()
    scan = Scan()
    for source in sources:
        scan.read(source)
    found = (_transport(scan, expect) + _interfaces(scan, expect) + _versions(scan, "nccl") + _versions(scan, "vllm")
             + _ray(scan) + _init(scan) + _rules(scan) + _warns(scan) + _preflight(scan, expect) + _unavailable(scan))
    if scan.lines and not scan.nccl_lines:
        found.append(Finding("info", "nccl-silent", tuple(scan.labels), "no log holds an NCCL line, so the transport, "
                             "the interfaces and the ranks' init could not be checked", "", fmt.FIXES["nccl-silent"]))
    found.sort(key=lambda f: (SEVERITIES.index(f.severity), CHECKS.index(f.check)))
    counts = Counter(f.severity for f in found)
    return Diagnosis(findings=tuple(found), summary=Summary(
        errors=counts["error"], warnings=counts["warning"], info=counts["info"], logs=tuple(scan.labels),
        lines=scan.lines))


def _finding(severity: str, check: str, seen: Seen, cause: str) -> Finding:
    return Finding(severity, check, tuple(seen.labels), cause, seen.evidence, fmt.FIXES[check])


def _transport(scan: Scan, expect: Expectations) -> list[Finding]:
    found = []
    if scan.socket.count:
        found.append(_finding("error", "transport-socket", scan.socket,
                              "NCCL sends between nodes over TCP sockets (NET/Socket), not RDMA: the group runs at a "
                              "fraction of its speed, and large collectives may time out"))
    partial = {label: counts for label, counts in scan.channels.items() if counts[0] > counts[1]}
    if expect.gpu_direct_rdma and partial:
        lines = sum(c[0] for c in partial.values())
        without = sum(c[0] - c[1] for c in partial.values())
        found.append(Finding("warning", "no-gdrdma", tuple(partial), f"NCCL uses NET/IB without GPUDirect RDMA on "
                             f"{without} of {lines} channel lines (no /GDRDMA): data goes through host memory, though "
                             "this shape supports GPUDirect RDMA", scan.non_gdr[next(iter(partial))],
                             fmt.FIXES["no-gdrdma"]))
    if scan.ib.count and not found:
        how = " with GPUDirect RDMA on every channel" if scan.channels else ""
        found.append(Finding("info", "transport", tuple(scan.ib.labels), f"NCCL uses NET/IB (RDMA){how}",
                             scan.ib.evidence, fmt.FIXES["ok"]))
    return found


def interface_ok(name: str, configured: str) -> bool:
    """Whether interface ``name`` fits ``configured``, read as NCCL_SOCKET_IFNAME is: a comma list of prefixes,
    exact names after a leading '=', names to avoid after a leading '^'."""
    names = [n for n in configured.lstrip("=^").split(",") if n]
    if not names:
        return True
    if configured.startswith("^"):
        return not any(name.startswith(n) for n in names)
    exact = configured.startswith("=")
    return any(name == n if exact else name.startswith(n) for n in names)


def _interfaces(scan: Scan, expect: Expectations) -> list[Finding]:
    found = []
    for name, seen in scan.interfaces.items():
        if name == fmt.LOOPBACK:
            found.append(_finding("error", "bootstrap-interface", seen, "NCCL's bootstrap (its TCP connections between "
                                  "ranks) listens on loopback lo: ranks on other nodes cannot reach it"))
        elif fmt.BRIDGE.match(name):
            found.append(_finding("error", "bootstrap-interface", seen, f"NCCL's bootstrap uses {name}, a container "
                                  "bridge that other nodes cannot reach"))
        elif expect.interface and not interface_ok(name, expect.interface):
            found.append(_finding("warning", "bootstrap-interface", seen, f"NCCL's bootstrap uses {name}, not the "
                                  f"configured front-end interface {expect.interface}"))
    return found


def _versions(scan: Scan, kind: str) -> list[Finding]:
    versions = scan.versions[kind]
    if not versions:
        return []
    check = f"{kind}-version"
    first = next(iter(versions.values()))
    by_number = _pods_by(versions, lambda v: v.number)
    if len(by_number) > 1:
        odd = min(by_number.items(), key=lambda item: (len(item[1]), -list(by_number).index(item[0])))
        spread = "; ".join(f"{number} on {', '.join(pods)}" for number, pods in by_number.items())
        return [Finding("error", check, tuple(versions), f"{first.name} versions differ between pods: {spread}",
                        versions[odd[1][0]].line, fmt.FIXES[check])]
    builds = _pods_by(versions, lambda v: v.full)
    if len(builds) > 1:
        spread = "; ".join(f"{full} on {', '.join(pods)}" for full, pods in builds.items())
        odd_pod = min(builds.values(), key=len)[0]
        return [Finding("warning", check, tuple(versions), f"the same {first.name} {first.number}, different builds: "
                        f"{spread}", versions[odd_pod].line, fmt.FIXES[check])]
    shown = _shown(versions)
    return [Finding("info", check, tuple(versions), f"{shown.name} {shown.full or shown.number} on each of the "
                    f"{len(versions)} pod(s) that log it", shown.line, fmt.FIXES["ok"])]


def _pods_by(versions: dict[str, Version], key: Callable[[Version], str]) -> dict[str, list[str]]:
    """The pods of each non-empty ``key`` of their version, in the order first seen."""
    pods: dict[str, list[str]] = {}
    for pod, version in versions.items():
        if key(version):
            pods.setdefault(key(version), []).append(pod)
    return pods


def _shown(versions: dict[str, Version]) -> Version:
    return next((v for v in versions.values() if v.full), next(iter(versions.values())))


def _ray(scan: Scan) -> list[Finding]:
    if not scan.ray:
        return []
    first = scan.ray[0]
    detail = (f": the Ray cluster runs Ray {first.versions[0]}, this pod Ray {first.versions[1]}"
              if len(first.versions) == 2 else "")
    labels = tuple(dict.fromkeys(m.label for m in scan.ray))
    return [Finding("error", "ray-version", labels, f"Ray refused to join the pod to the group's Ray cluster{detail}",
                    first.evidence, fmt.FIXES["ray-version"])]


def ranks_text(ranks: Iterable[int]) -> str:
    """3, 5-7, 9 for [3, 5, 6, 7, 9]."""
    spans: list[list[int]] = []
    for rank in sorted(ranks):
        if spans and rank == spans[-1][1] + 1:
            spans[-1][1] = rank
        else:
            spans.append([rank, rank])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _init(scan: Scan) -> list[Finding]:
    """Ranks that started NCCL init and never completed it while others of their communicator did (a rank can only
    complete once every rank has joined the bootstrap, so ranks absent from every log were merely not read here)."""
    stuck_parts, unseen_parts, pending = [], [], []
    stuck_labels: dict[str, None] = {}
    stuck_evidence, unseen_evidence = "", ""
    for comm_id, comm in scan.comms.items():
        if not comm.completed:
            if comm.started:
                pending.append((comm_id, comm))
            continue
        missing = sorted(set(range(comm.nranks)) - set(comm.completed))
        stuck = [r for r in missing if r in comm.started]
        unseen = [r for r in missing if r not in comm.started]
        name = f"communicator {comm_id} ({comm.nranks} ranks)"
        if stuck:
            stuck_labels.update((comm.started[r][0], None) for r in stuck)
            stuck_evidence = stuck_evidence or comm.started[stuck[0]][1]
            where = "; ".join(f"rank {r} in {comm.started[r][0]}" for r in stuck[:8])
            stuck_parts.append(f"{name}: rank(s) {ranks_text(stuck)} started init and never logged Init COMPLETE "
                               f"while {len(comm.completed)} did ({where})")
        if unseen:
            unseen_evidence = unseen_evidence or comm.first_line
            unseen_parts.append(f"{name}: rank(s) {ranks_text(unseen)}")
    found = []
    if stuck_parts:
        found.append(Finding("error", "init-incomplete", tuple(stuck_labels), _some(stuck_parts, "communicator"),
                             stuck_evidence, fmt.FIXES["init-incomplete"]))
    if unseen_parts:
        found.append(Finding("info", "init-unseen", (), "no log read here holds these ranks, though their "
                             f"communicator completed init: {_some(unseen_parts, 'communicator')}", unseen_evidence,
                             fmt.FIXES["init-unseen"]))
    if pending:
        labels: dict[str, None] = {}
        for _, comm in pending:
            labels.update((label, None) for label, _ in comm.started.values())
        comm_id, comm = pending[0]
        found.append(Finding("warning", "init-pending", tuple(labels), f"no rank of NCCL communicator {comm_id} "
                             f"({comm.nranks} ranks) logged Init COMPLETE"
                             + (f", nor of {len(pending) - 1} other(s)" if len(pending) > 1 else ""),
                             next(iter(comm.started.values()))[1], fmt.FIXES["init-pending"]))
    return found


def _some(parts: list[str], what: str, shown: int = 3) -> str:
    more = f"; and {len(parts) - shown} more {what}(s)" if len(parts) > shown else ""
    return "; ".join(parts[:shown]) + more


def _rules(scan: Scan) -> list[Finding]:
    rules = {rule.check: rule for rule in fmt.LINE_RULES}
    return [Finding(rules[check].severity, check, tuple(seen.labels), rules[check].cause, seen.evidence,
                    rules[check].fix) for check, seen in scan.rules.items()]


def _warns(scan: Scan) -> list[Finding]:
    if not scan.warns.count:
        return []
    messages = "; ".join(f'"{m}"' for m in scan.warn_messages)
    return [_finding("warning", "nccl-warn", scan.warns, f"NCCL logged {scan.warns.count} warning line(s), such as "
                     f"{messages}")]


def _preflight(scan: Scan, expect: Expectations) -> list[Finding]:
    found = []
    for label, (result, line) in scan.preflight.items():
        busbw = result.get("busbw_gbps") if result is not None else None
        if result is None or not isinstance(busbw, (int, float)):
            found.append(Finding("warning", "preflight-unreadable", (label,), "the preflight's result line has no "
                                 "readable JSON with busbw_gbps", line, fmt.FIXES["preflight-unreadable"]))
            continue
        floor = expect.threshold_gbps if expect.threshold_gbps is not None else result.get("threshold_gbps")
        transport = str(result.get("transport") or "an unknown transport")
        gdrdma = result.get("gdrdma")
        gdr = " with GPUDirect RDMA" if gdrdma is True else " without GPUDirect RDMA" if gdrdma is False else ""
        detail = (f"{busbw:.1f} GB/s all_reduce bus bandwidth over {transport}{gdr if transport == 'IB' else ''} "
                  f"(NCCL {result.get('nccl_version')}, {result.get('ranks')} ranks)")
        problems = []
        if isinstance(floor, (int, float)) and floor > 0 and busbw < floor:
            problems.append(f"below the {floor:g} GB/s floor")
        if transport != "IB":
            problems.append("not over NET/IB")
        if result.get("passed") is False and not problems:
            problems.append(f"the preflight failed: {result.get('reason')}")
        if problems:
            found.append(Finding("error", "preflight-bandwidth", (label,), f"the preflight measured {detail}: "
                                 + "; ".join(problems), line, fmt.FIXES["preflight-bandwidth"]))
        else:
            at_least = f" >= the {floor:g} GB/s floor" if isinstance(floor, (int, float)) and floor > 0 else ""
            found.append(Finding("info", "preflight", (label,), f"the preflight measured {detail}{at_least}", line,
                                 fmt.FIXES["ok"]))
    return found


def _unavailable(scan: Scan) -> list[Finding]:
    return [Finding("warning", "log-unavailable", (label,), f"no log to read: {reason}", "",
                    fmt.FIXES["log-unavailable"]) for label, reason in scan.unavailable.items()]
