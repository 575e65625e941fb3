"""Flags that behave as helm's: --timeout read as Go reads durations, --dry-run[=client|server], -o table|json|yaml
on every command that prints a result, plan -f/--set as install layers them, and warnings before helm runs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.helm import go_duration_nanos
from helm_rdma.resolve.values import ChartRequest, resolve
from helm_rdma.resolve.valuesources import ValueSources

from .conftest import HELM_VERSIONS, helm_path
from .helm_stand_in import recording_helm

# Go's time.ParseDuration (src/time/format.go, func ParseDuration: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, "0" alone the
# one number without a unit, units ns us µs μs ms s m h, the sum within a uint64 that must fit an int64), which is
# what pflag's DurationVar calls for helm's --timeout. Each row is checked against both real helms below.
DURATIONS: list[tuple[str, int | None]] = [
    ("1m30s500ms", 90_500_000_000), ("90s", 90_000_000_000), ("1.5h", 5_400_000_000_000), ("300ms", 300_000_000),
    ("60m", 3_600_000_000_000), ("0", 0), ("-0", 0), ("+5m", 300_000_000_000), ("-5m", -300_000_000_000),
    ("1.s", 1_000_000_000), (".5s", 500_000_000), ("1h2m3s4ms5us6ns", 3_723_004_005_006), ("1µs", 1_000),
    ("1μs", 1_000), ("0.1h", 360_000_000_000), ("1.0000000000000000000000001s", 1_000_000_000),
    ("9223372036854775807ns", 9_223_372_036_854_775_807), ("-9223372036854775808ns", -9_223_372_036_854_775_808),
    ("2562047h47m16.854775807s", 9_223_372_036_854_775_807),
    ("300", None), ("", None), (".s", None), ("1x", None), ("5 m", None), ("1e3s", None), ("-", None), ("s", None),
    ("1h-5m", None), ("1..5s", None), ("9223372036854775808ns", None), ("2562047h47m16.854775808s", None),
    ("1H", None), (" 5m", None), ("5m ", None),
]


@pytest.mark.parametrize(("text", "nanos"), DURATIONS)
def test_durations_are_read_as_go_reads_them(text: str, nanos: int | None) -> None:
    if nanos is None:
        with pytest.raises(ValueError):
            go_duration_nanos(text)
    else:
        assert go_duration_nanos(text) == nanos


@pytest.fixture(scope="module")
def tiny_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chart = tmp_path_factory.mktemp("tiny") / "c"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    return chart


@pytest.mark.parametrize("helm", sorted(HELM_VERSIONS))
def test_every_duration_row_is_accepted_or_refused_as_real_helm_does(helm: str, tiny_chart: Path) -> None:
    for text, nanos in DURATIONS:
        proc = subprocess.run([str(helm_path(helm)), "template", "x", str(tiny_chart), f"--timeout={text}"],
                              capture_output=True, text=True)
        assert (proc.returncode == 0) == (nanos is not None), (helm, text, proc.stderr)
        if nanos is None:
            assert 'for "--timeout" flag: time: ' in proc.stderr


HELM = """#!/bin/sh
echo "$@" >> "{log}"
case "$1" in
  version) echo "v4.1.4+g0" ;;
  template) echo "kind: Service" ;;
  install|upgrade) echo "NAME: $2"; echo "STATUS: deployed" ;;
  uninstall) echo "release \\"$2\\" uninstalled" ;;
esac
"""


@pytest.fixture
def helm_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return recording_helm(tmp_path, monkeypatch, HELM)


# install and upgrade here are about helm's habits: the group's ports are accepted open (tests/test_doctor_cluster.py
# holds install's check of them).
OPEN_PORTS = ["--set", "distributed.allowOpenGroupPorts=true"]


def cli(*args: str, **kwargs: Any) -> Any:
    accept = OPEN_PORTS if args[:1] in (("install",), ("upgrade",)) else []
    return CliRunner().invoke(main, [*args[:1], *accept, *args[1:]], **kwargs)


def calls(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("command", [
    ["install", "llama405b", "--preset", "h100"], ["upgrade", "llama405b", "--preset", "h100"],
    ["install", "llama405b", "--preset", "h100", "--provision", "--dry-run"],
    ["verify", "llama405b"], ["uninstall", "llama405b"],
])
def test_a_timeout_without_a_unit_exits_2_naming_the_flag_and_the_fix_before_anything_is_written(
        command: list[str], helm_log: Path, tmp_path: Path) -> None:
    out = cli(*command, "-n", "ml", "--timeout", "300")
    assert out.exit_code == 2, out.output
    assert "--timeout" in out.output and '"300" is not a duration helm reads (missing unit)' in out.output
    assert "--timeout 300s" in out.output
    assert calls(helm_log) == [] and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("flag", ["--timeout", "--node-timeout", "--oci-timeout", "--oci-retry-for"])
def test_provision_durations_are_go_durations_too(flag: str) -> None:
    out = cli("provision", "--preset", "h100", flag, "90")
    assert out.exit_code == 2 and f"'{flag}'" in out.output and f"{flag} 90s" in out.output


def test_a_timeout_helm_accepts_reaches_helm_as_written(helm_log: Path) -> None:
    out = cli("install", "llama405b", "--preset", "h100", "-n", "ml", "--timeout", "1m30s500ms")
    assert out.exit_code == 0, out.output
    [install] = [c for c in calls(helm_log) if c[0] == "install"]
    assert install[install.index("--timeout") + 1] == "1m30s500ms"
    out = cli("uninstall", "llama405b", "-n", "ml", "--timeout", "90s")
    assert out.exit_code == 0, out.output
    [uninstall] = [c for c in calls(helm_log) if c[0] == "uninstall"]
    assert uninstall[uninstall.index("--timeout") + 1] == "90s"


# helm 3.17 cmd/helm/install.go:184 and upgrade.go:261: `f.Lookup("dry-run").NoOptDefVal = "client"`, values checked
# by validateDryRunOptionFlag (install.go:343: false, true, none, client, server); helm 4 pkg/cmd/helpers.go:29-40
# (addDryRunFlag, NoOptDefVal "unset") and cmdGetDryRunFlagStrategy: bare --dry-run and "true" mean client, "false"
# and "none" no dry run. With NoOptDefVal, pflag never takes the next argument as the flag's value.
@pytest.mark.parametrize("verb", ["install", "upgrade"])
@pytest.mark.parametrize(("flag", "helm_verb", "extra"), [
    (["--dry-run"], "template", None), (["--dry-run=client"], "template", None),
    (["--dry-run=true"], "template", None), (["--dry-run=server"], "SAME", "--dry-run=server"),
    (["--dry-run=none"], "SAME", None), (["--dry-run=false"], "SAME", None),
])
def test_dry_run_takes_helms_values(verb: str, flag: list[str], helm_verb: str, extra: str | None,
                                    helm_log: Path, tmp_path: Path) -> None:
    out = cli(verb, *flag, "llama405b", "--preset", "h100", "-n", "ml")  # a bare --dry-run leaves RELEASE alone
    assert out.exit_code == 0, out.output
    [call] = [c for c in calls(helm_log) if c[0] != "version"]
    assert call[0] == (verb if helm_verb == "SAME" else helm_verb)
    assert "llama405b" in call[1:3]
    if extra:
        assert extra in call and "--wait" not in call
    assert not any(a.startswith("--dry-run") for a in call if a != extra)
    kept = tmp_path / "cache" / "rdma" / "ml" / "llama405b"
    assert kept.exists() == (flag[0] in ("--dry-run=none", "--dry-run=false"))


def test_a_dry_run_mode_helm_does_not_know_exits_2(helm_log: Path) -> None:
    out = cli("install", "llama405b", "--preset", "h100", "--dry-run=maybe")
    assert out.exit_code == 2 and '"maybe" is not a dry-run mode' in out.output and "--dry-run=server" in out.output
    assert calls(helm_log) == []


def test_a_dry_run_after_the_separator_goes_to_helm_untouched(helm_log: Path) -> None:
    out = cli("template", "llama405b", "--preset", "h100", "--", "--dry-run")
    assert out.exit_code == 0, out.output
    [call] = [c for c in calls(helm_log) if c[0] == "template"]
    assert call[-1] == "--dry-run"


def printing_commands() -> list[tuple[str, click.Command]]:
    found = []

    def walk(prefix: str, command: click.Command) -> None:
        if any(p.name == "fmt" for p in command.params):
            found.append((prefix, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(f"{prefix} {name}".strip(), sub)

    walk("", main)
    return found


def test_every_command_that_prints_a_result_takes_table_json_and_yaml() -> None:
    names = sorted(name for name, _ in printing_commands())
    assert names == ["deprovision", "diagnose", "doctor", "plan", "presets", "presets show", "provision", "status", "verify"]
    for name, command in printing_commands():
        [option] = [p for p in command.params if p.name == "fmt"]
        assert option.opts == ["--output", "-o"] or sorted(option.opts) == ["--output", "-o"], name
        assert list(option.type.choices) == ["table", "json", "yaml"], name  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [
    ["plan", "llama405b", "--preset", "h100"], ["presets"], ["presets", "show", "h100"],
    ["doctor", "--preset", "h100"],
])
def test_json_and_yaml_print_the_same_data_and_table_prints_lines(args: list[str]) -> None:
    as_json = cli(*args, "-o", "json")
    as_yaml = cli(*args, "-o", "yaml")
    as_table = cli(*args, "-o", "table")
    assert as_json.exit_code == as_yaml.exit_code == as_table.exit_code
    assert as_json.exit_code in (0, 1), as_json.output
    assert json.loads(as_json.stdout) == yaml.safe_load(as_yaml.stdout)
    assert as_table.stdout.strip() and not as_table.stdout.lstrip().startswith(("{", "["))


def test_diagnose_of_saved_logs_prints_yaml(tmp_path: Path) -> None:
    (tmp_path / "llama405b-vllm-rdma-0.log").write_text("NCCL INFO NET/Socket : Using [0]eth0\n")
    as_json = cli("diagnose", "llama405b", "--logs", str(tmp_path), "--preset", "h100", "-o", "json")
    as_yaml = cli("diagnose", "llama405b", "--logs", str(tmp_path), "--preset", "h100", "-o", "yaml")
    assert as_json.exit_code == as_yaml.exit_code
    assert json.loads(as_json.stdout) == yaml.safe_load(as_yaml.stdout)


def plan_json(*args: str) -> dict[str, Any]:
    out = cli("plan", "llama405b", "--preset", "h100", *args, "-o", "json")
    assert out.exit_code == 0, out.output
    return dict(json.loads(out.stdout))


def test_plan_takes_values_files_and_set_layered_as_install(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("nodes: 3\nvllm:\n  maxModelLen: 65536\n  gpuMemoryUtilization: 0.8\n")
    planned = plan_json("-f", str(values), "--set", "vllm.maxModelLen=32768")
    assert (planned["nodes"], planned["max_model_len"], planned["gpu_memory_utilization"]) == (3, 32768, 0.8)
    installs = resolve(ChartRequest(release="llama405b", preset="h100", sources=ValueSources(
        files=(values,), set=("vllm.maxModelLen=32768",)))).plan
    assert planned["nodes"] == installs.nodes and planned["max_model_len"] == installs.max_model_len
    assert planned["full_length_sequences"] == installs.full_length_sequences
    # flags come last, as for install
    assert plan_json("-f", str(values), "--max-model-len", "16384", "--gpu-memory-utilization", "0.9")[
        "max_model_len"] == 16384


def test_plan_names_the_flag_of_a_bad_value() -> None:
    out = cli("plan", "llama405b", "--preset", "h100", "--set", "vllm.maxModelLen=-5")
    assert out.exit_code == 2 and "vllm.maxModelLen" in out.output and "--set" in out.output


def test_warnings_come_before_helm_runs_prefixed_and_wrapped(helm_log: Path) -> None:
    out = cli("install", "llama405b", "--preset", "h100", "-n", "ml", env={"COLUMNS": "60"})
    assert out.exit_code == 0, out.output
    warned = [line for line in out.stderr.splitlines() if line.startswith("warning: ")]
    assert warned and all(len(line) <= 60 or " " not in line[9:] for line in warned)
    assert any("model.hfTokenSecret.name" in line for line in warned)
    assert out.output.index("warning: ") < out.output.index("NAME: llama405b")  # helm printed after
    assert not [line for line in out.stderr.splitlines() if line and not line.startswith(("warning: ", "helm-rdma:"))]


def test_warnings_are_coloured_only_on_a_terminal_and_never_with_no_color(helm_log: Path) -> None:
    args = ("install", "llama405b", "--preset", "h100", "-n", "ml")
    assert "\x1b[" not in cli(*args).stderr  # not a terminal
    terminal = cli(*args, color=True)  # click's stand-in for a terminal
    assert "\x1b[33m\x1b[1mwarning: \x1b[0m" in terminal.stderr
    assert "\x1b[" not in cli(*args, color=True, env={"NO_COLOR": "1"}).stderr


def test_real_helm_takes_the_server_dry_run_as_passed_and_nothing_is_kept(helm_bin: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Both helms parse `install ... --dry-run=server` and go on to the cluster (none here): helm's own failure, not
    a flag error, and no chart kept."""
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "cache"))
    out = cli("install", "llama405b", "--preset", "h100", "-n", "ml", "--dry-run=server")
    assert out.exit_code == 1, out.output
    assert "--dry-run=server` exited 1" in out.output and "cluster unreachable" in out.output.lower()
    assert "unknown flag" not in out.output and "invalid" not in out.output.lower().split("exited 1")[1]
    assert not (tmp_path / "cache" / "rdma").exists()


@pytest.mark.parametrize("cache", ["a-file", "a-file/below"])
def test_a_helm_cache_that_cannot_hold_the_chart_installs_with_one_warning(helm_log: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          cache: str) -> None:
    # The kept chart and helm-rdma's own cache (the helm check, checked documents) are conveniences: a
    # HELM_CACHE_HOME or HELM_RDMA_CACHE that is a file (or lies below one) costs them, not the install.
    (tmp_path / "a-file").write_text("not a directory")
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / cache))
    monkeypatch.setenv("HELM_RDMA_CACHE", str(tmp_path / cache))
    out = cli("install", "llama405b", "--preset", "h100", "-n", "ml", "--skip-cluster-checks")
    assert out.exit_code == 0, out.output
    assert "unexpected" not in out.output and "Traceback" not in out.output
    # Warnings are wrapped to the width: read them as one text.
    text = " ".join(line.removeprefix("warning: ") for line in out.output.splitlines() if line.startswith("warning: "))
    assert text.count("cannot keep the release's chart at") == 1 and "so it is not kept" in text, out.output
    assert "make HELM_CACHE_HOME a directory you may write" in text
    assert "chart kept in" not in out.output
    assert [c[0] for c in calls(helm_log)].count("install") == 1
    assert (tmp_path / "a-file").read_text() == "not a directory"
    status = cli("status", "llama405b", "-n", "ml")  # reads where the chart would be kept: no crash
    assert "unexpected" not in status.output and "Traceback" not in status.output, status.output
    out = cli("uninstall", "llama405b", "-n", "ml")
    assert out.exit_code == 0 and "unexpected" not in out.output, out.output


# KUBECONFIG may list several files, merged (client-go tools/clientcmd/loader.go NewDefaultClientConfigLoadingRules:
# the KUBECONFIG variable is split with filepath.SplitList), while helm's --kubeconfig sets the loading rules'
# ExplicitPath, one file (k8s.io/cli-runtime pkg/genericclioptions/config_flags.go toRawKubeConfigLoader). The Python
# client merges a list given as config_file itself (kubernetes/config/kube_config.py KubeConfigMerger splits it on
# ENV_KUBECONFIG_PATH_SEPARATOR).
@pytest.mark.parametrize("helm", sorted(HELM_VERSIONS))
def test_a_kubeconfig_list_reaches_helm_and_the_client_merged(helm: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import config

    from helm_rdma.cluster.kube import release_pods
    from helm_rdma.helmenv import HelmEnv

    from .kmock_cluster import Cluster

    other = tmp_path / "other"
    other.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "far", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "far", "user": {"token": "x"}}],
        "contexts": [{"name": "far", "context": {"cluster": "far", "user": "far"}}]}))
    monkeypatch.setenv("HELM_BIN", str(helm_path(helm)))
    with Cluster([], tmp_path / "kmock") as cluster:
        listed = f"{other}:{cluster.kubeconfig}"
        monkeypatch.setenv("KUBECONFIG", listed)
        env = HelmEnv.from_environ()
        assert "--kubeconfig" not in env.global_flags()
        result = CliRunner().invoke(main, ["status", "llama405b"])
        # helm read the merged list and asked kmock (the second file's context) for the release, not
        # "stat a:b: no such file or directory"
        assert "no such file" not in result.output and listed not in result.output, result.output
        assert "kmock" in result.output and any("secrets" in str(r.url) for r in cluster.requests()), result.output
        contexts, active = config.list_kube_config_contexts(config_file=env.kubeconfig)
        assert {c["name"] for c in contexts} == {"far", "kmock"} and active["name"] == "kmock"
        assert release_pods(release="llama405b", env=env)[0] == "ml"  # the merged list's context namespace
    monkeypatch.setenv("KUBECONFIG", str(other))
    assert HelmEnv.from_environ().global_flags() == ["--kubeconfig", str(other)]
