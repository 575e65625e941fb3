"""The GitOps loop over days: generate, keep choices in a values file of one's own, take a new helm-rdma with new
preset facts, regenerate; and what a regeneration does with hand edits and with files someone else added.

Every run goes through the real CLI (click's CliRunner) and renders with real helm. The data a new helm-rdma ships
(presets, chart) is a copy under tmp_path that datafiles.data_root is pointed at, as an installed wheel points it
at helm_rdma/_data.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from helm_rdma import datafiles
from helm_rdma.chart.ownership import MARKER, read_record
from helm_rdma.cli import main

from .conftest import helm_path

CHART = "deploy/llama405b"
USER = "deploy/llama405b-values.yaml"
GENERATE = ("generate", "llama405b", "--preset", "h100")
# The preset fact a new helm-rdma changes (presets/h100.yaml), and the comment its source leaves in values.yaml.
OLD_NCCL = 'NCCL_IB_TIMEOUT: {value: "22", source: oke-nccl'
NEW_NCCL = 'NCCL_IB_TIMEOUT: {value: "20", source: oke-nccl'
NCCL_COMMENT = "# Verbs timeout (4.096 us x 2^22). Source: "


def cli(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, hidden ones included (a directory as b"<dir>")."""
    return {p.relative_to(root).as_posix(): (b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def changed_lines(before: dict[str, bytes], after: dict[str, bytes]) -> dict[str, int]:
    """Per file, the lines a unified diff adds or removes (a file added or removed counts all its lines)."""
    out = {}
    for name in sorted(set(before) | set(after)):
        old = before.get(name, b"").decode().splitlines()
        new = after.get(name, b"").decode().splitlines()
        count = sum(1 for line in difflib.unified_diff(old, new, lineterm="", n=0)
                    if line[:1] in "+-" and not line.startswith(("+++", "---")))
        if count:
            out[name] = count
    return out


def values_of(chart: Path) -> dict[str, Any]:
    return yaml.safe_load((chart / "values.yaml").read_text())


def render(chart: Path, helm: str = "helm4") -> list[dict[str, Any]]:
    """The chart as Argo CD renders it: plain helm, no plugin."""
    done = subprocess.run([str(helm_path(helm)), "template", "llama405b", str(chart), "--namespace", "llm"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def nccl_conf(docs: list[dict[str, Any]]) -> str:
    [conf] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-nccl")]
    return "\n".join(conf["data"].values())


def new_helm_rdma(root: Path, monkeypatch: pytest.MonkeyPatch, *, nccl: bool = True,
                  chart_edit: Any = None) -> Path:
    """A helm-rdma whose shipped data differs: h100's NCCL_IB_TIMEOUT 20 instead of 22, and ``chart_edit`` applied
    to a copy of its chart source."""
    data = root / "new-helm-rdma"
    shutil.copytree(datafiles.data_root() / "presets", data / "presets")
    (data / "schemas").symlink_to(datafiles.data_root() / "schemas")
    if chart_edit is None:
        (data / "charts").symlink_to(datafiles.data_root() / "charts")
    else:
        shutil.copytree(datafiles.data_root() / "charts", data / "charts",
                        ignore=shutil.ignore_patterns("__pycache__"))
        chart_edit(data / "charts" / "vllm-rdma")
    if nccl:
        preset = data / "presets" / "h100.yaml"
        text = preset.read_text()
        assert OLD_NCCL in text
        preset.write_text(text.replace(OLD_NCCL, NEW_NCCL))
    monkeypatch.setattr(datafiles, "data_root", lambda: data)
    return data


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A GitOps repository (the working directory) with a chart generated from a values file of the user's own."""
    monkeypatch.chdir(tmp_path)
    Path("deploy").mkdir()
    Path(USER).write_text("# yaml-language-server: $schema=llama405b/values.schema.json\n"
                          "vllm:\n  maxModelLen: 65536\n")
    done = cli(*GENERATE, "-f", USER, "--output-dir", CHART)
    assert done.exit_code == 0, done.output
    return tmp_path


def test_a_regeneration_keeps_the_users_edit_brings_new_preset_facts_and_changes_little(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chart = repo / CHART
    before, user_before = tree(chart), Path(USER).read_text()
    assert values_of(chart)["nccl"]["settings"]["NCCL_IB_TIMEOUT"] == "22"
    comments = [line for line in (chart / "values.yaml").read_text().splitlines() if "Source: " in line]
    assert any(NCCL_COMMENT in line for line in comments)
    # day 2: the user changes one key in the file of theirs; a new helm-rdma changes an NCCL fact of the preset
    Path(USER).write_text(user_before.replace("maxModelLen: 65536", "maxModelLen: 32768"))
    assert changed_lines({"u": user_before.encode()}, {"u": Path(USER).read_bytes()}) == {"u": 2}  # one line
    new_helm_rdma(repo, monkeypatch)
    done = cli(*GENERATE, "--output-dir", CHART, "--force")  # a plain regeneration: no -f, the chart recorded it
    assert done.exit_code == 0, done.output
    assert f"records: ../{Path(USER).name}" in done.stderr
    values = values_of(chart)
    assert values["vllm"]["maxModelLen"] == 32768  # the edit survives
    assert values["nccl"]["settings"]["NCCL_IB_TIMEOUT"] == "20"  # the preset's fix arrives
    text = (chart / "values.yaml").read_text()
    assert [line for line in text.splitlines() if "Source: " in line] == comments  # every source is still there
    assert "Set by" not in text.split("\nnccl:", 1)[1].split("\nnetwork:", 1)[0]  # NCCL values are still the preset's
    # a small diff: the two values, the version and its changes note, the schema's and README's defaults, and the
    # record's digests, the override schema's defaults (about 50 lines in all; regenerating from an edited values.yaml
    # changed 446)
    after = tree(chart)
    changes = changed_lines(before, after)
    assert set(changes) == {"Chart.yaml", "README.md", "values.yaml", "values.schema.json", "values.override.schema.json",
                            MARKER}, changes
    assert changes["values.yaml"] == 4 and sum(changes.values()) <= 60, changes
    # plain helm renders it, and the pods read the new fact
    for helm in ("helm3", "helm4"):
        assert "NCCL_IB_TIMEOUT=20" in nccl_conf(render(chart, helm))
    # the same inputs again: not one byte changes
    assert cli(*GENERATE, "--output-dir", CHART, "--force").exit_code == 0
    assert tree(chart) == after


def edit_values(chart: Path) -> None:
    path = chart / "values.yaml"
    path.write_text(path.read_text().replace("  maxModelLen: 65536\n", "  maxModelLen: 16384\n"))


def edit_template(chart: Path) -> None:
    with (chart / "templates" / "service.yaml").open("a") as f:
        f.write("# a hand edit\n")


def delete_template(chart: Path) -> None:
    (chart / "templates" / "servicemonitor.yaml").unlink()


@pytest.mark.parametrize(("edit", "named"), [
    (edit_values, "values.yaml (vllm.maxModelLen)"),
    (edit_template, "templates/service.yaml"),
    (delete_template, "templates/servicemonitor.yaml (deleted)"),
])
def test_a_hand_edit_of_a_file_generate_wrote_stops_a_regeneration_and_changes_nothing(
        repo: Path, monkeypatch: pytest.MonkeyPatch, edit: Any, named: str) -> None:
    chart = repo / CHART
    edit(chart)
    new_helm_rdma(repo, monkeypatch)
    before = tree(repo)
    for extra in ((), ("--force",)):
        done = cli(*GENERATE, "--output-dir", CHART, *extra)
        assert done.exit_code == 2, done.output
        assert tree(repo) == before  # not a byte changed, nothing left beside the chart
    assert f"edited by hand since: {named}" in done.output
    assert f"Move each change into your values file (../{Path(USER).name}" in done.output
    assert "--discard-edits" in done.output
    # the explicit way out: the edit is discarded, the preset's fix arrives, the user's values file is still read
    done = cli(*GENERATE, "--output-dir", CHART, "--force", "--discard-edits")
    assert done.exit_code == 0, done.output
    values = values_of(chart)
    assert values["vllm"]["maxModelLen"] == 65536 and values["nccl"]["settings"]["NCCL_IB_TIMEOUT"] == "20"
    assert (chart / "templates" / "servicemonitor.yaml").is_file()
    assert b"# a hand edit" not in (chart / "templates" / "service.yaml").read_bytes()


def test_regenerating_from_the_charts_own_values_yaml_is_refused(repo: Path) -> None:
    """The README's old advice: every value of it would become the user's, and preset fixes would never arrive."""
    before = tree(repo)
    done = cli(*GENERATE, "-f", f"{CHART}/values.yaml", "--output-dir", CHART, "--force")
    assert done.exit_code == 2 and f"-f {CHART}/values.yaml is a file generate writes in this chart" in done.output
    assert tree(repo) == before


def test_force_refuses_files_the_user_added_naming_each_and_changes_nothing(repo: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart directory holds generate's files and the recorded values files: any other file stops --force (issue
    25: over a directory with a user file it exits 2 and changes nothing), so a regeneration never guesses whose a
    file is."""
    chart = repo / CHART
    (chart / "NOTES-ops.md").write_text("on call: team-llm\n")
    (chart / "templates" / "configmap-extra.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\ndata:\n  a: b\n")
    (chart / "overlays").mkdir()
    new_helm_rdma(repo, monkeypatch)
    before = tree(repo)
    done = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert done.exit_code == 2, done.output
    assert "holds files generate did not write: NOTES-ops.md, overlays, templates/configmap-extra.yaml." \
        in done.output
    assert "Move each out of the chart directory" in done.output and "pass it with -f" in done.output
    assert tree(repo) == before and (chart / "overlays").is_dir()
    # moved out of the chart directory, the regeneration goes through and the preset's change arrives
    (chart / "NOTES-ops.md").rename(repo / "NOTES-ops.md")
    (chart / "templates" / "configmap-extra.yaml").rename(repo / "configmap-extra.yaml")
    (chart / "overlays").rmdir()
    done = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert done.exit_code == 0, done.output
    assert values_of(chart)["nccl"]["settings"]["NCCL_IB_TIMEOUT"] == "20"
    assert (repo / "NOTES-ops.md").read_text() == "on call: team-llm\n"


def test_a_values_file_of_the_user_inside_the_chart_directory_is_recorded_and_kept(repo: Path) -> None:
    chart = repo / CHART
    (chart / "prod.yaml").write_text("vllm:\n  maxModelLen: 32768\n")
    refused = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert refused.exit_code == 2 and "holds files generate did not write: prod.yaml." in refused.output
    done = cli(*GENERATE, "-f", f"{CHART}/prod.yaml", "--output-dir", CHART, "--force")
    assert done.exit_code == 0, done.output
    assert '"prod.yaml"' in (chart / MARKER).read_text()
    again = cli(*GENERATE, "--output-dir", CHART, "--force")  # read again from the record, and kept
    assert again.exit_code == 0, again.output
    assert (chart / "prod.yaml").read_text() == "vllm:\n  maxModelLen: 32768\n"
    assert values_of(chart)["vllm"]["maxModelLen"] == 32768


def test_a_new_helm_rdma_drops_its_own_old_file_but_refuses_to_overwrite_a_users_file_of_the_same_name(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chart = repo / CHART

    def new_chart(source: Path) -> None:
        (source / "templates" / "servicemonitor.yaml").unlink()  # gone in the new version
        (source / "templates" / "configmap-extra.yaml").write_text("{{- /* new in this version */ -}}\n")

    (chart / "templates" / "configmap-extra.yaml").write_text("# mine\n")
    new_helm_rdma(repo, monkeypatch, chart_edit=new_chart)
    before = tree(repo)
    done = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert done.exit_code == 2, done.output
    assert "holds files generate did not write: templates/configmap-extra.yaml." in done.output
    assert tree(repo) == before
    (chart / "templates" / "configmap-extra.yaml").rename(repo / "configmap-extra.mine")
    assert cli(*GENERATE, "--output-dir", CHART, "--force").exit_code == 0
    assert not (chart / "templates" / "servicemonitor.yaml").exists()  # the tool's own, unedited: removed
    assert (repo / "configmap-extra.mine").read_text() == "# mine\n"
    record = json.loads("".join(line for line in (chart / MARKER).read_text().splitlines(keepends=True)
                                if not line.startswith("#")))
    assert "templates/configmap-extra.yaml" in record["files"]


def test_a_missing_recorded_values_file_stops_the_regeneration(repo: Path) -> None:
    Path(USER).rename("elsewhere.yaml")
    before = tree(repo)
    done = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert done.exit_code == 2, done.output
    assert (f"its record (.helm-rdma) names the values file ../llama405b-values.yaml, and {repo / USER} is not a "
            "file (moved, renamed, or never one); pass it with -f where it is now (that replaces the record)") \
        in done.output
    assert tree(repo) == before
    # naming the file where it is now records that one instead
    done = cli(*GENERATE, "-f", "elsewhere.yaml", "--output-dir", CHART, "--force")
    assert done.exit_code == 0, done.output
    assert '"../../elsewhere.yaml"' in (repo / CHART / MARKER).read_text()


def test_a_chart_of_a_helm_rdma_that_kept_no_record_is_replaced_only_on_request(repo: Path) -> None:
    chart = repo / CHART
    (chart / MARKER).write_text("Written by `helm-rdma generate`; `helm-rdma generate --force` may replace this "
                                "directory.\n")
    edit_values(chart)
    before = tree(repo)
    done = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert done.exit_code == 2 and "kept no record of its files" in done.output, done.output
    assert "differs from what was generated at vllm.maxModelLen" in done.output
    assert tree(repo) == before
    assert cli(*GENERATE, "-f", USER, "--output-dir", CHART, "--force", "--discard-edits").exit_code == 0
    assert values_of(chart)["vllm"]["maxModelLen"] == 65536


# -- the output directory flag -------------------------------------------------------------------------------------

def test_o_dir_still_writes_the_chart_with_a_deprecation_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    done = cli(*GENERATE, "-o", "out")
    assert done.exit_code == 0, done.output
    assert "generate -o DIR is deprecated" in done.stderr and "--output-dir out" in done.stderr
    assert "deprecated" not in done.stdout and (tmp_path / "out" / "Chart.yaml").is_file()


@pytest.mark.parametrize("value", ["json", "yaml", "table", "JSON"])
def test_o_with_a_format_name_is_refused_as_ambiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      value: str) -> None:
    monkeypatch.chdir(tmp_path)
    done = cli(*GENERATE, "-o", value)
    assert done.exit_code == 2 and "is ambiguous" in done.output and f"--output-dir ./{value}" in done.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [("--output-dir", ""), ("--output-dir", "  "), ("-o", ""), ()])
def test_an_empty_or_missing_output_directory_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         args: tuple[str, ...]) -> None:
    monkeypatch.chdir(tmp_path)
    done = cli(*GENERATE, *args)
    assert done.exit_code == 2 and "--output-dir" in done.output, done.output
    assert list(tmp_path.iterdir()) == []


def test_the_directory_given_twice_and_discard_edits_without_force_are_refused(tmp_path: Path) -> None:
    done = cli(*GENERATE, "-o", str(tmp_path / "a"), "--output-dir", str(tmp_path / "b"))
    assert done.exit_code == 2 and "once, with --output-dir" in done.output
    done = cli(*GENERATE, "--output-dir", str(tmp_path / "a"), "--discard-edits")
    assert done.exit_code == 2 and "give it with --force" in done.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("damage", ["<<<<<<< HEAD\n", "conflict", "{\"files\": 5}", "\xff"])
def test_a_damaged_record_stops_generate_even_with_discard_edits_and_changes_nothing(repo: Path, damage: str) -> None:
    """Two branches regenerate, the merge conflicts in .helm-rdma: the user's own files must survive the next run."""
    chart = repo / CHART
    record = chart / MARKER
    text = record.read_text()
    record.write_text(damage + text if damage.startswith("<") else damage, encoding="latin-1")
    (chart / "templates" / "mine.yaml").write_text("kind: ConfigMap\n")
    before = tree(repo)
    for extra in ([], ["--force"], ["--force", "--discard-edits"]):
        done = cli(*GENERATE, "--output-dir", CHART, *extra)
        assert done.exit_code == 2, done.output
        assert f"{CHART}/{MARKER}: " in done.output and f"git checkout -- {repo / CHART / MARKER}`" in done.output
        assert "unexpected" not in done.output
        assert tree(repo) == before


def test_a_regeneration_that_would_drop_a_value_naming_the_outside_world_stops_and_says_what_changes(
        repo: Path) -> None:
    """--set applies to one run (docs/gitops.md): a regeneration without it would put back the default API key
    Secret name, which only `helm rdma install` creates (plain helm and Argo CD then start pods that reference a
    Secret nobody made), and drop the token Secret; resolve/carried.py names the values this holds for."""
    chart = repo / CHART
    secrets = ("--set", "api.keySecret.name=vllm-api-key,model.hfTokenSecret.name=hf-token")
    done = cli(*GENERATE, "--output-dir", CHART, "--force", "--nodes", "3", *secrets)
    assert done.exit_code == 0, done.output
    before = tree(repo)
    dropped = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert dropped.exit_code == 2, dropped.output
    assert tree(repo) == before
    assert f"regenerating {chart} would drop values the chart there has, which this run does not set:" in dropped.stderr
    assert '  api.keySecret.name: "vllm-api-key" in llama405b, "llama405b-api-key" in this run' in dropped.stderr
    assert '  model.hfTokenSecret.name: "hf-token" in llama405b, "" in this run' in dropped.stderr
    assert "nodes" not in dropped.stderr  # sizing follows the plan; it is listed as a change below, not refused
    # the way the error names: the values in the user's own file, which the chart records for the next regeneration
    user = Path(USER)
    user.write_text(user.read_text() + "api:\n  keySecret:\n    name: vllm-api-key\nmodel:\n  hfTokenSecret:\n"
                                       "    name: hf-token\n")
    kept = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert kept.exit_code == 0, kept.output
    assert "\n2 value(s) change in llama405b\n  nodes: 3 -> 2\n  vllm.pipelineParallelSize: 3 -> 2\n" in kept.stderr
    values = values_of(chart)
    assert values["api"]["keySecret"]["name"] == "vllm-api-key" and values["model"]["hfTokenSecret"]["name"] == "hf-token"
    again = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert again.exit_code == 0 and "\nno value changes in llama405b\n" in again.stderr


def test_values_from_a_pipe_apply_once_and_are_not_recorded(repo: Path) -> None:
    """The shell's <(...) hands over /dev/fd/N, which is gone once the run ends: like -f -, it applies to this run
    and the record keeps naming the user's file."""
    read, write = os.pipe()
    os.write(write, b"replicas: 2\n")
    os.close(write)
    try:
        done = cli(*GENERATE, "-f", USER, "-f", f"/dev/fd/{read}", "--output-dir", CHART, "--force")
    finally:
        os.close(read)
    assert done.exit_code == 0, done.output
    assert f"values read from /dev/fd/{read} (not a regular file: a pipe, such as the shell's <(...), or a device) " \
           "are not recorded" in done.stderr
    assert values_of(repo / CHART)["replicas"] == 2
    assert read_record(repo / CHART).value_files == ("../llama405b-values.yaml",)


def test_a_mount_point_as_output_directory_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """generate replaces the chart directory by a rename, which Linux refuses for a mount point (rename(2): EBUSY);
    a bind-mounted output directory in a container or CI gets the fix, not "a bug"."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "none", str(mnt)]).returncode != 0:
        pytest.skip("needs root and mount(8)")
    try:
        for args in ((), ("--force",)):
            done = cli(*GENERATE, "--output-dir", str(mnt), *args)
            assert done.exit_code == 2, done.output
            assert (f"--output-dir {mnt}: is a mount point, and generate replaces the chart directory as a whole") \
                in done.output
            assert f"give a directory inside it, such as --output-dir {mnt / 'chart'}" in done.output
            assert not any(mnt.iterdir()) and [p.name for p in tmp_path.iterdir()] == ["mnt"]
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_a_hand_edit_and_a_file_of_the_users_are_named_in_one_run(repo: Path) -> None:
    chart = repo / CHART
    with (chart / "templates" / "service.yaml").open("a") as f:
        f.write("# a hand edit\n")
    (chart / "templates" / "mine.yaml").write_text("# mine\n")
    before = tree(repo)
    done = cli(*GENERATE, "--output-dir", CHART, "--force")
    assert done.exit_code == 2 and tree(repo) == before
    assert "edited by hand since: templates/service.yaml" in done.output
    assert ("It also holds files generate did not write, which --discard-edits does not touch and which stop the run "
            "too: templates/mine.yaml; move each out of the chart directory") in done.output


def test_values_from_a_named_pipe_are_not_recorded(repo: Path) -> None:
    fifo = repo / "deploy" / "values.fifo"
    os.mkfifo(fifo)

    def write() -> None:  # blocks in open(2) until generate opens the pipe to read it
        with open(fifo, "w") as pipe:
            pipe.write("replicas: 2\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    time.sleep(0.5)  # the writer waits in open(2) by now: generate's reader finds it there
    done = cli(*GENERATE, "-f", USER, "-f", str(fifo), "--output-dir", CHART, "--force")
    writer.join(timeout=10)
    assert done.exit_code == 0, done.output
    assert values_of(repo / CHART)["replicas"] == 2
    assert read_record(repo / CHART).value_files == ("../llama405b-values.yaml",)
