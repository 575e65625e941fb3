"""Bad input, by the classes of issue 13: every one ends in exit 2 with a message naming the flag, file or key, and
nothing written; plain helm refuses the same values with a schema or validateValues message, never a template error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from helm_rdma.cli import main
from helm_rdma.datafiles import chart_dir, schema_path
from helm_rdma.errors import SchemaViolation
from helm_rdma.resolve.values import resolve
from helm_rdma.sizing.planner import MAX_NODES

from .conftest import REPO, helm_path
from .rendering import request

BOMB = "global:\n" + "".join(
    f"  {name}: &{name} [{','.join([f'*{prev}'] * 9) if prev else ','.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True))
# What a template error from helm looks like: none of these may ever show.
TEMPLATE_ERRORS = ("nil pointer", "error calling", "wrong type for value", "can't evaluate field",
                   "error converting YAML", "invalid value; expected")
HELM_REFUSALS = ("values don't meet the specifications of the schema", "vllm-rdma: the values do not fit together")


def cli(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Any:
    result = runner.invoke(main, list(args), env=env)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def plain_helm(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path(name)), "template", *args], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"}, timeout=60)


def assert_refused_by_plain_helm(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode != 0, out.stdout[:500]
    assert any(r in out.stderr for r in HELM_REFUSALS), out.stderr
    assert not any(t in out.stderr for t in TEMPLATE_ERRORS), out.stderr
    for needle in needles:
        assert needle in out.stderr


# -- release names and namespaces ---------------------------------------------------------------------------------

BAD_FOR_HELM = ["Llama405B", "../../etc", "", "a b", "llamà", "x" * 54, "a_b", "a-", "a..b"]
BAD_FOR_THE_CHART = ["a.b", "405b"]  # helm takes them; the Services named after them are refused by Kubernetes


@pytest.mark.parametrize("release", BAD_FOR_HELM + BAD_FOR_THE_CHART)
@pytest.mark.parametrize("command", ["generate", "template", "install", "upgrade", "doctor"])
def test_chart_commands_refuse_a_bad_release_name_first(runner: CliRunner, tmp_path: Path, command: str,
                                                        release: str) -> None:
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    extra = ["--output-dir", str(out)] if command == "generate" else []
    result = cli(runner, command, release, "--preset", "no-such-preset", *extra,
                 env={"HELM_CACHE_HOME": str(cache), "HELM_BIN": "/nonexistent"})
    assert result.exit_code == 2, result.output
    assert "release name" in result.output and "lower-case letters" in result.output
    assert not out.exists() and not cache.exists()


@pytest.mark.parametrize("release", BAD_FOR_HELM)
@pytest.mark.parametrize("command", ["status", "uninstall", "verify"])
def test_release_commands_refuse_what_helm_refuses(runner: CliRunner, tmp_path: Path, command: str,
                                                   release: str) -> None:
    result = cli(runner, command, release, env={"HELM_CACHE_HOME": str(tmp_path), "HELM_BIN": "/nonexistent"})
    assert result.exit_code == 2 and "release name" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("release", BAD_FOR_THE_CHART)
def test_plain_helm_refuses_a_release_whose_service_name_kubernetes_refuses(release: str) -> None:
    assert_refused_by_plain_helm(plain_helm("helm4", release, str(chart_dir())), "Service name")


@pytest.mark.parametrize(("args", "env"), [
    (["-n", "../../../y"], {}),
    (["-n", "Team A"], {}),
    ([], {"HELM_NAMESPACE": "../escape"}),
])
def test_a_bad_namespace_is_refused_and_nothing_lands_outside_the_cache(runner: CliRunner, tmp_path: Path,
                                                                       args: list[str], env: dict[str, str]) -> None:
    cache = tmp_path / "home" / "cache"
    result = cli(runner, "install", "llama405b", "--preset", "h100", *args,
                 env={"HELM_CACHE_HOME": str(cache), **env})
    assert result.exit_code == 2 and "is not a Kubernetes namespace name" in result.output
    assert list(tmp_path.rglob("*")) == []


def test_the_kept_chart_never_leaves_the_cache(tmp_path: Path) -> None:
    from helm_rdma.helmenv import HelmEnv

    root = tmp_path / "cache"
    (root / "rdma").mkdir(parents=True)
    (root / "rdma" / "default").symlink_to(tmp_path)
    with pytest.raises(Exception, match="outside"):
        HelmEnv(cache_home=root).chart_cache("llama405b")
    assert HelmEnv(namespace="ml", cache_home=root).chart_cache("llama405b") == root.resolve() / "rdma/ml/llama405b"


# -- nulls and missing keys ---------------------------------------------------------------------------------------

def walk(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = []
    for key, sub in schema.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        out.append((here, sub, schema))
        out += walk(sub, here)
    return out


SCHEMA = json.loads(schema_path("values.schema.json").read_text())
KEYS = walk(SCHEMA)


def test_every_key_the_templates_read_is_required_so_helm_checks_it_before_rendering() -> None:
    optional = [path for path, sub, parent in KEYS
                if path.rsplit(".", 1)[-1] not in parent.get("required", [])
                and not (isinstance(sub.get("type"), list) and "null" in sub["type"])]
    assert optional == ["global"]


# Keys whose null means "decide from other keys" (the chart's helpers read a missing key the same way).
NULLABLE = [p for p, sub, _ in KEYS if isinstance(sub.get("type"), list) and "null" in sub["type"]]


@pytest.mark.parametrize("path", [p for p, _, _ in KEYS])
def test_null_for_any_key_is_a_schema_message_naming_it(path: str) -> None:
    try:
        resolve(request(sets=(f"{path}=null",)))
    except SchemaViolation as exc:
        assert f"{path}: is required" in str(exc) and f"(from --set {path}=null)" in str(exc)
    else:
        assert path in ("global", *NULLABLE)


@pytest.mark.parametrize("path", [p for p, _, _ in KEYS])
def test_template_with_a_null_for_any_key_names_it_or_renders(runner: CliRunner, path: str) -> None:
    # template hands the schema check to helm, but writes the chart (Chart.yaml reads replicas, workload.kind, ...)
    # first: a null that removed such a key was a KeyError reported as a bug.
    result = cli(runner, "template", "llama405b", "--preset", "h100", "--set", f"{path}=null")
    assert "unexpected" not in result.output
    if path in ("global", *NULLABLE):
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 2 and f"{path}: is required" in result.output, result.output
        assert f"(from --set {path}=null)" in result.output


WRONG_KINDS = st.sampled_from([None, 5, 0.5, True, "x", [], ["x"], {}, {"x": 1}])


@settings(max_examples=60, derandomize=True, deadline=None, database=None)
@given(path=st.sampled_from([p for p, _, _ in KEYS]), value=WRONG_KINDS)
def test_template_with_a_value_of_any_kind_for_any_key_never_ends_in_a_bug(path: str, value: Any) -> None:
    result = CliRunner().invoke(main, ["template", "llama405b", "--preset", "h100", "--set-json",
                                       f"{path}={json.dumps(value)}"])
    assert "unexpected" not in result.output and "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert path.split(".")[0] in result.output, result.output


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
@pytest.mark.parametrize("path", ["vllm", "model.hfTokenSecret", "image.tag", "placement.clusterNetworkLabel"])
def test_plain_helm_says_a_nulled_key_is_required(helm: str, path: str) -> None:
    out = plain_helm(helm, "x", str(chart_dir()), "--set", f"{path}=null")
    assert out.returncode != 0 and ("is required" in out.stderr or "missing property" in out.stderr), out.stderr
    assert not any(t in out.stderr for t in TEMPLATE_ERRORS)


# -- resource exhaustion ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "message"), [
    (["-f", "BOMB"], "document contains excessive aliasing"),
    (["-f", "/dev/zero"], "/dev/zero: larger than 4 MiB"),
    (["--set", "vllm.extraArgs[3000000]=x"], "above helm's limit of 65536"),
    (["--set-json", "global.x=" + "[" * 100000 + "]" * 100000], "--set-json"),
    (["-f", "DEEP"], "nested deeper than 100 levels"),
])
def test_resource_exhaustion_is_bounded(runner: CliRunner, tmp_path: Path, flags: list[str], message: str) -> None:
    bomb, deep = tmp_path / "bomb.yaml", tmp_path / "deep.yaml"
    bomb.write_text(BOMB)
    deep.write_text("global:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(150)) + " " * 151 + "x: 1\n")
    flags = [str(bomb) if f == "BOMB" else str(deep) if f == "DEEP" else f for f in flags]
    started = time.monotonic()
    result = cli(runner, "generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "out"), *flags)
    assert result.exit_code == 2 and message in result.output
    assert time.monotonic() - started < 30  # each was minutes or the OOM killer before
    assert not (tmp_path / "out").exists()


def test_plain_helm_refuses_the_alias_bomb_too(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    out = plain_helm("helm4", "x", str(chart_dir()), "-f", str(bomb))
    assert out.returncode != 0 and "excessive aliasing" in out.stderr


# -- generate -o and --force --------------------------------------------------------------------------------------

def generate(runner: CliRunner, out: Path, *extra: str) -> Any:
    return cli(runner, "generate", "llama405b", "--preset", "h100", "--output-dir", str(out), *extra)


def test_force_never_replaces_a_git_work_tree(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "src.py").write_text("precious")
    monkeypatch.chdir(tmp_path)
    result = generate(runner, Path("."), "--force")
    assert result.exit_code == 2 and "holds a git repository (.git)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [".git", "src.py"]


def test_force_regenerates_only_a_chart_generate_wrote_and_refuses_other_files(runner: CliRunner,
                                                                                tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = generate(runner, out, "--force")
    assert result.exit_code == 2 and "holds files generate did not write (no .helm-rdma file)" in result.output
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    (out / "notes.txt").unlink()
    assert generate(runner, out).exit_code == 0
    (out / "stale.yaml").write_text("old")
    assert generate(runner, out).exit_code == 2  # not empty: --force is still needed
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    result = generate(runner, out, "--force")  # a file generate did not write: exit 2, nothing changed
    assert result.exit_code == 2 and "holds files generate did not write: stale.yaml." in result.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy"]
    (out / "stale.yaml").unlink()
    assert generate(runner, out, "--force").exit_code == 0


@pytest.mark.parametrize(("target", "message"), [
    ("FILE", "is a file, not a directory"),
    ("/sys/kernel/helm-rdma-test/chart", "cannot write in /sys/kernel/helm-rdma-test"),
    ("/proc/self/status/chart", "cannot write in"),
])
def test_an_output_that_cannot_hold_a_chart_is_exit_2(runner: CliRunner, tmp_path: Path, target: str,
                                                      message: str) -> None:
    if target == "FILE":
        target = str(tmp_path / "file")
        Path(target).write_text("x")
    result = generate(runner, Path(target))
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_chart_helm_refuses_is_not_written(runner: CliRunner, tmp_path: Path) -> None:
    result = generate(runner, tmp_path / "out", "--set", "model.storage.type=pvc")
    assert result.exit_code == 2 and "model.storage.claimName: is empty" in result.output
    assert list(tmp_path.iterdir()) == []


SLOW_GENERATE = """
import sys, time
from helm_rdma.chart import write as chart
fill = chart._fill
def slow(*args, **kwargs):
    names = fill(*args, **kwargs)
    print("staged", flush=True)
    time.sleep(60)
    return names
chart._fill = slow
from helm_rdma.cli import main
main(["generate", "llama405b", "--preset", "h100", "--output-dir", sys.argv[1]])
"""


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 1)])
def test_sigterm_and_sigint_leave_no_staging_directory(tmp_path: Path, sig: int, code: int) -> None:
    out = tmp_path / "out"
    # As a command typed at a terminal: a shell starts a background job (and so this suite, when run with `&`) with
    # SIGINT ignored, which its children inherit, and Python then leaves SIGINT ignored (signal(7), "execve(2)").
    proc = subprocess.Popen([sys.executable, "-c", SLOW_GENERATE, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "staged"
    assert any(p.name.startswith(".out.") for p in tmp_path.iterdir())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# -- YAML injection and values Kubernetes refuses -----------------------------------------------------------------

INJECTIONS = {
    "placement.clusterNetworkLabel.key": "x: y\n  hostPID: true\n  z",
    "image.repository": 'vllm/vllm-openai"\n      hostPID: true\n      x: "',
    "image.tag": "v1\n    hostPID: true",
    "rdma.devicePath": "/dev/infiniband\n      hostPID: true",
    "rdma.sriov.resourceName": "x: 1\n    hostPID: true\n    a/b",
    "model.storage.sizeLimit": "1Ti\n    hostPID: true",
    "serviceAccount.name": "x\n  hostPID: true",
}
KUBERNETES_REFUSES = {
    "model.hfTokenSecret.name": "Hf_Token",
    "clusterNetwork.apiKeySecret": "oci key",
    "fullnameOverride": "Llama",
    "nameOverride": "x.y",
    "serviceAccount.name": "SA",
    "placement.clusterNetworkLabel.value": "v" * 64,
    "model.storage.claimName": "my_claim",
    "model.storage.hostPath": "/mnt/../etc",
}


def values_file(tmp_path: Path, values: dict[str, Any]) -> Path:
    nested: dict[str, Any] = {}
    for path, value in values.items():
        node = nested
        *parents, last = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    f = tmp_path / "values.yaml"
    f.write_text(json.dumps(nested))
    return f


@pytest.mark.parametrize("path", sorted({**INJECTIONS, **KUBERNETES_REFUSES}))
def test_values_that_would_break_yaml_or_kubernetes_are_refused_by_us_and_by_plain_helm(
        runner: CliRunner, tmp_path: Path, path: str) -> None:
    value = INJECTIONS.get(path) or KUBERNETES_REFUSES[path]
    f = values_file(tmp_path, {path: value})
    result = cli(runner, "generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "out"), "-f", str(f))
    assert result.exit_code == 2 and f"{path}:" in result.output and f"(from -f {f})" in result.output
    assert not (tmp_path / "out").exists()
    assert_refused_by_plain_helm(plain_helm("helm4", "x", str(chart_dir()), "-f", str(f)), path.rsplit(".", 1)[-1])


@pytest.mark.parametrize(("values", "needle"), [
    ({"nccl.settings": {"NCCL_IB_HCA": "=mlx5_0\n  injected: true"}}, "NCCL_IB_HCA"),
    ({"nccl.settings": {"NCCL_X: y": "1"}}, "NCCL_X: y"),
    ({"podLabels": {"app.kubernetes.io/name": "other"}}, "app.kubernetes.io/name"),
    ({"podAnnotations": {"checksum/config": "x"}}, "checksum/config"),
    ({"placement.nodeSelector": {"bad key": "v"}}, "bad key"),
    ({"placement.tolerations": [{"value": "x"}]}, "tolerations"),
    ({"placement.tolerations": [{"key": "k", "operator": "Exists", "value": "x"}]}, "tolerations"),
    ({"monitoring.serviceMonitor.labels": {"helm.sh/chart": "x"}}, "helm.sh/chart"),
    ({"rdma.sriov.vfs": 100000000}, "vfs"),
    ({"replicas": 10**12}, "replicas"),
])
def test_map_keys_and_bounds_follow_kubernetes(tmp_path: Path, values: dict[str, Any], needle: str) -> None:
    f = values_file(tmp_path, values)
    with pytest.raises(SchemaViolation, match=needle.replace(".", r"\.").replace("/", "/")):
        resolve(request(files=(f,)))
    assert_refused_by_plain_helm(plain_helm("helm4", "x", str(chart_dir()), "-f", str(f)))


def test_label_key_and_mount_path_clashes_are_caught_by_the_charts_own_check(tmp_path: Path) -> None:
    f = values_file(tmp_path, {"placement.nodeSelector": {"helm-rdma.io/cluster-network": "x"},
                               "placement.clusterNetworkLabel.enabled": True, "model.storage.mountPath": "/dev/shm"})
    out = plain_helm("helm3", "x", str(chart_dir()), "-f", str(f))
    assert_refused_by_plain_helm(out, "placement.nodeSelector: repeats the key",
                              "model.storage.mountPath: /dev/shm, rdma.devicePath")


# -- impossible requests ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["template", "llama405b", "--preset", "h100", "--max-model-len", "200000"],
     "max model length 200000 (--max-model-len or vllm.maxModelLen) is above llama405b's context of 131072 tokens"),
    (["generate", "llama405b", "--preset", "h100", "--output-dir", "OUT", "--set", "vllm.maxModelLen=131073"],
     "is above llama405b's context of 131072"),
    (["plan", "llama405b", "--preset", "h100", "--max-model-len", "131073"], "use 131072 or less"),
    (["generate", "llama405b", "--preset", "gpu4", "--output-dir", "OUT", "--set-json", "vllm.gpuMemoryUtilization=0.03"],
     f"does not fit in {MAX_NODES} nodes of preset gpu4, the most a group may have"),
])
def test_impossible_requests_name_the_limit(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    args = [str(tmp_path / "out") if a == "OUT" else a for a in args]
    result = cli(runner, *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_the_planners_node_limit_is_the_schemas() -> None:
    assert SCHEMA["properties"]["nodes"]["maximum"] == MAX_NODES


# -- no traceback, anywhere ---------------------------------------------------------------------------------------

SWEEP = [
    ["generate"], ["generate", "llama405b"], ["generate", "llama405b", "--preset", "h100"],
    ["template", "llama405b", "--preset", "h100", "-f", "DIR"],
    ["template", "llama405b", "--preset", "h100", "-f", "BINARY"],
    ["template", "llama405b", "--preset", "h100", "-f", "DATES"],
    ["template", "llama405b", "--preset", "h100", "--set", "x\udcff=1"],
    ["template", "llama405b", "--preset", "h100", "--set-json", "vllm.port=1e999"],
    ["template", "llama405b", "--preset", "h100", "--set-json", "vllm=[1]"],
    ["template", "llama405b", "--preset", "h100", "--set-file", "model.name=DIR"],
    ["template", "llama405b", "--preset", "h100", "--set", "nodes=abc"],
    ["template", "llama405b", "--preset", "h100", "--set", "vllm.maxModelLen=-5"],
    ["template", "llama405b", "--preset", "h100", "--set", "vllm.gpuMemoryUtilization=0"],
    ["template", "llama405b", "--preset", "h100", "--set-json", "vllm.tensorParallelSize=7"],
    ["template", "llama405b", "--preset", "h100", "--set", "global=1"],
    ["template", "llama405b", "--preset", "h100", "--set", "preset=x"],
    ["template", "llama405b", "--preset", "h100", "--nodes", "0"],
    ["install", "llama405b", "--preset", "h100", "--timeout", "x", "--provision"],
    ["upgrade", "llama405b", "--preset", "h100", "--set", "clusterNetwork.provision=true"],
    ["doctor", "--preset", "h100", "--set", "nccl.settings=[]"],
    ["doctor", "--preset", "h100", "--set", "vllm.extraEnv[0].name=x"],
    ["plan", "gpt5", "--preset", "h100"], ["plan", "llama405b", "--preset", "../../etc/passwd"],
    ["presets", "show", "../../etc/passwd"], ["presets", "show", ""],
    ["status", "a/b"], ["uninstall", "A"], ["verify", "x" * 100],
    ["provision", "--from-values", "DIR", "--release", "x"],
    ["provision", "--from-values", "BINARY", "--release", "x"],
    ["provision", "--release", "Bad Name"],
    ["deprovision", "--name", "x", "--compartment", "y", "--release", "../x"],
]


@pytest.mark.parametrize("args", SWEEP, ids=lambda a: " ".join(a)[:60])
def test_no_command_ends_in_a_traceback(runner: CliRunner, tmp_path: Path, args: list[str]) -> None:
    binary, dates = tmp_path / "binary.yaml", tmp_path / "dates.yaml"
    binary.write_text("global: !!binary gIA=\n")
    dates.write_text("global: {when: !!timestamp 2024-01-01, set: !!set {a: null}}\n")
    args = [{"DIR": str(tmp_path), "BINARY": str(binary), "DATES": str(dates)}.get(a, a) for a in args]
    result = cli(runner, *args, env={"HELM_CACHE_HOME": str(tmp_path / "cache"), "HELM_BIN": "/nonexistent"})
    assert result.exit_code in (1, 2), result.output


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(runner: CliRunner,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("helm_rdma.commands.plan.plan_values", broken)
    result = runner.invoke(main, ["plan", "llama405b", "--preset", "h100"])
    assert result.exit_code == 1
    assert result.output.strip() == ("helm-rdma: error: unexpected RuntimeError: boom (a bug in helm-rdma; run with "
                                     "--debug or HELM_DEBUG=true for the traceback)")
    for args, env in ((["--debug"], {}), ([], {"HELM_DEBUG": "true"})):
        debug = runner.invoke(main, [*args, "plan", "llama405b", "--preset", "h100"], env=env)
        assert debug.exit_code == 1 and "Traceback" in debug.output and "RuntimeError: boom" in debug.output


def test_no_traceback_through_the_plugin_entry_point(tmp_path: Path) -> None:
    env = {**os.environ, "HELM_PLUGIN_DIR": str(REPO), "HELM_RDMA_VENV": str(Path(sys.executable).parent.parent)}
    out = subprocess.run([str(REPO / "scripts" / "helm-rdma"), "generate", "Bad", "--preset", "h100", "--output-dir",
                          str(tmp_path / "o")], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "release name" in out.stderr


@pytest.mark.parametrize("breaker", ["\n", "\r", "\x85", "\u2028", "\u2029"])
def test_a_flag_quoted_in_a_values_yaml_comment_cannot_add_values(runner: CliRunner, tmp_path: Path,
                                                                  breaker: str) -> None:
    out = tmp_path / "out"
    annotation = f"a{breaker}rdma: {{privileged: true}}"
    result = cli(runner, "generate", "llama405b", "--preset", "h100", "--output-dir", str(out),
                 "--set-string", f"podAnnotations.example\\.com/note={annotation}")
    assert result.exit_code == 0, result.output
    import yaml

    values = yaml.safe_load((out / "values.yaml").read_text())
    assert values["podAnnotations"] == {"example.com/note": annotation}
    assert values["rdma"]["privileged"] is None  # the default, not the injected true


def test_with_provision_bad_values_stop_before_helm_or_oci_is_reached(runner: CliRunner, tmp_path: Path) -> None:
    # HELM_BIN names nothing: reaching helm (and so the provisioning hook) would be exit 1, not 2.
    result = cli(runner, "install", "llama405b", "--preset", "h100", "--provision", "--compartment",
                 "ocid1.compartment.oc1..c", "--availability-domain", "AD-1", "--subnet", "ocid1.subnet.oc1..s",
                 "--image", "ocid1.image.oc1..i", "--set", "placement.clusterNetworkLabel.value=Not A Label",
                 env={"HELM_BIN": "/nonexistent", "HELM_CACHE_HOME": str(tmp_path)})
    assert result.exit_code == 2 and "placement.clusterNetworkLabel.value" in result.output
    assert list(tmp_path.iterdir()) == []


# -- the environment ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"apiVersion: v1\nclusters: 5\n", b"apiVersion: v1\x00\nclusters: []\n",
                                     b"- just\n- a list\n", b"\xff\xfe binary"], ids=["clusters-5", "nul", "list", "binary"])
def test_a_kubeconfig_that_is_not_one_fails_naming_the_file(runner: CliRunner, tmp_path: Path, content: bytes) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(content)
    result = cli(runner, "doctor", "llama405b", "--preset", "h100", "--cluster", env={"KUBECONFIG": str(kubeconfig)})
    assert result.exit_code == 1, result.output
    assert "unexpected" not in result.output
    assert str(kubeconfig) in result.output and "kubeconfig" in result.output


def options_of(types: tuple[type, ...]) -> list[tuple[tuple[str, ...], str]]:
    """(command path, flag) of every option whose type is one of ``types``, found by walking the commands."""
    import click

    found = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, types):
                found.append((path, param.opts[0]))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))

    walk(main, ())
    return found


def float_options() -> list[tuple[tuple[str, ...], str]]:
    """Every option that takes a number with a fraction."""
    import click

    return options_of((click.FloatRange,))


@pytest.mark.parametrize(("path", "flag"), float_options(), ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
@pytest.mark.parametrize("number", ["nan", "inf", "-inf", "NaN"])
def test_no_float_flag_takes_nan_or_infinity(runner: CliRunner, tmp_path: Path, path: tuple[str, ...], flag: str,
                                             number: str) -> None:
    # click's FloatRange compares, and every comparison with nan is false: nan passed, then crashed a sum later
    result = cli(runner, *path, flag, number, env={"HELM_BIN": "/nonexistent", "HELM_CACHE_HOME": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert "unexpected" not in result.output and flag in result.output


def duration_options() -> list[tuple[tuple[str, ...], str, bool, float | None]]:
    """(command path, flag, whether 0 is refused, most seconds) of every option that takes a Go duration, found by walking the commands."""
    import click

    from helm_rdma.cli.params import GoDuration

    found = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        for param in command.params:
            if isinstance(param, click.Option) and isinstance(param.type, GoDuration):
                arguments = tuple("llama" for p in command.params if isinstance(p, click.Argument) and p.required)
                found.append(((*path, *arguments), param.opts[0], param.type.positive, param.type.most))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))

    walk(main, ())
    return found


@pytest.mark.parametrize(("path", "flag", "positive", "most"), duration_options(),
                         ids=lambda x: " ".join(x) if isinstance(x, tuple) else str(x))
def test_no_duration_flag_takes_a_negative_zero_or_endless_one(runner: CliRunner, tmp_path: Path,
                                                               path: tuple[str, ...], flag: str, positive: bool,
                                                               most: float | None) -> None:
    env = {"HELM_BIN": "/nonexistent", "HELM_CACHE_HOME": str(tmp_path)}
    beyond = [f"{int(most) + 1}s"] if most is not None and most < 2_000_000 * 3600 else []  # Go's own limit: 2562047h
    for text in ["-1s", *(["0s"] if positive else []), *beyond]:
        result = cli(runner, *path, flag, text, env=env)
        assert result.exit_code == 2, (text, result.output)
        assert "unexpected" not in result.output and flag in result.output and "out of range" in result.output, \
            result.output


def test_oci_timeout_0s_names_the_flag_the_range_and_the_fix(runner: CliRunner) -> None:
    result = cli(runner, "deprovision", "--name", "llama", "--compartment", "ocid1.compartment.oc1..aaaa",
                 "--oci-timeout", "0s", "--oci-endpoint", "http://127.0.0.1:9", "--yes")
    assert result.exit_code == 2, result.output
    assert ("'--oci-timeout': \"0s\" is out of range: expected a duration above 0s and at most 1h; use for "
            "example --oci-timeout 60s") in result.output


def test_the_duration_flags_are_found() -> None:
    flags = {(path[0], flag) for path, flag, _, _ in duration_options()}
    assert {("provision", "--oci-timeout"), ("provision", "--oci-retry-for"), ("provision", "--timeout"),
            ("provision", "--node-timeout"), ("deprovision", "--oci-timeout"), ("verify", "--timeout")} <= flags


def test_the_float_flags_are_found() -> None:
    flags = {flag for _, flag in float_options()}
    assert {"--gpu-memory-utilization", "--network-gbs", "--nvme-gbs"} <= flags


@pytest.mark.parametrize(("model", "why"), [("org/" + "a" * 97, "at most 96 characters"), ("org/a--b", "--"),
                                            ("org/a..b", ".."), ("org/name.git", ".git")])
def test_a_hub_id_the_hub_refuses_is_refused_before_any_request(runner: CliRunner, model: str, why: str) -> None:
    # huggingface_hub's validate_repo_id (utils/_validators.py): names of at most 96 characters, no "--" or "..",
    # no trailing ".git"; it raised HFValidationError, reported as a bug
    result = cli(runner, "template", "llama405b", "--preset", "h100", "--model", model,
                 env={"HF_ENDPOINT": "http://127.0.0.1:9"})
    assert result.exit_code == 2, result.output
    assert "unexpected" not in result.output and why in result.output and "--model" in result.output


def test_plain_helm_refuses_a_hub_name_over_96_characters() -> None:
    out = plain_helm("helm4", "x", str(chart_dir()), "--set", "model.name=org/" + "a" * 97)
    assert_refused_by_plain_helm(out, "/model/name", "{0,95}")


# -- limits helm and Kubernetes enforce --------------------------------------------------------------------------

def test_helm_refuses_a_chart_file_over_5_mib(tmp_path: Path) -> None:
    # helm v4.1.4 pkg/chart/loader/archive/archive.go line 42 (MaxDecompressedFileSize = 5 MiB), checked for a chart
    # directory's files in pkg/chart/v2/loader/directory.go line 103; the rule resolve/limits.py holds.
    from helm_rdma.resolve.limits import HELM_FILE_LIMIT

    chart = tmp_path / "c"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: c\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("a: " + "x" * HELM_FILE_LIMIT + "\n")
    proc = subprocess.run([str(helm_path("helm4")), "template", "x", str(chart)], capture_output=True, text=True)
    assert proc.returncode != 0 and "is larger than the maximum file size 5242880" in proc.stderr


def test_values_that_make_a_chart_file_helm_refuses_are_exit_2_naming_the_file_and_key(runner: CliRunner,
                                                                                     tmp_path: Path) -> None:
    # 2.8 MB of values (under the 4 MiB a values file may have) that values.yaml writes as more than 5 MiB: helm's
    # own error came after up to 150 s; now the values are refused before anything is written or rendered.
    big = tmp_path / "big.yaml"
    big.write_text("vllm:\n  extraArgs:\n" + "".join(f"  - --opt-{i}={'é' * 300}\n" for i in range(4500)),
                   encoding="utf-8")
    out = tmp_path / "deploy"
    started = time.monotonic()
    result = generate(runner, out, "-f", str(big))
    assert result.exit_code == 2, result.output
    assert time.monotonic() - started < 60
    assert f"vllm.extraArgs (from -f {big}): the chart's values.yaml would be" in result.output
    assert "helm loads no chart file over 5242880" in result.output and "fix:" in result.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big.yaml"]


def test_a_large_user_value_is_in_values_yaml_once_and_regenerates_cleanly(runner: CliRunner, tmp_path: Path) -> None:
    from helm_rdma.resolve.values import OMITTED_DEFAULT, default_stand_in

    args = [f"--opt-{i}=" + "v" * 60 for i in range(2000)]  # about 140 kB
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({"vllm": {"extraArgs": args}}, width=1000))
    out = tmp_path / "deploy"
    assert generate(runner, out, "-f", str(mine)).exit_code == 0
    schema = json.loads((out / "values.schema.json").read_text())
    vllm = schema["properties"]["vllm"]
    stand_in = default_stand_in(args)
    assert vllm["properties"]["extraArgs"][OMITTED_DEFAULT] == stand_in
    assert "default" not in vllm["properties"]["extraArgs"] and "default" not in vllm  # not repeated above it
    assert vllm["properties"]["port"]["default"] == 8000  # the small ones still are
    assert (out / "values.yaml").read_text().count("--opt-1999=") == 1
    assert "--opt-1999=" not in (out / "README.md").read_text()
    assert "values.yaml holds it" in (out / "README.md").read_text()
    assert len((out / "values.schema.json").read_bytes()) < 400_000
    again = generate(runner, out, "--force")  # the record and the stand-in agree: no hand edit, no change
    assert again.exit_code == 0, again.output
    assert "vllm.extraArgs" not in yaml.safe_load((out / "Chart.yaml").read_text())["annotations"].get(
        "artifacthub.io/changes", "")


@pytest.mark.parametrize(("key", "flag"), [("podAnnotations", "-f"), ("service.annotations", "--set-file")])
def test_annotations_kubernetes_would_refuse_for_their_size_are_exit_2_naming_the_key(
        runner: CliRunner, tmp_path: Path, key: str, flag: str) -> None:
    # kubernetes/apimachinery pkg/api/validation/objectmeta.go: TotalAnnotationSizeLimitB = 256 * (1 << 10), and
    # ValidateAnnotationsSize sums len(key) + len(value) of every annotation of one object.
    value = "x" * (256 * 1024)
    if flag == "-f":
        source = tmp_path / "ann.yaml"
        source.write_text(yaml.safe_dump({key: {"example.com/note": value}}))
        args = ["-f", str(source)]
        origin = f"-f {source}"
    else:
        source = tmp_path / "note.txt"
        source.write_text(value)
        args = ["--set-file", f"{key}.example\\.com/note={source}"]
        origin = f"--set-file {key}.example\\.com/note={source}"
    result = cli(runner, "template", "llama405b", "--preset", "h100", *args)
    assert result.exit_code == 2, result.output[-2000:]
    assert f"{key}.example.com/note (from {origin}"[:110] in result.output  # a long origin is cut
    assert f"): {key} holds 262160 bytes of annotations" in result.output
    assert "Kubernetes takes at most 262144 per object" in result.output and "unexpected" not in result.output
    small = cli(runner, "template", "llama405b", "--preset", "h100", "--set", f"{key}.example\\.com/note=ok")
    assert small.exit_code == 0, small.output[-2000:]


# -- properties: random nulls and numbers never end in a bug ---------------------------------------------------

NUMERIC_KEYS = [p for p, sub, _ in KEYS
                if {"number", "integer"} & set(sub["type"] if isinstance(sub.get("type"), list) else [sub.get("type")])]
# YAML's own spellings (.nan, .inf) reach the values as floats through -f; JSON has none (--set-json refuses NaN).
ODD_NUMBERS = st.one_of(st.sampled_from([".nan", ".inf", "-.inf", "-1", "-0.0", "0", "1e308", "-1e308", "1e999",
                                         "99999999999999999999999", "-99999999999999999999999", "0.5"]),
                        st.floats(allow_nan=False, allow_infinity=False).map(repr),
                        st.integers(min_value=-2**70, max_value=2**70).map(str))


def test_the_numeric_keys_are_found() -> None:
    assert {"nodes", "replicas", "vllm.gpuMemoryUtilization", "vllm.maxModelLen"} <= set(NUMERIC_KEYS)


@settings(max_examples=120, derandomize=True, deadline=None, database=None)
@given(nulls=st.lists(st.sampled_from([p for p, _, _ in KEYS]), max_size=3),
       numbers=st.lists(st.tuples(st.sampled_from(NUMERIC_KEYS), ODD_NUMBERS), min_size=1, max_size=3))
def test_random_nulls_and_numbers_for_any_keys_never_end_in_a_bug(nulls: list[str],
                                                                 numbers: list[tuple[str, str]]) -> None:
    # The property: nulls for any key of the schema and NaN, infinities, negatives and huge numbers for any
    # numeric key, together, through -f (YAML) and --set: exit 0 or 2, never "unexpected" (a bug). plan resolves and
    # checks the values in-process, as every chart command does before helm.
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        nested: dict[str, Any] = {}  # the numbers as a -f file, each dotted key nested as YAML holds it
        for key, number in numbers:
            *parents, last = key.split(".")
            node = nested
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = yaml.safe_load(number)
        values = Path(tmp) / "v.yaml"
        values.write_text(yaml.safe_dump(nested))
        args = ["-f", str(values)]
        for key in nulls:
            args += ["--set", f"{key}=null"]
        for key, number in numbers[:1]:
            args += ["--set", f"{key}={number}"]
        result = CliRunner().invoke(main, ["plan", "llama405b", "--preset", "h100", *args],
                                    env={"HELM_BIN": "/nonexistent"})
    assert "unexpected" not in result.output and "Traceback" not in result.output, result.output
    assert result.exit_code in (0, 2), result.output


def numeric_options() -> list[tuple[tuple[str, ...], str]]:
    """Every option that takes a number, whole or not."""
    import click

    return options_of((click.types.IntParamType, click.types.FloatParamType))


def test_the_numeric_flags_are_found() -> None:
    assert {(("plan",), "--gpu-memory-utilization"), (("plan",), "--max-model-len"), (("provision",), "--max-pods"),
            (("install",), "--poll-interval")} <= set(numeric_options())


# Each command's arguments, so that a number that parses reaches the command's own code.
COMMAND_ARGS = {"generate": ["llama405b", "--preset", "h100"], "template": ["llama405b", "--preset", "h100"],
                "doctor": ["llama405b", "--preset", "h100"], "plan": ["llama405b", "--preset", "h100"],
                "diff": ["llama405b", "--preset", "h100"], "install": ["llama405b", "--preset", "h100"],
                "upgrade": ["llama405b", "--preset", "h100"], "verify": ["llama405b"]}


@settings(max_examples=120, derandomize=True, deadline=None, database=None)
@given(option=st.sampled_from(numeric_options()),
       number=st.one_of(st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity"]), ODD_NUMBERS.filter(
           lambda n: not n.startswith((".", "-.")))))
def test_any_number_for_any_numeric_flag_never_ends_in_a_bug(option: tuple[tuple[str, ...], str],
                                                             number: str) -> None:
    import tempfile

    path, flag = option
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--output-dir", str(Path(tmp) / "out")] if path[-1] == "generate" else []
        result = CliRunner().invoke(main, [*path, *COMMAND_ARGS.get(path[-1], []), *extra, f"{flag}={number}"],
                                    env={"HELM_BIN": "/nonexistent", "HELM_CACHE_HOME": tmp,
                                         "KUBECONFIG": str(Path(tmp) / "none")})
    assert "unexpected" not in result.output and "Traceback" not in result.output, result.output
    assert result.exit_code in (0, 1, 2), result.output


def test_an_output_dir_name_over_255_bytes_exits_2_naming_the_flag(tmp_path: Path) -> None:
    long = tmp_path / ("a" * 300) / "chart"
    done = CliRunner().invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(long)])
    assert done.exit_code == 2, done.output
    assert f"--output-dir {long}: File name too long" in done.output and "unexpected" not in done.output
    assert list(tmp_path.iterdir()) == []


def test_a_directory_at_the_package_archive_name_exits_2_naming_it(tmp_path: Path) -> None:
    args = ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "c"), "--package"]
    done = CliRunner().invoke(main, args)
    assert done.exit_code == 0, done.output
    archive = next(tmp_path.glob("*.tgz"))
    archive.unlink()
    archive.mkdir()
    (archive / "keep").write_text("mine\n")
    done = CliRunner().invoke(main, [*args, "--force"])
    assert done.exit_code == 2, done.output
    assert f"--package {archive}: is a directory" in done.output and "unexpected" not in done.output
    assert (archive / "keep").read_text() == "mine\n"


def test_helm_output_that_is_not_utf8_is_no_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A HELM_BIN that answers `version --short` as helm does, then writes bytes that are not UTF-8.
    fake = tmp_path / "helm"
    fake.write_text('#!/bin/bash\nif [ "$1" = version ]; then echo v3.17.2+gcc0b1d9; exit 0; fi\n'
                    "printf 'kind: \\xff\\xfe\\n'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("HELM_BIN", str(fake))
    monkeypatch.setenv("HELM_RDMA_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["template", "llama405b", "--preset", "h100"])
    assert "unexpected" not in result.output and "Traceback" not in result.output, result.output
    assert "kind: \ufffd\ufffd" in result.output


def test_a_named_pipe_nothing_writes_to_is_refused_at_once(tmp_path: Path) -> None:
    # open(2) of a FIFO without a writer blocks until one comes (fifo(7)): the read must not wait for it.
    fifo = tmp_path / "values.yaml"
    os.mkfifo(fifo)
    started = time.monotonic()
    result = CliRunner().invoke(main, ["plan", "llama405b", "--preset", "h100", "-f", str(fifo)])
    assert time.monotonic() - started < 20
    assert result.exit_code == 2, result.output
    assert f"{fifo}: a named pipe nothing writes to" in result.output
