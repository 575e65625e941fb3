"""The README.md of a generated chart: preset, model, plan, and how to install it with plain helm."""

from __future__ import annotations

from pathlib import Path

import jinja2

from . import __version__
from .planner import GIB
from .values import Resolved

_TEMPLATES = Path(__file__).resolve().parent / "templates"


def render_readme(resolved: Resolved) -> str:
    """Render the chart README for ``resolved``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    plan = resolved.plan
    figures = {
        "weights_gib": f"{plan.weight_bytes / GIB:.0f}",
        "kv_mib_per_token": f"{plan.kv_bytes_per_token / 2**20:.2f}",
        "kv_gib_per_sequence": f"{plan.kv_bytes_per_sequence / GIB:.1f}",
        "usable_gib_per_node": f"{plan.usable_bytes_per_node / GIB:.0f}",
    }
    return env.get_template("chart-README.md.j2").render(
        r=resolved, v=resolved.values, plan=plan, figures=figures, version=__version__,
        line_rate_tbps=resolved.preset.line_rate_gbps / 1000,
    )
