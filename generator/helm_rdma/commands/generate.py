"""`helm-rdma generate`: write a complete chart directory for one release."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..chart import write_chart
from ..doctor import require_clean
from ..planner import Plan
from ..values import resolve


class GenerateResult(NamedTuple):
    """The chart that was written and the plan behind it."""

    path: Path
    files: tuple[str, ...]
    plan: Plan
    notice: str | None = None


def generate(
    *,
    release: str,
    preset: str,
    output: Path,
    model: str | None = None,
    nodes: int | None = None,
    max_model_len: int | None = None,
    value_files: tuple[Path, ...] = (),
    set_values: tuple[str, ...] = (),
    force: bool = False,
) -> GenerateResult:
    """Resolve and check the values (stopping on errors, as `doctor` reports them), then write the chart into
    ``output`` atomically (nothing is written on error)."""
    resolved = resolve(release=release, preset=preset, model=model, value_files=value_files,
                       set_values=set_values, nodes=nodes, max_model_len=max_model_len)
    warnings = require_clean(resolved)
    written = write_chart(resolved, output=output, force=force)
    notice = "\n".join(filter(None, [resolved.model_note, *warnings])) or None
    return GenerateResult(path=written.path, files=written.files, plan=resolved.plan, notice=notice)
