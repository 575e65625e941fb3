"""`helm rdma diagnose`: the log checks on saved logs of every scenario (tests/fixtures/diagnose, formats cited in its
README), the command through click, and the cluster path with the real kubernetes client talking to kmock."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.errors import LogUnavailable
from helm_rdma.logs.check import (
    CHECKS,
    Diagnosis,
    Expectations,
    Finding,
    diagnose_logs,
    interface_ok,
    ranks_text,
)
from helm_rdma.logs.sources import (
    MAX_LINE,
    LogSource,
    chunk_lines,
    directory_sources,
    file_lines,
    parse_log_name,
)
from helm_rdma.sizing.presets import load_preset, preset_names

from .helm_stand_in import stand_in_helm
from .kmock_cluster import Cluster

FIXTURES = Path(__file__).parent / "fixtures" / "diagnose"
LEADER, WORKER = "llama405b-vllm-rdma-0", "llama405b-vllm-rdma-0-1"
PREFLIGHT = "llama405b-vllm-rdma-preflight-0-x7k2p"
H100 = Expectations(interface="eth0", gpu_direct_rdma=True, threshold_gbps=440)


def scenario(name: str, expect: Expectations = H100) -> Diagnosis:
    return diagnose_logs(directory_sources(FIXTURES / name), expect=expect)


def diagnose_texts(logs: dict[str, str], *, expect: Expectations | None = None) -> Diagnosis:
    """``diagnose_logs`` of ``{pod name: log text}``, one current log per pod."""
    return diagnose_logs([LogSource(pod=pod, container=None, previous=False, lines=text.splitlines)
                          for pod, text in logs.items()], expect=expect)


def only(diagnosis: Diagnosis, check: str) -> Finding:
    found = [f for f in diagnosis.findings if f.check == check]
    assert len(found) == 1, [f.line() for f in diagnosis.findings]
    return found[0]


def logs_text(name: str) -> str:
    return "".join(p.read_text() for p in (FIXTURES / name).glob("*.log"))


# --- every scenario reports its cause -----------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "check", "severity", "pods"), [
    ("no-rdma-device", "rdma-device", "error", [LEADER, WORKER]),
    ("no-rdma-device", "transport-socket", "error", [LEADER, WORKER]),
    ("socket-transport", "transport-socket", "error", [LEADER, WORKER]),
    ("no-gdrdma", "no-gdrdma", "warning", [LEADER, WORKER]),
    ("bootstrap-loopback", "bootstrap-interface", "error", [WORKER]),
    ("bootstrap-loopback", "init-pending", "warning", [LEADER, WORKER]),
    ("bootstrap-bridge", "bootstrap-interface", "error", [WORKER]),
    ("bootstrap-other-interface", "bootstrap-interface", "warning", [LEADER, WORKER]),
    ("nccl-version-mismatch", "nccl-version", "error", [LEADER, WORKER]),
    ("vllm-version-mismatch", "vllm-version", "error", [LEADER, WORKER]),
    ("ray-version-mismatch", "ray-version", "error", [WORKER]),
    ("init-incomplete", "init-incomplete", "error", [WORKER]),
    ("nccl-warn", "nccl-warn", "warning", [LEADER, WORKER]),
    ("nccl-timeout", "nccl-timeout", "error", [WORKER]),
    ("rendezvous-timeout", "rendezvous-timeout", "error", [WORKER]),
    ("vllm-startup-timeout", "vllm-startup-timeout", "error", [LEADER]),
    ("gpu-oom", "gpu-oom", "error", [f"{WORKER} (previous)"]),
    ("gpu-oom", "worker-failed", "error", [f"{WORKER} (previous)"]),
    ("worker-failed", "worker-failed", "error", [LEADER]),
    ("model-gated", "model-gated", "error", [f"{LEADER}/download-model", f"{WORKER}/download-model"]),
    ("model-not-found", "model-not-found", "error", [LEADER]),
    ("hub-auth", "hub-auth", "error", [LEADER]),
    ("preflight-low-bandwidth", "preflight-bandwidth", "error", [PREFLIGHT]),
])
def test_each_scenario_names_its_cause_pods_evidence_and_fix(name: str, check: str, severity: str,
                                                              pods: list[str]) -> None:
    finding = only(scenario(name), check)
    assert finding.severity == severity
    assert list(finding.pods) == pods
    assert finding.cause and finding.fix
    assert finding.evidence.removesuffix("...") in logs_text(name), "the evidence is a line of the logs, verbatim"


def test_the_clean_group_has_no_error_and_no_warning() -> None:
    diagnosis = scenario("clean")
    assert diagnosis.passed
    assert [f.severity for f in diagnosis.findings] == ["info"] * len(diagnosis.findings)
    assert {f.check for f in diagnosis.findings} == {"transport", "nccl-version", "vllm-version", "preflight"}
    assert "with GPUDirect RDMA on every channel" in only(diagnosis, "transport").cause
    assert diagnosis.summary.logs == (LEADER, WORKER, PREFLIGHT)


def test_errors_come_first_then_warnings_then_notes() -> None:
    severities = [f.severity for f in scenario("bootstrap-loopback").findings]
    assert severities == sorted(severities, key=["error", "warning", "info"].index)
    assert severities[0] == "error" and "info" in severities


def test_incomplete_init_names_the_ranks_and_their_pod() -> None:
    finding = only(scenario("init-incomplete"), "init-incomplete")
    assert "rank(s) 9, 11, 13, 15 started init and never logged Init COMPLETE while 12 did" in finding.cause
    assert f"rank 11 in {WORKER}" in finding.cause
    assert "rank 9 " in finding.evidence and finding.evidence.endswith("- Init START")


def test_version_findings_say_which_pod_runs_what() -> None:
    nccl = only(scenario("nccl-version-mismatch"), "nccl-version")
    assert nccl.cause == f"NCCL versions differ between pods: 2.27.7 on {LEADER}; 2.26.2 on {WORKER}"
    assert "NCCL version 2.26.2+cuda12.2" in nccl.evidence
    vllm = only(scenario("vllm-version-mismatch"), "vllm-version")
    assert "0.33.0 on " + LEADER in vllm.cause and "0.32.1 on " + WORKER in vllm.cause
    assert "Launching vLLM (v0.32.1) headless" in vllm.evidence
    ray = only(scenario("ray-version-mismatch"), "ray-version")
    assert "the Ray cluster runs Ray 2.49.1, this pod Ray 2.48.0" in ray.cause


def test_preflight_bandwidth_is_judged_against_the_presets_floor() -> None:
    finding = only(scenario("preflight-low-bandwidth"), "preflight-bandwidth")
    assert "212.4 GB/s all_reduce bus bandwidth over IB without GPUDirect RDMA" in finding.cause
    assert "below the 440 GB/s floor" in finding.cause
    passed = only(scenario("clean", Expectations(threshold_gbps=500)), "preflight-bandwidth")
    assert "below the 500 GB/s floor" in passed.cause


def test_the_preflight_result_may_be_absent() -> None:
    text = (FIXTURES / "clean" / f"{LEADER}.log").read_text()
    diagnosis = diagnose_texts({LEADER: text}, expect=H100)
    assert not [f for f in diagnosis.findings if f.check.startswith("preflight")]
    assert diagnosis.passed


def test_the_preflight_line_is_read_and_a_broken_one_is_a_warning() -> None:
    line = json.dumps({"passed": True, "busbw_gbps": 451.0, "threshold_gbps": 440, "transport": "IB", "gdrdma": True,
                       "nccl_version": "2.23.4", "ranks": 16})
    assert "451.0 GB/s" in only(diagnose_texts({"pf": f"helm-rdma preflight result: {line}"}), "preflight").cause
    broken = diagnose_texts({"pf": "helm-rdma preflight result: {not json"})
    assert only(broken, "preflight-unreadable").severity == "warning"


def test_expectations_decide_interface_and_gpudirect_findings() -> None:
    assert not [f for f in scenario("bootstrap-other-interface", Expectations()).findings if f.severity != "info"]
    assert not [f for f in scenario("bootstrap-other-interface", Expectations(interface="=ens300f0")).findings
                if f.check == "bootstrap-interface"]
    assert not [f for f in scenario("no-gdrdma", Expectations(gpu_direct_rdma=False)).findings
                if f.check == "no-gdrdma"]


@pytest.mark.parametrize(("name", "configured", "ok"), [
    ("eth0", "eth0", True), ("eth0.100", "eth0", True), ("eth0.100", "=eth0", False), ("ens3", "eth,ens", True),
    ("docker0", "^docker,lo", False), ("eth0", "^docker,lo", True), ("bond0", "eth0", False),
])
def test_interfaces_are_matched_as_nccl_socket_ifname_reads_them(name: str, configured: str, ok: bool) -> None:
    assert interface_ok(name, configured) is ok


# --- formats ------------------------------------------------------------------------------------------------------

def test_a_bootstrap_on_an_oob_network_device_is_not_an_interface() -> None:
    # NCCL 2.26+ with NCCL_OOB_NET_ENABLE=1 logs the net device and port (src/bootstrap.cc), no socket address.
    diagnosis = diagnose_texts({"p": "h:1:1 [0] NCCL INFO Bootstrap: Using mlx5_0:1"}, expect=H100)
    assert not [f for f in diagnosis.findings if f.check == "bootstrap-interface"]


def test_rccl_versions_and_builds_are_compared() -> None:
    # ROCm/rccl src/init.cc: "RCCL version : 2.26.6-HEAD:f224e2c"
    same = diagnose_texts({"a": "h:1:1 [0] NCCL INFO RCCL version : 2.26.6-HEAD:f224e2c",
                           "b": "h:2:2 [0] NCCL INFO RCCL version : 2.26.6-HEAD:0d2c4fd"})
    finding = only(same, "nccl-version")
    assert finding.severity == "warning" and "the same RCCL 2.26.6, different builds" in finding.cause
    assert same.passed


def test_the_current_instance_decides_a_pods_version() -> None:
    sources = [LogSource("p", "vllm", True, lambda: ["NCCL version 2.26.2+cuda12.2"]),
               LogSource("p", "vllm", False, lambda: ["NCCL version 2.27.7+cuda12.9"]),
               LogSource("q", "vllm", False, lambda: ["NCCL version 2.27.7+cuda12.9"])]
    finding = only(diagnose_logs(sources), "nccl-version")
    assert finding.severity == "info" and "2.27.7+cuda12.9" in finding.cause


def test_ranks_absent_from_every_log_are_a_note_not_an_error() -> None:
    text = (FIXTURES / "clean" / f"{LEADER}.log").read_text()
    diagnosis = diagnose_texts({LEADER: text})
    assert diagnosis.passed
    assert "rank(s) 8-15" in only(diagnosis, "init-unseen").cause


def test_nccl_silence_is_a_note() -> None:
    finding = only(diagnose_texts({"p": "INFO just vllm\n"}), "nccl-silent")
    assert finding.severity == "info" and "nccl.debug=INFO" in finding.fix


def test_kubectl_prefixed_lines_count_for_the_pod_they_name(tmp_path: Path) -> None:
    lines = [f"[pod/{pod}/vllm] {line}"
             for pod in (LEADER, WORKER)
             for line in (FIXTURES / "socket-transport" / f"{pod}.log").read_text().splitlines()]
    (tmp_path / "all.log").write_text("\n".join(lines) + "\n")
    finding = only(diagnose_logs(directory_sources(tmp_path)), "transport-socket")
    assert finding.pods == (f"{LEADER}/vllm", f"{WORKER}/vllm")


@pytest.mark.parametrize(("name", "parsed"), [
    ("llama405b-vllm-rdma-0-1.log", ("llama405b-vllm-rdma-0-1", None, False)),
    ("llama405b-vllm-rdma-0.previous.log", ("llama405b-vllm-rdma-0", None, True)),
    ("llama405b-vllm-rdma-0.download-model.log", ("llama405b-vllm-rdma-0", "download-model", False)),
    ("llama405b-vllm-rdma-0.vllm.previous.log", ("llama405b-vllm-rdma-0", "vllm", True)),
])
def test_saved_log_names(name: str, parsed: tuple[str, str | None, bool]) -> None:
    assert parse_log_name(name) == parsed


def test_ranks_text() -> None:
    assert ranks_text([15, 3, 5, 6, 7, 9]) == "3, 5-7, 9, 15"


def test_every_check_has_a_place_in_the_order() -> None:
    assert len(set(CHECKS)) == len(CHECKS)


@pytest.mark.parametrize("preset", preset_names())
def test_every_preset_states_gpudirect_rdma_support(preset: str) -> None:
    # All OCI shapes here support GPUDirect RDMA; the preset says so explicitly (not by the schema's default).
    assert load_preset(preset).document()["rdma"]["gpuDirectRdma"] is True


# --- streaming: memory does not grow with the log -----------------------------------------------------------------

def test_a_long_log_is_read_in_bounded_memory(tmp_path: Path) -> None:
    block = (FIXTURES / "clean" / f"{LEADER}.log").read_bytes()
    with (tmp_path / "big.log").open("wb") as out:
        for _ in range(8 * 1024 * 1024 // len(block) + 1):  # 8 MB of NCCL-dense lines
            out.write(block)
        out.write(b"x" * (3 * MAX_LINE + 5))  # and one line with no end
    tracemalloc.start()
    try:
        diagnosis = diagnose_logs(directory_sources(tmp_path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert diagnosis.summary.lines > 60_000
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes for an 8 MB log"


def test_lines_are_cut_at_max_line(tmp_path: Path) -> None:
    (tmp_path / "p.log").write_bytes(b"a" * (MAX_LINE + 10) + b"\nb\n")
    assert [len(p) for p in file_lines(tmp_path / "p.log")] == [MAX_LINE, 10, 1]


def test_chunked_bodies_split_into_lines_across_chunks_and_characters() -> None:
    body = "héllo\nwörld\r\nlast".encode()
    chunks = [body[i:i + 3] for i in range(0, len(body), 3)]
    assert list(chunk_lines(chunks)) == ["héllo", "wörld", "last"]
    assert [len(p) for p in chunk_lines([b"z" * (2 * MAX_LINE + 1)])] == [MAX_LINE, MAX_LINE, 1]


def test_a_log_that_cannot_be_read_yet_is_a_warning() -> None:
    def waiting() -> Iterator[str]:
        raise LogUnavailable('container "vllm" in pod "p" is waiting to start: ContainerCreating')
        yield ""  # pragma: no cover

    diagnosis = diagnose_logs([LogSource("p", "vllm", False, waiting)])
    finding = only(diagnosis, "log-unavailable")
    assert finding.severity == "warning" and "waiting to start: ContainerCreating" in finding.cause
    assert diagnosis.passed


# --- the command --------------------------------------------------------------------------------------------------

def test_cli_on_the_clean_group_exits_0_with_a_summary() -> None:
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "--logs", str(FIXTURES / "clean"), "-p", "h100"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(line.startswith("info ") for line in lines[:-1])
    assert lines[-1] == (f"0 error(s), 0 warning(s), 4 note(s) in 3 log(s), 228 line(s) read "
                         f"(directory {FIXTURES / 'clean'})")


def test_cli_exits_1_on_an_error_and_prints_one_line_per_finding_errors_first() -> None:
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "--logs", str(FIXTURES / "no-rdma-device")])
    assert result.exit_code == 1
    first, second = result.output.splitlines()[:2]
    assert first.startswith(f"error   rdma-device [{LEADER}, {WORKER}]: NCCL found no usable RDMA device")
    assert 'evidence: "inst-8kq2p-gpu-0:401:401 [0] NCCL INFO NET/IB : No device found."' in first
    assert "fix: give the pod the RDMA devices: rdma.privileged=true" in first
    assert second.startswith("error   transport-socket")


def test_cli_warnings_alone_exit_0() -> None:
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "--logs", str(FIXTURES / "no-gdrdma")])
    assert result.exit_code == 0
    assert result.output.startswith("warning no-gdrdma")


def test_cli_interface_flag_sets_the_expected_interface() -> None:
    logs = str(FIXTURES / "bootstrap-other-interface")
    assert "bootstrap-interface" in CliRunner().invoke(main, ["diagnose", "r", "--logs", logs]).output
    result = CliRunner().invoke(main, ["diagnose", "r", "--logs", logs, "--interface", "ens300f0"])
    assert "bootstrap-interface" not in result.output


def test_cli_json_has_the_documented_shape() -> None:
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "--logs", str(FIXTURES / "init-incomplete"),
                                       "-o", "json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert set(data) == {"findings", "summary"}
    assert set(data["findings"][0]) == {"severity", "check", "pods", "cause", "evidence", "fix"}
    assert data["findings"][0]["check"] == "init-incomplete" and data["findings"][0]["pods"] == [WORKER]
    assert data["summary"] == {"errors": 1, "warnings": 0, "info": 3, "logs": [LEADER, WORKER], "lines": 197,
                               "passed": False}


@pytest.mark.parametrize(("make", "problem"), [
    (lambda d: d / "missing", "no such directory"),
    (lambda d: d, "holds no .log files"),
])
def test_cli_bad_logs_directory_exits_2_naming_it_and_the_fix(tmp_path: Path, make: Any, problem: str) -> None:
    (tmp_path / "notes.txt").write_text("not a log")
    path = make(tmp_path)
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "--logs", str(path)])
    assert result.exit_code == 2
    assert f"--logs {path}: {problem}; save one file per pod, named after it" in result.output


def test_cli_unknown_preset_exits_2() -> None:
    result = CliRunner().invoke(main, ["diagnose", "r", "--logs", str(FIXTURES / "clean"), "-p", "h1000"])
    assert result.exit_code == 2
    assert 'unknown preset "h1000"' in result.output


# --- the cluster, through the real kubernetes client and kmock ----------------------------------------------------

FAKE_HELM = """#!/bin/sh
if [ "$1" = get ] && [ -f "{values}" ]; then cat "{values}"; exit 0; fi
echo "Error: release: not found" >&2
exit 1
"""


def pod(name: str, *, release: str = "llama405b", component: str = "worker") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ml", "labels": {"app.kubernetes.io/instance": release,
                                                                  "app.kubernetes.io/component": component}},
        "spec": {"initContainers": [{"name": "download-model", "image": "i"}],
                 "containers": [{"name": "vllm", "image": "i"}]},
    }


PODS = [pod(LEADER, component="leader"), pod(WORKER), pod("other-0", release="other")]


def fixture_bytes(name: str, file: str) -> bytes:
    return (FIXTURES / name / file).read_bytes()


@pytest.fixture
def helm_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in helm whose `get values` prints the file this fixture returns (absent: no release)."""
    values = tmp_path / "values.json"
    stand_in_helm(tmp_path, monkeypatch, FAKE_HELM.format(values=values))
    return values


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def start(logs: dict[tuple[str, str, bool], bytes | int], pods: list[dict[str, Any]] = PODS) -> Cluster:
        running = Cluster(pods, tmp_path / "kubeconfig", logs=logs)
        monkeypatch.setenv("KUBECONFIG", str(running.kubeconfig))
        started.append(running.__enter__())
        return running

    started: list[Cluster] = []
    yield start
    for running in started:
        running.__exit__(None, None, None)


def test_cluster_reads_every_container_of_every_pod_of_the_release(cluster: Any, helm_values: Path) -> None:
    helm_values.write_text(json.dumps({"preset": {"name": "h100"}, "network": {"interface": "eth0"},
                                       "verify": {"preflight": {"thresholdGBps": 440}}}))
    cluster({
        (LEADER, "download-model", False): b"helm-rdma: model meta-llama/Llama-3.1-405B-Instruct already in /models\n",
        (LEADER, "vllm", False): fixture_bytes("clean", f"{LEADER}.log"),
        (WORKER, "download-model", False): b"",
        (WORKER, "vllm", False): fixture_bytes("clean", f"{WORKER}.log"),
        ("other-0", "vllm", False): fixture_bytes("no-rdma-device", f"{LEADER}.log"),
    })
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "-n", "ml", "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["summary"]["logs"] == [f"{LEADER}/download-model (previous)", f"{LEADER}/download-model",
                                       f"{LEADER}/vllm (previous)", f"{LEADER}/vllm",
                                       f"{WORKER}/download-model (previous)", f"{WORKER}/download-model",
                                       f"{WORKER}/vllm (previous)", f"{WORKER}/vllm"]
    assert {f["severity"] for f in data["findings"]} == {"info"}
    assert data["summary"]["lines"] == 1 + len(fixture_bytes("clean", f"{LEADER}.log").splitlines()) + len(
        fixture_bytes("clean", f"{WORKER}.log").splitlines())


def test_cluster_previous_instances_and_containers_not_started(cluster: Any, helm_values: Path) -> None:
    cluster({
        (LEADER, "vllm", False): fixture_bytes("gpu-oom", f"{LEADER}.log"),
        (WORKER, "vllm", True): fixture_bytes("gpu-oom", f"{WORKER}.previous.log"),
        (LEADER, "download-model", False): b"", (WORKER, "download-model", False): b"",
        # the worker's current vllm container has not started: the API server answers 400
    })
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "-n", "ml"])
    assert result.exit_code == 1, result.output
    assert result.stdout.startswith(f"error   gpu-oom [{WORKER}/vllm (previous)]: a GPU ran out of memory")
    assert (f'warning log-unavailable [{WORKER}/vllm]: no log to read: container "vllm" in pod "{WORKER}" is '
            "waiting to start: ContainerCreating") in result.output
    assert len([line for line in result.stdout.splitlines() if line.startswith("warning")]) == 1
    assert "no values of a helm release llama405b here" in result.stderr  # helm knows no such release: defaults


def test_cluster_values_set_the_expected_interface(cluster: Any, helm_values: Path) -> None:
    helm_values.write_text(json.dumps({"network": {"interface": "ens300f0"}}))
    logs: dict[tuple[str, str, bool], bytes | int] = {
        (p, "vllm", False): fixture_bytes("bootstrap-other-interface", f"{p}.log") for p in (LEADER, WORKER)}
    cluster(logs)
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "-n", "ml"])
    assert result.exit_code == 0, result.output
    assert "bootstrap-interface" not in result.output
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "-n", "ml", "--interface", "eth0"])
    assert "warning bootstrap-interface" in result.output


def test_cluster_refusing_a_log_exits_1_naming_what_failed(cluster: Any, helm_values: Path) -> None:
    cluster({(LEADER, "download-model", True): 403})
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "-n", "ml"])
    assert result.exit_code == 1
    assert (f"helm-rdma: error: reading the log of {LEADER}/download-model (previous instance) in namespace ml "
            "failed: HTTP 403") in result.output


def test_cluster_without_pods_of_the_release_exits_1(cluster: Any, helm_values: Path) -> None:
    cluster({}, pods=[pod("other-0", release="other")])
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "-n", "ml"])
    assert result.exit_code == 1
    assert 'no pods of release "llama405b" in namespace ml (label app.kubernetes.io/instance=llama405b)' \
        in result.output


def test_cluster_unreachable_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, helm_values: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = CliRunner().invoke(main, ["diagnose", "llama405b", "-n", "ml"])
    assert result.exit_code == 1
    assert "helm-rdma: error: listing pods in namespace ml failed" in result.output
