"""Keep charts/vllm-rdma's generated files equal to what `generate llama405b --preset h100` writes.

charts/vllm-rdma is both the template source of every generated chart and a chart that renders on its own with plain
helm; its values.yaml, values.schema.json, Chart.yaml and README.md are generator output for the default release,
and templates/_lookalikes.tpl holds the values schema's NCCL look-alikes for validateValues (checks/lookalikes.py),
which every chart copies.
`python -m helm_rdma.dev.chart_sync` rewrites them; `--check` lists what drifted and exits 1.
"""

from __future__ import annotations

import sys

from helm_rdma.chart.write import chart_files
from helm_rdma.checks.lookalikes import TEMPLATE, go_template
from helm_rdma.datafiles import chart_dir
from helm_rdma.dev.generatedfiles import sync
from helm_rdma.resolve.values import ChartRequest, resolve
from helm_rdma.sizing.catalog import DEFAULT_MODEL

DEFAULT_PRESET = "h100"


def expected_files() -> dict[str, str]:
    """The generated files of the default chart, as `generate` would write them, and the look-alikes template."""
    return {**chart_files(resolve(ChartRequest(release=DEFAULT_MODEL, preset=DEFAULT_PRESET))), TEMPLATE: go_template()}


def main(argv: list[str]) -> int:
    root = chart_dir()
    if "--check" not in argv:  # the look-alikes first: Chart.yaml's version carries a hash of the templates
        sync(argv, {root / TEMPLATE: go_template()}, root=root.parent.parent, source="the values schema",
             target="chart")
    return sync(argv, {root / n: t for n, t in expected_files().items()}, root=root.parent.parent,
                source="generator output", target="chart")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
