"""The preflight as the chart runs it: the real entrypoint, twice (the leader's pod and a worker's), each starting
real torchrun and nccl_allreduce.py on the CPU (gloo), meeting through the leader's address as LWS publishes it.
What this proves here: the rank, rendezvous and result plumbing of the init container; not RDMA, which needs GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helm_rdma.cluster.groups import preflight_result
from helm_rdma.contract import PREFLIGHT_RESULT_PREFIX
from helm_rdma.datafiles import chart_dir

ENTRYPOINT = chart_dir() / "files" / "entrypoint.sh"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pod(role: str, index: int, port: int, bin_dir: Path, tmp: Path, *args: str,
        **env: str) -> subprocess.Popen[str]:
    logs = tmp / f"logs-{index}"
    logs.mkdir()
    full = {"PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin", "HELM_RDMA_TASK": "preflight",
            "HELM_RDMA_ROLE": role, "HELM_RDMA_WORKLOAD": "LeaderWorkerSet", "HELM_RDMA_NNODES": "2",
            "HELM_RDMA_MASTER_PORT": str(port), "HELM_RDMA_GPUS_PER_NODE": "1", "HELM_RDMA_PREFLIGHT_SECONDS": "120",
            "HELM_RDMA_RETRY_SECONDS": "0.2", "HELM_RDMA_SCRIPTS": str(ENTRYPOINT.parent),
            "HELM_RDMA_NCCL_LOG_DIR": str(logs), "LWS_LEADER_ADDRESS": "llama-0.llama.ml",
            "LWS_WORKER_INDEX": str(index), "VLLM_HOST_IP": "127.0.0.1", "POD_NAMESPACE": "ml",
            "OMP_NUM_THREADS": "1", "HELM_RDMA_TERMINATION_LOG": str(logs / "termination-log"), **env}
    return subprocess.Popen(["bash", str(ENTRYPOINT), "--backend", "gloo", "--sizes", "4K,64K", "--iters", "2",
                             "--warmup", "1", *args], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    pytest.importorskip("torch", reason="CPU PyTorch is installed only on x86-64 Python 3.11 (see pyproject.toml)")
    d = tmp_path / "bin"
    d.mkdir()
    (d / "getent").write_text('#!/bin/bash\necho "127.0.0.1  $2"\n')  # the leader's LWS address resolves to it
    (d / "getent").chmod(0o755)
    return d


def test_the_group_measures_together_and_the_leader_prints_the_result(bin_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    leader, worker = pod("leader", 0, port, bin_dir, tmp_path), pod("worker", 1, port, bin_dir, tmp_path)
    out, err = leader.communicate(timeout=180)
    w_out, w_err = worker.communicate(timeout=60)
    assert leader.returncode == 0 and worker.returncode == 0, err + w_err
    assert "preflight: group 0, node 0 of 2" in err and "preflight: group 0, node 1 of 2" in w_err
    result = preflight_result(out)  # what verify reads from the leader's `preflight` container log
    assert result is not None and result["ranks"] == 2 and result["passed"] is True
    assert PREFLIGHT_RESULT_PREFIX not in w_out  # only rank 0 reports


def test_a_failed_measurement_is_recorded_then_the_verdict_container_holds_and_fails(bin_dir: Path,
                                                                                      tmp_path: Path) -> None:
    """Under LeaderWorkerSet the preflight records a failed measurement and ends; the preflight-verdict init container
    after it holds the pod (so the failure is seen running: the alert's signal, which outlives the group's
    recreation) and fails, so that LWS recreates the group."""
    port = free_port()
    hold = {"HELM_RDMA_PREFLIGHT_HOLD_SECONDS": "1", "HELM_RDMA_VERDICT_MIN_HOLD_SECONDS": "0"}
    # gloo is no RDMA transport: --require-ib fails on every rank, as NET/Socket would
    leader = pod("leader", 0, port, bin_dir, tmp_path, "--require-ib", **hold)
    worker = pod("worker", 1, port, bin_dir, tmp_path, "--require-ib", **hold)
    out, err = leader.communicate(timeout=180)
    worker.communicate(timeout=60)
    assert leader.returncode == 0 and worker.returncode == 0, err
    assert json.loads(out.split(PREFLIGHT_RESULT_PREFIX, 1)[1].splitlines()[0])["passed"] is False
    summary = json.loads((tmp_path / "logs-0" / "termination-log").read_text())
    assert summary["verdict"] == "FAIL" and "instead of NET/IB" in summary["reason"]
    env = {"PATH": os.environ["PATH"], "HELM_RDMA_TASK": "preflight-verdict", "HELM_RDMA_ROLE": "leader",
           "HELM_RDMA_NNODES": "2", "VLLM_HOST_IP": "127.0.0.1", "HELM_RDMA_NCCL_LOG_DIR": str(tmp_path / "logs-0"),
           **hold}
    verdict = subprocess.run(["bash", str(ENTRYPOINT)], env=env, capture_output=True, text=True, timeout=60)
    assert verdict.returncode == 78
    assert "keeping this container for 1s so that its log can be read" in verdict.stderr

def test_a_node_that_finishes_its_download_late_is_waited_for_and_each_records_the_figure(bin_dir: Path,
                                                                                            tmp_path: Path) -> None:
    """The preflight runs after the download and is the group's barrier: a worker that reaches it well after the
    leader (its download finished later) is waited for up to the barrier's wait, not torchrun's default 600 s
    (torch/distributed/elastic/rendezvous/static_tcp_rendezvous.py). Each node's termination message (which the pod's
    status keeps after the container ended) holds the measured figure."""
    port = free_port()
    wait = {"HELM_RDMA_BARRIER_SECONDS": "120", "HELM_RDMA_WAIT_SECONDS": "5"}
    leader = pod("leader", 0, port, bin_dir, tmp_path, **wait)
    time.sleep(4)  # the leader sits at the barrier; the worker's download is still running
    worker = pod("worker", 1, port, bin_dir, tmp_path, **wait)
    _, err = leader.communicate(timeout=180)
    _, w_err = worker.communicate(timeout=60)
    assert leader.returncode == 0 and worker.returncode == 0, err + w_err
    assert "waiting up to 120s for every node" in err
    for index in (0, 1):
        summary = json.loads((tmp_path / f"logs-{index}" / "termination-log").read_text())
        assert summary["verdict"] == "PASS" and summary["busbw_gbps"] > 0 and summary["nodes"] == 2


def test_without_the_preflight_the_barrier_lines_the_group_up(bin_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {"HELM_RDMA_TASK": "barrier", "HELM_RDMA_BARRIER_SECONDS": "120", "HELM_RDMA_WAIT_SECONDS": "5"}
    leader = pod("leader", 0, port, bin_dir, tmp_path, **env)
    time.sleep(3)
    worker = pod("worker", 1, port, bin_dir, tmp_path, **env)
    out, err = leader.communicate(timeout=180)
    _, w_err = worker.communicate(timeout=60)
    assert leader.returncode == 0 and worker.returncode == 0, err + w_err
    assert "helm-rdma barrier: all 2 node(s) of the group have their weights" in out


def test_a_barrier_nobody_else_reaches_fails_after_its_wait(bin_dir: Path, tmp_path: Path) -> None:
    env = {"HELM_RDMA_TASK": "barrier", "HELM_RDMA_BARRIER_SECONDS": "3", "HELM_RDMA_WAIT_SECONDS": "3"}
    leader = pod("leader", 0, free_port(), bin_dir, tmp_path, **env)
    _, err = leader.communicate(timeout=300)
    assert leader.returncode != 0
    assert "waiting up to 3s for the 2 nodes of the group" in err
