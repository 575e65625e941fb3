"""The import rules of ARCHITECTURE.md, read from the source with ast (module-level imports only: a function may
import a heavy SDK where it needs it)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "generator" / "helm_rdma"
CLI = {p.stem for p in (PACKAGE / "cli").glob("*.py")}
# The path `helm rdma template|plan|generate` takes, which must start fast and need no SDK.
TEMPLATE_PATH = ("resolve/values", "resolve/valuesources", "resolve/strvals", "resolve/overrides", "resolve/validation", "names", "sizing/presets", "sizing/catalog",
                 "sizing/planner", "resolve/doccache", "chart/write", "chart/meta", "chart/readme", "chart/valuesfile", "chart/valuestable", "chart/images",
                 "checks/doctor", "checks/serving", "checks/rules", "checks/rulestemplate", "dev/chart_sync", "helm", "helmenv",
                 "errors", "datafiles", "commands/template",
                 "commands/generate", "commands/plan")
PROVISIONER = ("oci/network", "oci/clients", "oci/nodejoin", "commands/provision")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def imported(path: Path, *, module_level: bool = True) -> set[str]:
    """Dotted names a module imports (relative imports resolved against helm_rdma)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level else list(ast.walk(tree))
    found: set[str] = set()
    package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = list(package[: len(package) - node.level + 1])
                base = ".".join([*parts, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return found


def name_of(path: Path) -> str:
    return str(path.relative_to(PACKAGE).with_suffix(""))


@pytest.mark.parametrize("path", [p for p in modules() if not {"cli", "dev"} & set(p.relative_to(PACKAGE).parts)
                                  and p.name != "__main__.py"],  # python -m helm_rdma: the CLI's own entry point
                         ids=name_of)
def test_the_core_never_imports_the_cli_or_click(path: Path) -> None:
    names = imported(path, module_level=False)
    assert not {n for n in names if n == "click" or n.startswith("click.") or n.startswith("helm_rdma.cli")}


@pytest.mark.parametrize("module", TEMPLATE_PATH)
def test_the_template_path_imports_no_sdk_at_module_level(module: str) -> None:
    names = imported(PACKAGE / f"{module}.py")
    assert not {n for n in names if n.split(".")[0] in ("oci", "kubernetes")}


@pytest.mark.parametrize("module", PROVISIONER)
def test_the_provisioner_never_imports_the_chart_writer(module: str) -> None:
    names = imported(PACKAGE / f"{module}.py", module_level=False)
    assert not {n for n in names if n in ("helm_rdma.chart.write", "helm_rdma.chart.meta") or n.startswith("helm_rdma.chart.write.")}


def test_the_rules_can_fail() -> None:
    """The checker sees a module-level import, and one inside a function only where asked."""
    sample = PACKAGE / "cli" / "base.py"
    assert "click" in imported(sample)
    assert "helm_rdma.commands.verify.verify" in imported(PACKAGE / "cli" / "releases.py", module_level=False)


def test_templates_hold_no_tuning_numbers() -> None:
    """NCCL settings and thresholds come from presets through values: no template writes an NCCL_ variable's value."""
    templates = (PACKAGE.parents[1] / "charts" / "vllm-rdma" / "templates")
    for path in templates.glob("*"):
        text = path.read_text()
        assert "NCCL_IB_GID_INDEX" not in text and "NCCL_IB_TC" not in text and "mlx5_" not in text, path.name


def test_no_core_function_takes_more_than_eight_parameters() -> None:
    # What several commands share travels as one record (ARCHITECTURE.md); only click callbacks under cli/ take a
    # parameter per option.
    crowded = []
    for path in modules():
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args
                names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
                count = len([n for n in names if n not in ("self", "cls")])
                if count > 8:
                    crowded.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({count})")
    assert crowded == []
