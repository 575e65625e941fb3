"""Keep charts/vllm-rdma's generated files equal to what `generate llama405b --preset h100` writes.

charts/vllm-rdma is both the template source of every generated chart and a chart that renders on its own with plain
helm; its values.yaml, values.schema.json, Chart.yaml and README.md are generator output for the default release,
and templates/_rules.tpl is the rule table (schemas/rules.yaml) compiled for the chart, which every chart copies.
`python -m helm_rdma.chart_sync` rewrites them; `--check` lists what drifted and exits 1.
"""

from __future__ import annotations

import sys

from .catalog import DEFAULT_MODEL
from .chart import chart_files
from .datafiles import chart_dir
from .rules import TEMPLATE
from .rulestemplate import go_template
from .values import ChartRequest, resolve

DEFAULT_PRESET = "h100"


def expected_files() -> dict[str, str]:
    """The generated files of the default chart, as `generate` would write them, and the compiled rule table."""
    return {**chart_files(resolve(ChartRequest(release=DEFAULT_MODEL, preset=DEFAULT_PRESET))), TEMPLATE: go_template()}


def drift() -> list[str]:
    """Generated files of charts/vllm-rdma that differ from what `generate` writes now."""
    root = chart_dir()
    out = []
    for name, text in expected_files().items():
        path = root / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = drift()
        for name in stale:
            print(f"charts/vllm-rdma/{name} differs from generator output; run `make chart`", file=sys.stderr)
        return 1 if stale else 0
    # The rules template first: Chart.yaml's version carries a hash of the templates.
    (chart_dir() / TEMPLATE).write_text(go_template(), encoding="utf-8")
    for name, text in expected_files().items():
        (chart_dir() / name).write_text(text, encoding="utf-8")
        print(f"wrote charts/vllm-rdma/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
