"""The README.md of a generated chart: preset, model, plan, how to install and publish it, and every value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helm_rdma import __version__
from helm_rdma.chart.valuestable import values_table
from helm_rdma.resolve.values import Resolved
from helm_rdma.sizing.planner import GIB

_TEMPLATES = Path(__file__).resolve().parent / "templates"
README_TEMPLATE = _TEMPLATES / "chart-README.md.j2"


def render_readme(resolved: Resolved, *, metadata: dict[str, Any], schema: dict[str, Any]) -> str:
    """Render the chart README for ``resolved``, whose Chart.yaml is ``metadata`` and published schema ``schema``."""
    import jinja2  # only for charts people read: `template` writes no README

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
    return env.get_template(README_TEMPLATE.name).render(
        r=resolved, v=resolved.values, plan=plan, figures=figures, version=__version__, chart=metadata,
        line_rate_tbps=resolved.preset.line_rate_gbps / 1000, values_table=values_table(schema),
    )
