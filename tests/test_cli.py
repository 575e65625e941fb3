"""The CLI through click's CliRunner: exit codes, messages, and nothing written on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.cli import main

from .conftest import BIN

H100_HCA = "=mlx5_0,mlx5_1,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_9,mlx5_10,mlx5_12,mlx5_13,mlx5_14,mlx5_15,mlx5_16,mlx5_17"


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_template_llama405b_on_h100_has_the_rdma_essentials(runner: CliRunner) -> None:
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f'value: "{H100_HCA}"' in out
    assert "NCCL_IB_GID_INDEX" in out and 'value: "3"' in out
    assert "privileged: true" in out and "/dev/infiniband" in out and "hostNetwork: true" in out
    assert "NCCL_TIMEOUT" not in out
    lws = next(d for d in docs(out) if d["kind"] == "LeaderWorkerSet")
    assert lws["spec"]["leaderWorkerTemplate"]["size"] == 2
    args = lws["spec"]["leaderWorkerTemplate"]["leaderTemplate"]["spec"]["containers"][0]["args"]
    assert args[args.index("--tensor-parallel-size") + 1] == "8"
    assert args[args.index("--pipeline-parallel-size") + 1] == "2"


def test_template_passes_arguments_after_dashdash_to_helm(runner: CliRunner) -> None:
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100", "--",
                                  "--show-only", "templates/service.yaml"])
    assert result.exit_code == 0, result.output
    assert [d["kind"] for d in docs(result.output)] == ["Service"]


def test_template_namespace_reaches_the_manifests(runner: CliRunner) -> None:
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100", "-n", "team-a", "--",
                                  "--show-only", "templates/configmap-scripts.yaml"])
    assert result.exit_code == 0, result.output
    assert docs(result.output)[0]["metadata"]["namespace"] == "team-a"


def test_generate_writes_a_complete_chart(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    result = runner.invoke(main, ["generate", "llama405b", "--preset", "gpu4", "--output-dir", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 x gpu4" in result.output
    for name in ("Chart.yaml", "values.yaml", "values.schema.json", "README.md", "templates/_helpers.tpl",
                 "files/entrypoint.sh"):
        assert (out / name).is_file(), name
    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["nodes"] == 3 and values["preset"]["shape"] == "BM.GPU4.8"
    readme = (out / "README.md").read_text()
    assert "BM.GPU4.8" in readme and "meta-llama/Llama-3.1-405B-Instruct" in readme


def test_generate_refuses_a_non_empty_directory_without_force(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(out)])
    assert result.exit_code == 2
    assert "directory is not empty" in result.output and "--force" in result.output
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    result = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(out), "--force"])
    assert result.exit_code == 2, result.output  # --force replaces only a chart generate wrote
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    (out / "keep.txt").unlink()
    assert runner.invoke(main, ["generate", "llama405b", "--preset", "gpu4", "--output-dir", str(out)]).exit_code == 0
    result = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert "BM.GPU.H100.8" in (out / "values.yaml").read_text() and (out / ".helm-rdma").is_file()


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "h1000"], 'unknown preset "h1000"; known: a100-v2, b200, gpu4, h100, h200, mi300x'),
    (["--preset", "h100", "--model", "gpt5"], 'unknown model "gpt5"; known: deepseek-r1'),
    (["--preset", "h100", "--nodes", "1"], "needs at least 2 node(s) of preset h100, got nodes=1"),
    (["--preset", "h100", "--set", "rdma.mode=ib"], "rdma.mode: 'ib' is not one of 'hostNetwork', 'sriov' (from --set rdma.mode=ib)"),
    (["--preset", "h100", "--set", "novalue"], '--set "novalue": key "novalue" has no value'),
    (["--preset", "h100", "--set", "vllm.pipelineParallelSize=3"], "vllm.tensorParallelSize: TP 8 x PP 3 = 24"),
])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(runner: CliRunner, tmp_path: Path, args: list[str],
                                                               message: str) -> None:
    out = tmp_path / "deploy"
    gen = runner.invoke(main, ["generate", "llama405b", *args, "--output-dir", str(out)])
    tpl = runner.invoke(main, ["template", "llama405b", *args])
    assert tpl.exit_code == 2, tpl.output
    assert message in tpl.output
    assert gen.exit_code == 2
    # generate runs helm-rdma's own checks (as doctor); template leaves that one to the chart's check in helm
    assert ("TP 8 x PP 3 = 24, but a group has 16 GPUs" if "pipelineParallelSize" in message else message) in gen.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) in ([], [out])


def test_bad_yaml_in_a_values_file_names_file_and_line(runner: CliRunner, tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("vllm:\n  maxModelLen: [1\n")
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100", "-f", str(f)])
    assert result.exit_code == 2
    assert f"{f}:3: invalid YAML" in result.output


def test_missing_values_file_is_named(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100", "-f", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml: no such file" in result.output


def test_helm_not_found_says_how_to_get_it(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_BIN", "/nonexistent/helm")
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100"])
    assert result.exit_code == 1
    assert "helm not found (HELM_BIN=/nonexistent/helm is not an executable)" in result.output
    assert "HELM_BIN" in result.output and "make setup" in result.output


def test_a_helm_bin_that_is_not_helm_is_refused_before_its_output_is_taken_for_manifests(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_BIN", "/bin/echo")
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100"])
    assert result.exit_code == 1
    assert "helm not found (HELM_BIN=/bin/echo is not helm 3 or 4: `version --short` answered 'version --short'" \
        in result.output
    assert "template llama405b" not in result.output  # echo's "output" is never printed as manifests


def test_a_helm_on_path_that_is_not_helm_is_named(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    (tmp_path / "helm").write_text("#!/bin/sh\necho 'Usage: helm [nothing]'\n")
    (tmp_path / "helm").chmod(0o755)
    monkeypatch.delenv("HELM_BIN")
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100"])
    assert result.exit_code == 1
    assert f"helm on PATH ({tmp_path / 'helm'}) is not helm 3 or 4" in result.output


def test_a_helm_that_never_answers_its_version_is_refused_in_bounded_time(
        runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import helm_rdma.helm

    (tmp_path / "helm").write_text("#!/bin/sh\nexec sleep 30\n")
    (tmp_path / "helm").chmod(0o755)
    monkeypatch.setenv("HELM_BIN", str(tmp_path / "helm"))
    monkeypatch.setattr(helm_rdma.helm, "HELM_VERSION_TIMEOUT_SECONDS", 0.5)
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100"])
    assert result.exit_code == 1 and "did not answer `version --short` within 0.5 s" in result.output


def test_helm_is_asked_its_version_once_until_the_binary_changes(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    asked = tmp_path / "asked"
    wrapper = tmp_path / "helm"
    script = f'#!/bin/sh\n[ "$1" = version ] && echo "$*" >> {asked}\nexec {BIN / "helm4"} "$@"\n'
    wrapper.write_text(script)
    wrapper.chmod(0o755)
    monkeypatch.setenv("HELM_BIN", str(wrapper))
    for _ in range(2):
        assert runner.invoke(main, ["template", "llama405b", "--preset", "h100"]).exit_code == 0
    assert asked.read_text().splitlines() == ["version --short"]
    wrapper.write_text(script + "# another helm\n")  # a new binary at the same path: asked again
    assert runner.invoke(main, ["template", "llama405b", "--preset", "h100"]).exit_code == 0
    assert asked.read_text().splitlines() == ["version --short"] * 2


def test_helm_failure_exits_1_with_the_command(runner: CliRunner) -> None:
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100", "--", "--no-such-flag"])
    assert result.exit_code == 1
    assert "template llama405b" in result.output and "unknown flag: --no-such-flag" in result.output


def test_plan_table_and_json(runner: CliRunner) -> None:
    table = runner.invoke(main, ["plan", "llama405b", "--preset", "gpu4"])
    assert table.exit_code == 0, table.output
    assert "nodes                  3 (minimum 3)" in table.output
    data = json.loads(runner.invoke(main, ["plan", "llama405b", "--preset", "h100", "-o", "json"]).output)
    assert data["nodes"] == 2 and data["tensor_parallel_size"] == 8 and data["kv_bytes_per_token"] == 516096


def test_plan_with_too_few_nodes_exits_2_naming_the_minimum(runner: CliRunner) -> None:
    result = runner.invoke(main, ["plan", "llama405b", "--preset", "gpu4", "--nodes", "2"])
    assert result.exit_code == 2
    assert "needs at least 3 node(s)" in result.output and "--nodes 3" in result.output


def test_presets_list_and_show(runner: CliRunner) -> None:
    listing = runner.invoke(main, ["presets"])
    assert listing.exit_code == 0
    assert listing.output.splitlines()[0].split()[:2] == ["PRESET", "SHAPE"]
    assert "BM.GPU.H100.8" in listing.output and "16 x 200 Gb/s" in listing.output
    rows = json.loads(runner.invoke(main, ["presets", "-o", "json"]).output)
    assert {r["name"] for r in rows} == {"a100-v2", "b200", "gpu4", "h100", "h200", "mi300x"}
    shown = yaml.safe_load(runner.invoke(main, ["presets", "show", "h100"]).output)
    assert shown["ncclIbHca"] == H100_HCA
    missing = runner.invoke(main, ["presets", "show", "x"])
    assert missing.exit_code == 2 and 'unknown preset "x"' in missing.output


def test_unknown_option_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100", "--bogus"])
    assert result.exit_code == 2
    assert "No such option '--bogus'" in result.output


@pytest.mark.parametrize(("args", "hint"), [
    (["template", "llama405b", "--preset", "H100"], 'did you mean "h100"?'),
    (["template", "llama405b", "--preset", "h10"], 'did you mean "h100"?'),
    (["presets", "show", "Gpu4"], 'did you mean "gpu4"?'),
    (["plan", "lama405b", "--preset", "h100"], 'did you mean "llama405b"?'),
    (["template", "x", "--preset", "h100", "--model", "llama70"], 'did you mean "llama70b"?'),
    (["template", "llama405b", "--preset", "h100", "--set", "vllm.maxModelLength=4096"],
     'unknown key "maxModelLength" (did you mean "vllm.maxModelLen"?)'),
    (["template", "llama405b", "--preset", "h100", "--set", "replica=2"], 'did you mean "replicas"?'),
])
def test_a_mistyped_name_suggests_the_nearest_valid_one(runner: CliRunner, args: list[str], hint: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 2, result.output
    assert hint in result.output


def test_no_suggestion_when_nothing_is_near(runner: CliRunner) -> None:
    result = runner.invoke(main, ["plan", "gpt5", "--preset", "h100"])
    assert result.exit_code == 2 and "did you mean" not in result.output


# A reader that stops early (`| head`, `| grep -q`): the shell's convention for a writer killed by SIGPIPE is exit
# 128 + 13 and no message (Python's documentation, signal module, "Note on SIGPIPE": Python ignores SIGPIPE, so the
# write raises BrokenPipeError instead, and stdout must go to /dev/null before exit so its flush does not raise again).
@pytest.mark.parametrize("args", [["presets"], ["generate", "--help"], ["template", "llama405b", "--preset", "h100"]])
def test_a_reader_that_stops_early_ends_the_cli_as_sigpipe_would(args: list[str]) -> None:
    import os
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from helm_rdma.cli import main; main()", *args]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first write: every write fails, whatever the pipe's capacity
    try:
        done = subprocess.run(cli, stdout=write, stderr=subprocess.PIPE, text=True, check=False, timeout=120)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")
    # and through a shell's pipe to `head -c1`: never a message, whichever write meets the closed pipe first
    shell = subprocess.run(["bash", "-c", 'set -o pipefail; "$@" | head -c1 >/dev/null', "sh", *cli],
                           capture_output=True, text=True, check=False, timeout=120)
    assert shell.returncode in (0, 141) and shell.stderr == "", shell.stderr


def test_a_values_url_is_refused_as_such_not_as_a_mangled_path(runner: CliRunner) -> None:
    """helm's -f also fetches URLs (helm pkg/cli/values/options.go, readFile, through its getters); helm-rdma reads
    local files only, and says so instead of "https:/example.com/values.yaml: no such file"."""
    result = runner.invoke(main, ["template", "llama405b", "--preset", "h100", "-f", "https://example.com/v.yaml"])
    assert result.exit_code == 2
    assert ("https://example.com/v.yaml: helm-rdma reads local values files (and - for standard input), not URLs; "
            "download it first") in result.output


def test_doctor_without_release_or_model_says_which_model_it_checks(runner: CliRunner) -> None:
    result = runner.invoke(main, ["doctor", "--preset", "h100"])
    assert "helm-rdma: no RELEASE and no --model: checking llama405b, the default model" in result.stderr
    named = runner.invoke(main, ["doctor", "llama70b", "--preset", "h100"])
    assert "no RELEASE" not in named.stderr


def test_package_without_helm_writes_nothing(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setenv("HELM_BIN", "/nonexistent/helm")
    result = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "c"),
                                  "--package"])
    assert result.exit_code == 1 and "helm not found" in result.output
    assert not (tmp_path / "c").exists()  # a rerun needs no --force


def test_a_regeneration_from_inside_the_chart_says_to_cd_again(runner: CliRunner, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:
    chart = tmp_path / "c"
    assert runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(chart)]).exit_code == 0
    monkeypatch.chdir(chart / "templates")
    result = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", "..", "--force"])
    assert result.exit_code == 0, result.output
    assert f"the chart directory was replaced as a whole: run `cd {chart}` in a shell that was in it" in result.stderr
