"""The pods' entrypoint script, run with bash against stand-in vllm, ray and getent commands that record their calls."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from helm_rdma.datafiles import chart_dir

SCRIPT = chart_dir() / "files" / "entrypoint.sh"
SERVE_ARGS = ["meta-llama/Llama-3.1-405B-Instruct", "--tensor-parallel-size", "8", "--pipeline-parallel-size", "2"]


@pytest.fixture
def fakebin(tmp_path: Path) -> Path:
    """vllm and ray record their arguments; getent resolves after $RESOLVE_AFTER failed attempts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scripts = {
        "vllm": 'echo "vllm $*" >> "$CALLS"',
        "ray": 'echo "ray $*" >> "$CALLS"',
        "getent": ('n=$(cat "$STATE/getent" 2>/dev/null || echo 0); echo $((n + 1)) > "$STATE/getent"\n'
                   '[ "$n" -ge "${RESOLVE_AFTER:-0}" ] || exit 2\necho "${LEADER_IP:-10.0.0.7}  $2"'),
        # python3 -c counts live Ray nodes or prints Ray's version; python3 - runs a script from stdin for real.
        "python3": ('case "$1" in *.py) exec "$REAL_PYTHON" "$@" ;; esac\nif [ "$1" = "-c" ]; then case "$2" in *__version__*) echo "${RAY_VERSION:-2.53.0}"; exit ;; esac\n'
                    'n=$(cat "$STATE/alive" 2>/dev/null || echo 1); echo $((n + 1)) > "$STATE/alive"; echo "$n"\n'
                    'else body=$(cat); printf "%s" "$body" | "$REAL_PYTHON" "$@"; fi'),
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    return bin_dir


def run(fakebin: Path, env: dict[str, str], *args: str, without: tuple[str, ...] = ()) -> tuple[int, str, list[str]]:
    for name in without:
        (fakebin / name).unlink()
    state = fakebin.parent
    calls = state / "calls"
    full = {"PATH": f"{fakebin}:/usr/bin:/bin", "CALLS": str(calls), "STATE": str(state),
            "HELM_RDMA_RETRY_SECONDS": "0", "VLLM_HOST_IP": "10.0.0.5", "POD_NAMESPACE": "ml",
            "REAL_PYTHON": sys.executable, **env}
    proc = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=full, timeout=60)
    recorded = calls.read_text().splitlines() if calls.exists() else []
    return proc.returncode, proc.stderr, recorded


LWS = {"HELM_RDMA_WORKLOAD": "LeaderWorkerSet", "HELM_RDMA_NNODES": "2", "HELM_RDMA_MASTER_PORT": "29500",
       "LWS_LEADER_ADDRESS": "llama-0.llama.ml", "LWS_WORKER_INDEX": "0"}


def test_under_lws_a_missing_worker_index_fails_naming_the_lws_version(fakebin: Path) -> None:
    """LeaderWorkerSet sets LWS_WORKER_INDEX from v0.6.0 on (kubernetes-sigs/lws PR #416): without it every node
    would take node rank 0."""
    env = {k: v for k, v in LWS.items() if k != "LWS_WORKER_INDEX"}
    code, err, calls = run(fakebin, {**env, "HELM_RDMA_ROLE": "worker", "HELM_RDMA_BACKEND": "native"}, *SERVE_ARGS)
    assert code != 0
    assert "LWS_WORKER_INDEX is not set: LeaderWorkerSet v0.6.0 or later sets it; upgrade the LWS controller" in err
    assert calls == []


def test_native_leader_serves_as_rank_0_on_its_own_ip(fakebin: Path) -> None:
    code, err, calls = run(fakebin, {**LWS, "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "native",
                                     "LWS_WORKER_INDEX": "0"}, *SERVE_ARGS)
    assert code == 0, err
    assert calls == [f"vllm serve {' '.join(SERVE_ARGS)} --nnodes 2 --node-rank 0 --master-addr 10.0.0.5 --master-port 29500"]


def test_native_worker_waits_for_the_leader_then_runs_headless(fakebin: Path) -> None:
    code, err, calls = run(fakebin, {**LWS, "HELM_RDMA_ROLE": "worker", "HELM_RDMA_BACKEND": "native",
                                     "LWS_WORKER_INDEX": "1", "RESOLVE_AFTER": "3"}, *SERVE_ARGS)
    assert code == 0, err
    assert err.count("waiting for leader address llama-0.llama.ml to resolve") == 3
    assert "leader llama-0.llama.ml is 10.0.0.7" in err
    assert calls == [f"vllm serve {' '.join(SERVE_ARGS)} --nnodes 2 --node-rank 1 --master-addr 10.0.0.7 "
                     "--master-port 29500 --headless"]


def test_worker_gives_up_when_the_leader_never_resolves(fakebin: Path) -> None:
    code, err, calls = run(fakebin, {**LWS, "HELM_RDMA_ROLE": "worker", "HELM_RDMA_BACKEND": "native",
                                     "LWS_WORKER_INDEX": "1", "RESOLVE_AFTER": "100000",
                                     "HELM_RDMA_WAIT_SECONDS": "1", "HELM_RDMA_RETRY_SECONDS": "0.2"})
    assert code == 1
    assert "error: leader address llama-0.llama.ml did not resolve within 1s" in err
    assert calls == []


@pytest.mark.parametrize(("pod", "rank", "leader"), [
    ("llama-vllm-rdma-worker-0", 1, "llama-vllm-rdma-leader-0"),
    ("llama-vllm-rdma-worker-2", 3, "llama-vllm-rdma-leader-0"),
    ("llama-vllm-rdma-worker-3", 1, "llama-vllm-rdma-leader-1"),
])
def test_statefulset_worker_rank_and_leader_come_from_the_pod_name(fakebin: Path, pod: str, rank: int,
                                                                    leader: str) -> None:
    env = {"HELM_RDMA_WORKLOAD": "StatefulSet", "HELM_RDMA_NNODES": "4", "HELM_RDMA_MASTER_PORT": "29500",
           "HELM_RDMA_ROLE": "worker", "HELM_RDMA_BACKEND": "native", "POD_NAME": pod,
           "HELM_RDMA_LEADER_PREFIX": "llama-vllm-rdma-leader", "HOSTNAME": "gpu-node-17"}
    code, err, calls = run(fakebin, env, "m")
    assert code == 0, err
    assert f"leader {leader}.llama-vllm-rdma-leader.ml.svc is 10.0.0.7" in err
    assert calls == [f"vllm serve m --nnodes 4 --node-rank {rank} --master-addr 10.0.0.7 --master-port 29500 --headless"]


def test_single_node_group_is_plain_vllm_serve(fakebin: Path) -> None:
    code, err, calls = run(fakebin, {**LWS, "HELM_RDMA_NNODES": "1", "HELM_RDMA_ROLE": "leader",
                                     "HELM_RDMA_BACKEND": "native"}, "m", "--port", "8000")
    assert code == 0, err
    assert calls == ["vllm serve m --port 8000"]


def test_ray_backend_without_ray_explains_in_one_line_and_fails(fakebin: Path) -> None:
    code, err, calls = run(fakebin, {**LWS, "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "ray"}, "m",
                           without=("ray",))
    assert code == 1
    errors = [line for line in err.splitlines() if "error" in line]
    assert errors == [
        "helm-rdma: error: this image has no 'ray' command, which distributed.backend=ray needs; use an image that "
        "ships Ray (stock vllm/vllm-openai up to v0.17.1) or set distributed.backend=native"]
    assert calls == []


RAY = {"HELM_RDMA_RAY_PORT": "6379", "HELM_RDMA_RAY_DASHBOARD_PORT": "8265", "HELM_RDMA_RAY_CLIENT_PORT": "10001"}


@pytest.mark.parametrize(("version", "starts"), [("2.51.1", False), ("2.52.0", True), ("2.60.0", True)])
def test_ray_token_authentication_needs_ray_2_52(fakebin: Path, version: str, starts: bool) -> None:
    env = {**LWS, **RAY, "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "ray", "RAY_AUTH_MODE": "token",
           "RAY_VERSION": version}
    code, err, calls = run(fakebin, env, "m")
    if starts:
        assert code == 0, err
        assert calls[0].startswith("ray start --head")
    else:
        assert code == 1 and calls == []
        assert f"this image's Ray ({version}) predates token authentication (Ray 2.52.0)" in err


def test_ray_leader_starts_the_head_waits_for_every_node_then_serves(fakebin: Path) -> None:
    env = {**LWS, **RAY, "HELM_RDMA_NNODES": "3", "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "ray"}
    code, err, calls = run(fakebin, env, "m")
    assert code == 0, err
    assert "waiting for Ray nodes: 1 of 3 joined" in err and "waiting for Ray nodes: 2 of 3 joined" in err
    assert calls == [
        # the dashboard on the node's loopback only: under hostNetwork 0.0.0.0 is the node's VCN address
        "ray start --head --node-ip-address=10.0.0.5 --port=6379 --dashboard-host=127.0.0.1 --dashboard-port=8265 "
        "--ray-client-server-port=10001",
        "vllm serve m --distributed-executor-backend ray",
    ]


def test_ray_leader_fails_when_nodes_do_not_join_in_time(fakebin: Path) -> None:
    env = {**LWS, **RAY, "HELM_RDMA_NNODES": "50", "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "ray",
           "HELM_RDMA_RAY_JOIN_TIMEOUT": "1", "HELM_RDMA_RETRY_SECONDS": "0.2"}
    code, err, calls = run(fakebin, env, "m")
    assert code == 1
    assert "of 50 nodes joined the Ray cluster within 1s" in err
    assert not any(c.startswith("vllm") for c in calls)


@pytest.fixture
def ray_head() -> Iterator[int]:
    """A TCP listener standing in for the Ray head's GCS port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                conn.close()
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    server.close()


def test_ray_worker_waits_for_the_head_port_then_joins(fakebin: Path, ray_head: int) -> None:
    env = {**LWS, **RAY, "HELM_RDMA_RAY_PORT": str(ray_head), "HELM_RDMA_ROLE": "worker",
           "HELM_RDMA_BACKEND": "ray", "LEADER_IP": "127.0.0.1"}
    code, err, calls = run(fakebin, env, "m")
    assert code == 0, err
    assert calls == [f"ray start --address=127.0.0.1:{ray_head} --node-ip-address=10.0.0.5 --block"]


def test_ray_worker_gives_up_when_the_head_never_answers(fakebin: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**LWS, **RAY, "HELM_RDMA_RAY_PORT": str(port), "HELM_RDMA_ROLE": "worker", "HELM_RDMA_BACKEND": "ray",
           "LEADER_IP": "127.0.0.1", "HELM_RDMA_WAIT_SECONDS": "1", "HELM_RDMA_RETRY_SECONDS": "0.2"}
    code, err, calls = run(fakebin, env, "m")
    assert code == 1
    assert f"the Ray head at 127.0.0.1:{port} did not answer within 1s" in err
    assert calls == []


def test_statefulset_serve_measures_the_fabric_before_vllm(fakebin: Path) -> None:
    """In StatefulSet mode the preflight runs in the serving container each time the group forms (init containers do
    not run again when a container restarts: kubernetes.io/docs/concepts/workloads/pods/init-containers)."""
    (fakebin / "torchrun").write_text('#!/bin/bash\necho "torchrun $*" >> "$CALLS"\n')
    (fakebin / "torchrun").chmod(0o755)
    env = {"HELM_RDMA_WORKLOAD": "StatefulSet", "HELM_RDMA_NNODES": "2", "HELM_RDMA_MASTER_PORT": "29500",
           "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "native", "POD_NAME": "llama-vllm-rdma-leader-0",
           "HELM_RDMA_LEADER_PREFIX": "llama-vllm-rdma-leader", "HELM_RDMA_GPUS_PER_NODE": "8",
           "HELM_RDMA_PREFLIGHT_ARGS": "--sizes 1M,8G --threshold-gbps 440 --require-ib",
           "HELM_RDMA_BARRIER_SECONDS": "2280", "HELM_RDMA_TERMINATION_LOG": str(fakebin.parent / "termination"),
           "HELM_RDMA_NCCL_LOG_DIR": str(fakebin.parent)}
    code, err, calls = run(fakebin, env, "m")
    assert code == 0, err
    # torchrun's rendezvous is the group's barrier: it waits for the slowest node's download (distributed.barrierMinutes)
    assert calls[0].startswith("torchrun --nnodes 2 --nproc-per-node 8 --node-rank 0 --master-addr 10.0.0.5 "
                               "--master-port 29500 --rdzv-conf timeout=2280 ")
    assert calls[0].endswith(f"nccl_allreduce.py --result-file {fakebin.parent}/preflight-result.json --summary-file "
                             f"{fakebin.parent}/termination --sizes 1M,8G --threshold-gbps 440 --require-ib")
    assert calls[1].startswith("vllm serve m --nnodes 2 --node-rank 0")


def test_a_failed_statefulset_preflight_never_starts_vllm(fakebin: Path) -> None:
    (fakebin / "torchrun").write_text('#!/bin/bash\necho "torchrun" >> "$CALLS"; exit 1\n')
    (fakebin / "torchrun").chmod(0o755)
    env = {"HELM_RDMA_WORKLOAD": "StatefulSet", "HELM_RDMA_NNODES": "2", "HELM_RDMA_MASTER_PORT": "29500",
           "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "native", "POD_NAME": "llama-vllm-rdma-leader-0",
           "HELM_RDMA_LEADER_PREFIX": "llama-vllm-rdma-leader", "HELM_RDMA_GPUS_PER_NODE": "8",
           "HELM_RDMA_PREFLIGHT_ARGS": "--sizes 1M", "HELM_RDMA_PREFLIGHT_HOLD_SECONDS": "1"}
    code, err, calls = run(fakebin, env, "m")
    assert code == 1 and calls == ["torchrun"]
    assert "keeping this container for 1s so that its log can be read" in err


STS_LEADER = {"HELM_RDMA_WORKLOAD": "StatefulSet", "HELM_RDMA_NNODES": "2", "HELM_RDMA_MASTER_PORT": "29500",
              "HELM_RDMA_ROLE": "leader", "HELM_RDMA_BACKEND": "native", "POD_NAME": "llama-vllm-rdma-leader-0",
              "HELM_RDMA_LEADER_PREFIX": "llama-vllm-rdma-leader", "HELM_RDMA_GPUS_PER_NODE": "8"}


def torchrun(fakebin: Path, body: str) -> None:
    (fakebin / "torchrun").write_text(f'#!/bin/bash\necho "torchrun $*" >> "$CALLS"\n{body}\n')
    (fakebin / "torchrun").chmod(0o755)


def test_statefulset_serve_without_the_preflight_meets_its_group_before_vllm(fakebin: Path) -> None:
    """With the preflight off, the group's barrier (one CPU process per node, no GPU) still lines the nodes up after
    their downloads: vLLM gives its peers 600 s by default (vllm/config/parallel.py, distributed_timeout_seconds)."""
    torchrun(fakebin, "")
    code, err, calls = run(fakebin, {**STS_LEADER, "HELM_RDMA_BARRIER": "1", "HELM_RDMA_BARRIER_SECONDS": "2280"}, "m")
    assert code == 0, err
    assert calls[0].startswith("torchrun --nnodes 2 --nproc-per-node 1 --node-rank 0 --master-addr 10.0.0.5 "
                               "--master-port 29500 --rdzv-conf timeout=2280 ")
    assert calls[0].endswith("nccl_allreduce.py --barrier-only")
    assert calls[1].startswith("vllm serve m --nnodes 2 --node-rank 0")


def test_a_statefulset_group_that_misses_its_barrier_never_starts_vllm(fakebin: Path) -> None:
    torchrun(fakebin, "exit 124")  # as `timeout` ends it
    code, err, calls = run(fakebin, {**STS_LEADER, "HELM_RDMA_BARRIER": "1", "HELM_RDMA_BARRIER_SECONDS": "60",
                                     "HELM_RDMA_WAIT_SECONDS": "5"}, "m")
    assert code == 124 and len(calls) == 1
    assert "not every node of the group arrived within 60s (distributed.barrierMinutes)" in err


def measured(fakebin: Path, passed: bool) -> str:
    """A torchrun that writes the preflight's result file as nccl_allreduce.py does, and exits as it would."""
    return (f'echo \'{{"passed": {"true" if passed else "false"}, "busbw_gbps": 401.5}}\' > '
            f'"$HELM_RDMA_NCCL_LOG_DIR/preflight-result.json"; exit {0 if passed else 1}')


def test_a_statefulset_fabric_that_fails_its_measurement_holds_then_exits_78(fakebin: Path) -> None:
    """78 is what the VllmRdmaPreflightFailed alert reads under StatefulSets (kube-state-metrics
    kube_pod_container_status_last_terminated_exitcode): the pod, and so its last exit code, outlives the restart."""
    torchrun(fakebin, measured(fakebin, passed=False))
    env = {**STS_LEADER, "HELM_RDMA_PREFLIGHT_ARGS": "--sizes 1M", "HELM_RDMA_NCCL_LOG_DIR": str(fakebin.parent),
           "HELM_RDMA_PREFLIGHT_HOLD_SECONDS": "1", "HELM_RDMA_VERDICT_MIN_HOLD_SECONDS": "0"}
    code, err, calls = run(fakebin, env, "m")
    assert code == 78 and len(calls) == 1, err
    assert '"busbw_gbps": 401.5' in err and "keeping this container for 1s" in err


def test_under_lws_a_measured_failure_passes_to_the_verdict_container_which_holds_and_fails(fakebin: Path) -> None:
    torchrun(fakebin, measured(fakebin, passed=False))
    env = {**LWS, "HELM_RDMA_ROLE": "leader", "HELM_RDMA_GPUS_PER_NODE": "8",
           "HELM_RDMA_NCCL_LOG_DIR": str(fakebin.parent), "HELM_RDMA_PREFLIGHT_HOLD_SECONDS": "1",
           "HELM_RDMA_VERDICT_MIN_HOLD_SECONDS": "0", "HELM_RDMA_TERMINATION_LOG": str(fakebin.parent / "t")}
    code, err, _ = run(fakebin, {**env, "HELM_RDMA_TASK": "preflight"}, "--sizes", "1M")
    assert code == 0, err  # measured, recorded: the next init container judges
    code, err, _ = run(fakebin, {**env, "HELM_RDMA_TASK": "preflight-verdict"})
    assert code == 78 and "the fabric failed its measurement" in err and "keeping this container for 1s" in err
    torchrun(fakebin, measured(fakebin, passed=True))
    assert run(fakebin, {**env, "HELM_RDMA_TASK": "preflight"}, "--sizes", "1M")[0] == 0
    assert run(fakebin, {**env, "HELM_RDMA_TASK": "preflight-verdict"})[0] == 0


def test_a_preflight_that_cannot_complete_still_fails_in_its_own_container(fakebin: Path) -> None:
    torchrun(fakebin, "exit 1")  # no result: a crash, not a measurement
    env = {**LWS, "HELM_RDMA_ROLE": "leader", "HELM_RDMA_GPUS_PER_NODE": "8", "HELM_RDMA_TASK": "preflight",
           "HELM_RDMA_NCCL_LOG_DIR": str(fakebin.parent), "HELM_RDMA_TERMINATION_LOG": str(fakebin.parent / "t")}
    code, _, _ = run(fakebin, env, "--sizes", "1M")
    assert code == 1


def test_script_is_valid_bash() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    assert os.access(SCRIPT, os.R_OK)
