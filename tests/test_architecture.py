"""The import rules of ARCHITECTURE.md, read from the source with ast: which folder may import which, no import
cycle, no project module imported inside a function outside cli/ (a function may import a heavy SDK where it needs
it), no SDK on the template path."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "generator" / "helm_rdma"
CLI = {p.stem for p in (PACKAGE / "cli").glob("*.py")}
# The path `helm rdma template|plan|generate` takes, which must start fast and need no SDK.
TEMPLATE_PATH = ("resolve/values", "resolve/valuesources", "resolve/strvals", "resolve/overrides", "validation", "names", "sizing/presets", "sizing/catalog",
                 "sizing/planner", "sizing/doccache", "chart/write", "chart/meta", "chart/readme", "chart/valuesfile", "chart/valuestable", "chart/images",
                 "checks/doctor", "checks/serving", "checks/facts", "checks/lookalikes", "dev/chart_sync", "helm", "helmenv",
                 "errors", "datafiles", "commands/template",
                 "commands/generate", "commands/plan")
PROVISIONER = ("oci/network", "oci/clients", "oci/nodejoin", "commands/provision")


# What each family folder may import besides itself ("root" is the shared leaves at the package root). A folder
# imports only folders below it: the provisioner (oci/) runs in an image without the chart writer; the chart writer
# and the checks never touch a cluster; nothing but cli/ imports click.
ALLOWED = {
    "root": {"root"},
    "logs": {"root"},
    "oci": {"root"},
    "sizing": {"root"},
    "resolve": {"root", "sizing"},
    "checks": {"root", "resolve", "sizing"},
    "chart": {"root", "resolve", "sizing", "checks"},  # checks/facts: the chart's facts, such as ociHooks
    "cluster": {"root", "logs"},
    "commands": {"root", "logs", "oci", "sizing", "resolve", "checks", "chart", "cluster"},
    "cli": {"root", "logs", "oci", "sizing", "resolve", "checks", "chart", "cluster", "commands"},
    "dev": {"root", "logs", "oci", "sizing", "resolve", "checks", "chart", "cluster", "commands", "cli"},
}
ROOT_MODULES_MAX = 12


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def family(path: Path) -> str:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else "root"


def family_of_module(name: str) -> str:
    parts = name.split(".")[1:]
    return parts[0] if parts and (PACKAGE / parts[0]).is_dir() else "root"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, *, module_level: bool) -> set[str]:
    """The project modules ``path`` imports (a name imported from a package counts as its submodule if it is one)."""
    known = {module_name(p) for p in modules()}
    found = set()
    for name in imported(path, module_level=module_level):
        if name in known:
            found.add(name)
        elif name.rsplit(".", 1)[0] in known:
            found.add(name.rsplit(".", 1)[0])
    return found


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


@pytest.mark.parametrize("path", modules(), ids=name_of)
def test_each_folder_imports_only_the_folders_below_it(path: Path) -> None:
    if path.name == "__main__.py":  # python -m helm_rdma: the CLI's own entry point
        return
    mine = family(path)
    bad = {n for n in project_imports(path, module_level=False)
           if family_of_module(n) != mine and family_of_module(n) not in ALLOWED[mine]}
    assert not bad, f"{mine}/ may import only {sorted(ALLOWED[mine])}"


def test_every_module_lives_in_a_known_folder_and_the_root_holds_only_shared_leaves() -> None:
    assert {family(p) for p in modules()} <= set(ALLOWED)
    root = [p.name for p in modules() if family(p) == "root"]
    assert len(root) <= ROOT_MODULES_MAX, root


@pytest.mark.parametrize("path", [p for p in modules() if family(p) != "cli"], ids=name_of)
def test_no_project_module_is_imported_inside_a_function_outside_the_cli(path: Path) -> None:
    # SDKs and libraries (oci, kubernetes, huggingface_hub, PyYAML, jinja2) may wait for the function that needs them
    assert not project_imports(path, module_level=False) - project_imports(path, module_level=True), \
        "import it at the top of the module"


def test_no_import_cycles_counting_imports_inside_functions() -> None:
    graph = {module_name(p): project_imports(p, module_level=False) for p in modules()}
    # a package's __init__ importing its own submodules, and a module importing its package, are not cycles
    graph = {m: {n for n in deps if n != m and not m.startswith(n + ".") and not n.startswith(m + ".")}
             for m, deps in graph.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_the_rules_can_fail() -> None:
    """The checker sees a module-level import, and one inside a function only where asked."""
    sample = PACKAGE / "cli" / "base.py"
    assert "click" in imported(sample)
    assert "helm_rdma.commands.verify.verify" in imported(PACKAGE / "cli" / "releases.py", module_level=False)
    assert "helm_rdma.checks.facts" in project_imports(PACKAGE / "checks" / "doctor.py", module_level=True)
    assert family_of_module("helm_rdma.oci.network") == "oci" and family_of_module("helm_rdma.errors") == "root"


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


def test_every_error_the_user_sees_is_defined_in_errors_py() -> None:
    def classes(path: Path) -> dict[str, set[str]]:
        return {node.name: {ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases}
                for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef)}

    ours = set(classes(PACKAGE / "errors.py")) - {"NodeCounts"}
    elsewhere = {f"{name_of(p)}.{name}" for p in modules() if p.name != "errors.py" or family(p) != "root"
                 for name, bases in classes(p).items() if bases & ours}
    assert not elsewhere, "move them to errors.py (ARCHITECTURE.md: one error hierarchy)"
