"""`helm-rdma doctor`: check values before anything is applied."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..doctor import Finding, diagnose
from ..errors import ContextTooLongError, ModelTooLargeError, ParallelismError, SchemaViolation, TooFewNodesError
from ..values import check_values, resolve
from ..valuesources import ValueSources


class DoctorResult(NamedTuple):
    """Every finding, errors first."""

    findings: tuple[Finding, ...]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> int:
        return len(self.findings) - self.errors


def doctor(
    *,
    release: str,
    preset: str,
    model: str | None = None,
    nodes: int | None = None,
    max_model_len: int | None = None,
    value_files: tuple[Path, ...] = (),
    set_values: tuple[str, ...] = (),
    sources: ValueSources | None = None,
) -> DoctorResult:
    """Resolve the values as install would and report what is wrong or doubtful, instead of stopping at the first
    problem. Unknown presets, models, unreadable files and bad --set syntax still raise (exit 2)."""
    try:
        resolved = resolve(release=release, preset=preset, model=model, value_files=value_files,
                           set_values=set_values, sources=sources, nodes=nodes, max_model_len=max_model_len,
                           validate=False)
    except (TooFewNodesError, ModelTooLargeError, ContextTooLongError, ParallelismError) as exc:
        return DoctorResult(findings=(Finding("error", "nodes", str(exc), "see the message"),))
    findings: list[Finding] = []
    try:
        check_values(resolved)
    except SchemaViolation as exc:
        findings += [Finding("error", p.split(":", 1)[0], p.split(":", 1)[1].strip(), "see values.schema.json")
                     for p in exc.problems]
        from ..provisioncheck import provisioning_findings

        ours = provisioning_findings(resolved.values)  # their fix says more than the schema's message
        findings = [f for f in findings if f.key not in {o.key for o in ours}] + ours
        return DoctorResult(findings=tuple(findings))
    return DoctorResult(findings=tuple(diagnose(resolved)))
