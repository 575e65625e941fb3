"""The preflight's bandwidth script (charts/vllm-rdma/files/nccl_allreduce.py): its arithmetic, its reading of NCCL
logs and its verdict without GPUs, then a real run under torchrun on the CPU (gloo) that prints its result line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from helm_rdma.datafiles import chart_dir

SCRIPT = chart_dir() / "files" / "nccl_allreduce.py"

IB_GDR_LOG = """\
gpu-1:2211:2211 [0] NCCL INFO NCCL version 2.23.4+cuda12.6
gpu-1:2211:2290 [0] NCCL INFO NET/IB : Using [0]mlx5_0:1/RoCE [1]mlx5_1:1/RoCE [2]mlx5_3:1/RoCE [3]mlx5_4:1/RoCE [RO]; OOB eth0:10.0.0.5<0>
gpu-1:2211:2290 [0] NCCL INFO Using network IB
gpu-1:2211:2301 [0] NCCL INFO Channel 00/0 : 8[0] -> 0[0] [receive] via NET/IB/0/GDRDMA
gpu-1:2211:2301 [0] NCCL INFO Channel 00/0 : 0[0] -> 8[0] [send] via NET/IB/0/GDRDMA
"""
IB_LOG = IB_GDR_LOG.replace("/GDRDMA", "")
SOCKET_LOG = """\
gpu-1:2211:2211 [0] NCCL INFO NCCL version 2.23.4+cuda12.6
gpu-1:2211:2290 [0] NCCL INFO NET/IB : No device found.
gpu-1:2211:2290 [0] NCCL INFO NET/Socket : Using [0]eth0:10.0.0.5<0>
gpu-1:2211:2290 [0] NCCL INFO Using network Socket
gpu-1:2211:2301 [0] NCCL INFO Channel 00/0 : 8[0] -> 0[0] [receive] via NET/Socket/0
"""


@pytest.fixture(scope="module")
def allreduce() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nccl_allreduce", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("text", "size"), [("1M", 1 << 20), ("8G", 8 << 30), ("512K", 512 << 10), ("4096", 4096),
                                            ("16MiB", 16 << 20)])
def test_sizes_are_binary_units(allreduce: ModuleType, text: str, size: int) -> None:
    assert allreduce.parse_size(text) == size


def test_bad_size_is_refused(allreduce: ModuleType) -> None:
    with pytest.raises(ValueError, match="not a size"):
        allreduce.parse_size("8 gigs")


def test_bus_bandwidth_follows_nccl_tests(allreduce: ModuleType) -> None:
    # nccl-tests: algbw = bytes / time; all_reduce busbw = algbw * 2(n-1)/n
    algbw, busbw = allreduce.bandwidth(8 << 30, 0.036, 16)
    assert algbw == pytest.approx((8 << 30) / 0.036 / 1e9)
    assert busbw == pytest.approx(algbw * 2 * 15 / 16)
    assert allreduce.bandwidth(1000, 1e-6, 1) == (1.0, 0.0)  # one rank moves nothing over the bus


@pytest.mark.parametrize(("log", "kind", "gdr"), [(IB_GDR_LOG, "IB", True), (IB_LOG, "IB", False),
                                                  (SOCKET_LOG, "Socket", False), ("", "unknown", False)])
def test_transport_is_read_from_the_nccl_log(allreduce: ModuleType, log: str, kind: str, gdr: bool) -> None:
    found = allreduce.detect_transport(log)
    assert (found["kind"], found["gdrdma"]) == (kind, gdr)


def test_devices_and_version_are_read_from_the_log(allreduce: ModuleType) -> None:
    assert allreduce.detect_transport(IB_GDR_LOG)["devices"] == ["mlx5_0", "mlx5_1", "mlx5_3", "mlx5_4"]
    assert allreduce.nccl_version(IB_GDR_LOG) == "2.23.4+cuda12.6"


def results(busbw: float) -> list[dict]:
    return [{"bytes": 1 << 20, "busbw_gbps": 10.0}, {"bytes": 8 << 30, "busbw_gbps": busbw}]


def test_verdict_judges_the_largest_message(allreduce: ModuleType) -> None:
    assert allreduce.judge(results(452.3), threshold_gbps=440, transport="IB", require_ib=True) == (
        True, "bus bandwidth 452.3 GB/s >= 440 GB/s over IB")
    ok, reason = allreduce.judge(results(210.0), threshold_gbps=440, transport="IB", require_ib=True)
    assert not ok and "bus bandwidth 210.0 GB/s at 8589934592 bytes is below 440 GB/s" in reason


def test_verdict_fails_a_socket_fallback_even_when_fast_enough(allreduce: ModuleType) -> None:
    ok, reason = allreduce.judge(results(500.0), threshold_gbps=440, transport="Socket", require_ib=True)
    assert not ok and "NCCL used Socket instead of NET/IB" in reason
    assert allreduce.judge(results(500.0), threshold_gbps=440, transport="Socket", require_ib=False)[0]


def test_nccl_debug_file_patterns_are_expanded(allreduce: ModuleType, tmp_path: Path) -> None:
    (tmp_path / "nccl.gpu-1.11.log").write_text(IB_GDR_LOG)
    (tmp_path / "nccl.gpu-1.12.log").write_text("more")
    assert allreduce.read_nccl_logs(str(tmp_path / "nccl.%h.%p.log")) == IB_GDR_LOG + "\nmore"


def result_line(stdout: str, allreduce: ModuleType) -> dict:
    [line] = [line for line in stdout.splitlines() if line.startswith(allreduce.RESULT_PREFIX)]
    return json.loads(line[len(allreduce.RESULT_PREFIX):])


def test_torchrun_measures_prints_and_judges_on_cpu(tmp_path: Path, allreduce: ModuleType) -> None:
    pytest.importorskip("torch", reason="CPU PyTorch is installed only on x86-64 Python 3.11 (see pyproject.toml)")
    result_file = tmp_path / "result.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(SCRIPT), "--backend", "gloo",
           "--sizes", "4K,64K", "--iters", "3", "--warmup", "1", "--threshold-gbps", "0",
           "--result-file", str(result_file)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(result_file.read_text())
    assert result["ranks"] == 2 and result["backend"] == "gloo" and result["passed"] is True
    assert [r["bytes"] for r in result["results"]] == [4096, 65536]
    assert all(r["busbw_gbps"] > 0 for r in result["results"])
    assert "helm-rdma preflight: PASS" in run.stdout
    assert result_line(run.stdout, allreduce) == result  # what verify reads from the leader's log

    # The same run demanding RDMA fails on every rank, with the reason.
    failing = subprocess.run([*cmd, "--require-ib"], env=env, capture_output=True, text=True, timeout=120)
    assert failing.returncode != 0
    assert "helm-rdma preflight: FAIL" in failing.stdout and "instead of NET/IB" in failing.stdout
    assert result_line(failing.stdout, allreduce)["passed"] is False


def test_on_failure_warn_reports_and_records_a_failed_measurement_and_exits_0(tmp_path: Path,
                                                                              allreduce: ModuleType) -> None:
    """verify.preflight.onFailure=warn: a healthy but marginal fabric serves instead of restarting its group forever;
    the figure is still printed (verify reads it) and written where the pod's status keeps it (the termination
    message holds at most 4096 bytes: kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure)."""
    pytest.importorskip("torch", reason="CPU PyTorch is installed only on x86-64 Python 3.11 (see pyproject.toml)")
    summary = tmp_path / "termination-log"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(SCRIPT),
           "--backend", "gloo", "--sizes", "4K", "--iters", "2", "--warmup", "1", "--require-ib",
           "--summary-file", str(summary)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    warned = subprocess.run([*cmd, "--on-failure", "warn"], env=env, capture_output=True, text=True, timeout=120)
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "helm-rdma preflight: WARN" in warned.stdout
    assert result_line(warned.stdout, allreduce)["passed"] is False
    recorded = json.loads(summary.read_text())
    assert recorded["verdict"] == "WARN" and recorded["passed"] is False and "instead of NET/IB" in recorded["reason"]
    assert len(summary.read_bytes()) < 4096
    failed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and json.loads(summary.read_text())["verdict"] == "FAIL"
