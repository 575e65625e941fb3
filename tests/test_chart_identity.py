"""A generated chart's identity (name, version, appVersion, Chart.yaml metadata), its package, and the lint rules
chart-testing and `helm lint --strict` apply to it.

chart-testing's rules are its own files (tests/fixtures/chart-testing, from helm/chart-testing etc/): `ct lint` runs
`yamale --schema etc/chart_schema.yaml Chart.yaml` and `yamllint --config-file etc/lintconf.yaml` on Chart.yaml and
values.yaml (pkg/chart/chart.go, LintChart), and its version check wants X.Y.Z to grow (CheckVersionIncrement
compares with Masterminds semver, which ignores build metadata).
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.chart import write as chart_module
from helm_rdma.chart.meta import value_changes
from helm_rdma.chart.write import MARKER, source_files
from helm_rdma.cli import main
from helm_rdma.commands.generate import generate
from helm_rdma.datafiles import chart_dir

from .conftest import helm_path
from .rendering import PROVISION, pod_specs, render, request

CT = Path(__file__).parent / "fixtures" / "chart-testing"


def files_of(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def chart_yaml(directory: Path) -> dict[str, Any]:
    return yaml.safe_load((directory / "Chart.yaml").read_text())


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("charts")
    return {name: generate(request(release=name), output=root / name).path
            for name in ("llama405b", "qwen3-235b")}


def test_regenerating_the_same_inputs_gives_byte_identical_charts(two_models: dict[str, Path],
                                                                  tmp_path: Path) -> None:
    again = generate(request(), output=tmp_path / "fresh").path
    assert files_of(again) == files_of(two_models["llama405b"])
    # over itself, with --force: the replaced chart's version is kept because nothing changed
    copy = tmp_path / "copy"
    shutil.copytree(two_models["llama405b"], copy)
    generate(request(), output=copy, force=True)
    assert files_of(copy) == files_of(two_models["llama405b"])


def test_two_charts_never_share_name_and_version(two_models: dict[str, Path], tmp_path: Path) -> None:
    llama, qwen = (chart_yaml(two_models[n]) for n in ("llama405b", "qwen3-235b"))
    assert llama["name"] == "llama405b" and qwen["name"] == "qwen3-235b"
    # the same name with other values: another version
    other = chart_yaml(generate(request(sets=("vllm.maxModelLen=32768",)), output=tmp_path / "c").path)
    assert other["name"] == llama["name"] and other["version"] != llama["version"]
    assert llama["version"].startswith("0.1.0+") and len(llama["version"]) == len("0.1.0+") + 12


def test_app_version_is_the_vllm_image_tag_and_metadata_names_what_produced_it(two_models: dict[str, Path]) -> None:
    meta = chart_yaml(two_models["llama405b"])
    values = yaml.safe_load((two_models["llama405b"] / "values.yaml").read_text())
    assert meta["appVersion"] == values["image"]["tag"] == "v0.33.0"
    assert meta["kubeVersion"] and meta["home"] == "https://huggingface.co/meta-llama/Llama-3.1-405B-Instruct"
    assert meta["sources"] and meta["maintainers"] and meta["keywords"] and meta["icon"].startswith("https://")
    notes = meta["annotations"]
    assert notes["helm-rdma.io/preset"] == "h100" and notes["helm-rdma.io/model"] == "llama405b"
    assert notes["helm-rdma.io/version"] == "0.1.0" and notes["artifacthub.io/license"] == "Apache-2.0"
    assert yaml.safe_load(notes["artifacthub.io/changes"])[0]["kind"] == "added"
    assert {link["name"] for link in yaml.safe_load(notes["artifacthub.io/links"])} >= {"Model", "vLLM"}


def test_artifacthub_images_list_every_image_the_chart_runs() -> None:
    sets = (*PROVISION, "clusterNetwork.deleteOnUninstall=true")
    docs = render(*sets)
    run = {c["image"] for _, spec in pod_specs(docs) for c in spec.get("initContainers", []) + spec["containers"]}
    chart = generate_meta(sets)
    listed = {entry["image"] for entry in yaml.safe_load(chart["annotations"]["artifacthub.io/images"])}
    assert listed == run and len(run) == 4  # vLLM, the port guard, the API test's python, the provisioner


def generate_meta(sets: tuple[str, ...]) -> dict[str, Any]:
    from helm_rdma.chart.write import chart_files
    from helm_rdma.resolve.values import resolve

    return chart_yaml_text(chart_files(resolve(request(sets=sets)),
                                       compact=True)["Chart.yaml"])


def chart_yaml_text(text: str) -> dict[str, Any]:
    return yaml.safe_load(text)


def test_replacing_a_chart_raises_its_patch_version_and_lists_the_changed_values(two_models: dict[str, Path],
                                                                                tmp_path: Path) -> None:
    chart = tmp_path / "llama405b"
    shutil.copytree(two_models["llama405b"], chart)
    first = chart_yaml(chart)["version"]
    generate(request(sets=("vllm.maxModelLen=32768",)), output=chart, force=True)
    second = chart_yaml(chart)
    assert second["version"].split("+")[0] == "0.1.1" and first.split("+")[0] == "0.1.0"
    changes = yaml.safe_load(second["annotations"]["artifacthub.io/changes"])
    assert changes == [{"kind": "changed", "description": "vllm.maxModelLen: 131072 -> 32768"}]
    generate(request(sets=("vllm.maxModelLen=32768",)), output=chart, force=True)
    assert chart_yaml(chart)["version"] == second["version"]  # same content, same version
    assert value_changes({"a": {"b": 1}}, {"a": {"b": 2, "c": 3}}) == [("a.b", 1, 2), ("a.c", None, 3)]


def test_the_compact_chart_of_template_has_the_same_version_as_generate(two_models: dict[str, Path]) -> None:
    labels = {d["metadata"]["labels"]["helm.sh/chart"] for d in render() if d["kind"] == "ConfigMap"}
    version = chart_yaml(two_models["llama405b"])["version"]
    assert labels == {f"llama405b-{version.replace('+', '_')}"}


def test_a_new_chart_version_restarts_no_group_unless_the_pods_change() -> None:
    """helm.sh/chart carries the version; the serving pods' template must not, or any change restarts the model."""
    plain, monitored = render(), render("monitoring.serviceMonitor.enabled=true")
    assert [d["metadata"]["labels"]["helm.sh/chart"] for d in plain if d["kind"] == "LeaderWorkerSet"] != \
        [d["metadata"]["labels"]["helm.sh/chart"] for d in monitored if d["kind"] == "LeaderWorkerSet"]
    serving = [(n, s) for n, s in pod_specs(plain) if "/" in n]
    assert serving == [(n, s) for n, s in pod_specs(monitored) if "/" in n]
    [lws] = [d for d in plain if d["kind"] == "LeaderWorkerSet"]
    [lws2] = [d for d in monitored if d["kind"] == "LeaderWorkerSet"]
    assert lws["spec"]["leaderWorkerTemplate"] == lws2["spec"]["leaderWorkerTemplate"]
    assert "helm.sh/chart" not in lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["labels"]
    # a change of what the pods read still restarts them
    [tuned] = [d for d in render("nccl.settings.NCCL_IB_TC=42") if d["kind"] == "LeaderWorkerSet"]
    checksum = "checksum/config"
    assert tuned["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["annotations"][checksum] != \
        lws["spec"]["leaderWorkerTemplate"]["workerTemplate"]["metadata"]["annotations"][checksum]


def test_caches_and_leftovers_in_the_source_chart_are_never_copied(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    shutil.copytree(chart_dir(), source)
    (source / "files" / "__pycache__").mkdir(exist_ok=True)
    (source / "files" / "__pycache__" / "group_watch.cpython-311.pyc").write_bytes(b"\x00")
    (source / "templates" / "service.yaml~").write_text("x")
    (source / "files" / ".DS_Store").write_text("x")
    monkeypatch.setattr(chart_module, "chart_dir", lambda: source)
    written = generate(request(), output=tmp_path / "out").path
    names = set(files_of(written))
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", "~", ".DS_Store"))]
    assert {n for n in names if n.startswith(("templates/", "files/"))} == set(source_files()) - {".helmignore"}


def test_the_package_holds_only_chart_files_and_generate_prints_the_push_line(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["generate", "llama405b", "-p", "h100", "--output-dir", str(tmp_path / "llama405b"),
                                    "--package"])
    assert out.exit_code == 0, out.output
    chart = tmp_path / "llama405b"
    version = chart_yaml(chart)["version"]
    archive = tmp_path / f"llama405b-{version}.tgz"
    assert f"helm push {archive} oci://iad.ocir.io/NAMESPACE/charts" in out.output
    with tarfile.open(archive) as tgz:
        inside = {m.name.split("/", 1)[1] for m in tgz.getmembers() if m.isfile()}
    assert inside == set(files_of(chart)) - {MARKER}
    # junk that lands in the directory later (a test run, an editor, an earlier package) stays out of the next one
    (chart / "files" / "__pycache__").mkdir()
    (chart / "files" / "__pycache__" / "x.pyc").write_bytes(b"\x00")
    shutil.copy(archive, chart / archive.name)
    subprocess.run([str(helm_path("helm4")), "package", str(chart), "-d", str(tmp_path / "again")], check=True,
                   capture_output=True)
    with tarfile.open(tmp_path / "again" / archive.name) as tgz:
        assert {m.name.split("/", 1)[1] for m in tgz.getmembers() if m.isfile()} == inside


def test_the_package_replaces_a_symbolic_link_at_its_name_and_leaves_its_target_untouched(tmp_path: Path) -> None:
    first = CliRunner().invoke(main, ["generate", "llama405b", "-p", "h100", "--output-dir", str(tmp_path / "a")])
    assert first.exit_code == 0, first.output
    name = f"llama405b-{chart_yaml(tmp_path / 'a')['version']}.tgz"  # predictable: the same values, the same version
    target = tmp_path / "precious"
    target.write_text("the user's file\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / name).symlink_to(target)
    out = CliRunner().invoke(main, ["generate", "llama405b", "-p", "h100", "--output-dir", str(tmp_path / "b" / "c"),
                                    "--package"])
    assert out.exit_code == 0, out.output
    assert target.read_text() == "the user's file\n"
    archive = tmp_path / "b" / name
    assert not archive.is_symlink() and tarfile.is_tarfile(archive)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == sorted(["c", name])  # no staging left behind


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_helm_lint_strict_passes_on_a_generated_chart(two_models: dict[str, Path], helm: str) -> None:
    done = subprocess.run([str(helm_path(helm)), "lint", "--strict", str(two_models["qwen3-235b"])],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


def test_chart_testing_lint_rules_pass_on_a_generated_chart(two_models: dict[str, Path]) -> None:
    import yamale
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    schema = yamale.make_schema(str(CT / "chart_schema.yaml"))
    config = YamlLintConfig(file=str(CT / "lintconf.yaml"))
    for chart in two_models.values():
        yamale.validate(schema, yamale.make_data(str(chart / "Chart.yaml")))  # raises YamaleError on a problem
        for name in ("Chart.yaml", "values.yaml"):
            problems = [f"{name}:{p.line}: {p.desc} ({p.rule})"
                        for p in linter.run((chart / name).read_text(), config) if p.level == "error"]
            assert problems == []


def test_chart_testing_lint_rules_catch_what_they_should(tmp_path: Path) -> None:
    """The rules are live: a Chart.yaml with a numeric annotation and a values file with a bad comment fail."""
    import yamale
    from yamllint import linter
    from yamllint.config import YamlLintConfig

    bad = tmp_path / "Chart.yaml"
    bad.write_text("apiVersion: v2\nname: x\nversion: 0.1.0\nannotations:\n  a: 1\n")
    with pytest.raises(yamale.YamaleError):
        yamale.validate(yamale.make_schema(str(CT / "chart_schema.yaml")), yamale.make_data(str(bad)))
    config = YamlLintConfig(file=str(CT / "lintconf.yaml"))
    assert [p.rule for p in linter.run("a: 1 #no space\n", config)] == ["comments", "comments"]


def test_the_chart_readme_values_table_is_generated_from_the_schema() -> None:
    """Like helm-docs: every key of the published schema is a row (key, type, default, description), in order; the
    README itself is kept equal to generator output by test_chart_files (make chart)."""
    import json

    from helm_rdma.chart.valuestable import values_rows

    schema = json.loads((chart_dir() / "values.schema.json").read_text())
    readme = (chart_dir() / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [key for key, _, _, _ in values_rows(schema)]
    assert "| `nodes` | integer | `2` |" in readme and "| `nccl.settings` | object | `{" in readme
    assert "| `image.pullPolicy` | \"Always\" \\| \"IfNotPresent\" \\| \"Never\" | `\"IfNotPresent\"` |" in readme


def test_a_change_in_the_users_values_file_gets_a_new_version_naming_the_change(
        two_models: dict[str, Path], tmp_path: Path) -> None:
    chart = tmp_path / "llama405b"
    shutil.copytree(two_models["llama405b"], chart)
    values = tmp_path / "llama405b-values.yaml"
    values.write_text("vllm:\n  maxModelLen: 65536\n")
    generate(request(files=(values,)), output=chart, force=True)
    meta = chart_yaml(chart)
    assert meta["version"].startswith("0.1.1+")
    assert yaml.safe_load(meta["annotations"]["artifacthub.io/changes"]) == [
        {"kind": "changed", "description": "vllm.maxModelLen: 131072 -> 65536"}]
