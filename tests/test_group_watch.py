"""The group watch (charts/vllm-rdma/files/group_watch.py) that makes a StatefulSet group restart as one.

The consumer's rule it answers: vLLM's headless workers block forever when the leader goes away
(vllm-project/vllm v1/executor/multiproc_executor.py, dequeue(indefinite=True)), and StatefulSets restart pods one
by one; under hostNetwork a restarted leader keeps its IP and DNS name (FACTS.md, "vLLM multi-node"). So each worker
holds a connection to its leader's watch, and either side ends its pod's process when the other restarts.
These tests run the real script, and the real entrypoint, against a stand-in leader that restarts.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helm_rdma.datafiles import chart_dir

from .rendering import render, serving_pod_specs

WATCH = chart_dir() / "files" / "group_watch.py"
ENTRYPOINT = chart_dir() / "files" / "entrypoint.sh"
FAST = ["--interval", "0.2", "--timeout", "2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child(marker: Path) -> list[str]:
    """A stand-in for vLLM: writes its pid, then runs until stopped (not holding the watch's stderr open, so that
    a test can read the watch's output to its end after killing it)."""
    return ["bash", "-c", f'echo $$ > {marker}; exec sleep 300 </dev/null >/dev/null 2>&1']


class Watch(subprocess.Popen):  # type: ignore[type-arg]
    """A running group_watch.py whose stderr goes to a file, so a test can wait for what it logged."""

    def __init__(self, log: Path, *args: str) -> None:
        self.log = log
        with log.open("w") as err:
            super().__init__([sys.executable, str(WATCH), *args], stderr=err, text=True)

    def said(self, text: str) -> bool:
        return text in self.log.read_text()

    def finish(self, seconds: float = 10) -> tuple[int, str]:
        return self.wait(timeout=seconds), self.log.read_text()


def start(*args: str) -> Watch:
    return Watch(_log_for(args), *args)


def _log_for(args: tuple[str, ...]) -> Path:
    """Beside the stand-in's pid marker (MARKER.log), or a temporary file when there is none."""
    marker = next((a for a in args if "echo $$ >" in a), None)
    if marker is None:
        import tempfile

        return Path(tempfile.mkstemp(suffix=".log")[1])
    return Path(marker.split("echo $$ > ", 1)[1].split(";", 1)[0] + ".log")


def lead(port: int, size: int, marker: Path) -> Watch:
    return start("lead", "--port", str(port), "--size", str(size), *FAST, "--", *child(marker))


def follow(port: int, rank: int, marker: Path, wait: float = 10) -> Watch:
    return start("follow", "--host", "127.0.0.1", "--port", str(port), "--rank", str(rank), "--wait", str(wait),
                 *FAST, "--", *child(marker))


def alive(marker: Path) -> bool:
    if not marker.exists() or not marker.read_text().strip():
        return False
    try:
        os.kill(int(marker.read_text()), 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition, seconds: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def finish(proc: Watch, seconds: float = 10) -> tuple[int, str]:
    return proc.finish(seconds)


def joined(tmp_path: Path, procs: list, size: int) -> tuple[int, Watch, Watch]:
    """A leader for a group of ``size`` and its worker of rank 1, once that worker has joined: the port, both."""
    port = free_port()
    leader = lead(port, size, tmp_path / "leader")
    worker = follow(port, 1, tmp_path / "w1")
    procs += [leader, worker]
    wait_for(lambda: worker.said("joined leader"), 30)
    return port, leader, worker


@pytest.fixture
def procs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Watches started by a test; afterwards they and every stand-in they started (orphans of a killed watch) end."""
    started: list[subprocess.Popen] = []  # type: ignore[type-arg]
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()
    for marker in tmp_path.iterdir():
        if marker.is_file() and marker.read_text().strip().isdigit():
            try:
                os.killpg(int(marker.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_leader_restart_ends_every_worker_and_its_child(tmp_path: Path, procs: list) -> None:
    port = free_port()
    leader = lead(port, 3, tmp_path / "leader")
    workers = [follow(port, 1, tmp_path / "w1"), follow(port, 2, tmp_path / "w2")]
    procs += [leader, *workers]
    wait_for(lambda: leader.said("group formed") and all(w.said("joined leader") for w in workers), 30)
    leader.send_signal(signal.SIGKILL)  # the leader container dies (its sockets close with it)
    leader.wait()
    for rank, worker in enumerate(workers, 1):
        code, err = finish(worker)
        assert code == 3
        assert "went away" in err and "restarting this pod to rejoin the group" in err
        wait_for(lambda rank=rank: not alive(tmp_path / f"w{rank}"))  # vLLM stopped with it

    # the restarted leader keeps its address; restarted workers join its new epoch
    leader = lead(port, 3, tmp_path / "leader2")
    workers = [follow(port, 1, tmp_path / "w1b"), follow(port, 2, tmp_path / "w2b")]
    procs += [leader, *workers]
    wait_for(lambda: all(alive(tmp_path / m) for m in ("leader2", "w1b", "w2b")))


def test_a_worker_restart_after_the_group_formed_restarts_the_leader(tmp_path: Path, procs: list) -> None:
    port = free_port()
    leader = lead(port, 3, tmp_path / "leader")
    w1, w2 = follow(port, 1, tmp_path / "w1"), follow(port, 2, tmp_path / "w2")
    procs += [leader, w1, w2]
    wait_for(lambda: leader.said("group formed") and w1.said("joined leader") and w2.said("joined leader"), 30)
    w1.send_signal(signal.SIGKILL)
    code, err = finish(leader)
    assert code == 3
    assert "group formed" in err and "worker rank 1 (127.0.0.1) went away" in err
    wait_for(lambda: not alive(tmp_path / "leader"))
    code, _ = finish(w2)  # and the leader's restart ends the other worker
    assert code == 3


def test_a_worker_that_restarts_before_the_group_formed_is_just_waited_for(tmp_path: Path, procs: list) -> None:
    port, leader, w1 = joined(tmp_path, procs, size=3)
    w1.send_signal(signal.SIGKILL)
    w1.wait()
    wait_for(lambda: leader.said("left before the group formed"), 30)
    assert leader.poll() is None
    w1b, w2 = follow(port, 1, tmp_path / "w1b"), follow(port, 2, tmp_path / "w2")
    procs += [w1b, w2]
    wait_for(lambda: leader.said("group formed") and w1b.said("joined leader") and w2.said("joined leader"), 30)
    assert leader.poll() is None


def test_a_silent_leader_counts_as_gone(tmp_path: Path, procs: list) -> None:
    _, leader, worker = joined(tmp_path, procs, size=2)
    leader.send_signal(signal.SIGSTOP)  # a node that froze: no FIN, no answers
    try:
        code, err = finish(worker, seconds=15)
    finally:
        leader.send_signal(signal.SIGCONT)
    assert code == 3 and "stopped answering for 2s" in err


def test_a_worker_that_cannot_reach_its_leader_gives_up(tmp_path: Path, procs: list) -> None:
    worker = follow(free_port(), 1, tmp_path / "w1", wait=1)
    procs.append(worker)
    code, err = finish(worker)
    assert code == 1 and "did not answer within 1s" in err
    wait_for(lambda: not alive(tmp_path / "w1"))


def test_a_stranger_on_the_port_changes_nothing(tmp_path: Path, procs: list) -> None:
    port, leader, worker = joined(tmp_path, procs, size=2)
    for junk in (b"GET / HTTP/1.1\r\n\r\n", b"JOIN 7\n", b"JOIN 0\n", b""):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(junk)
    time.sleep(0.5)
    assert leader.poll() is None and worker.poll() is None


def test_the_child_exit_code_is_the_watch_exit_code(tmp_path: Path) -> None:
    port = free_port()
    proc = start("lead", "--port", str(port), "--size", "2", *FAST, "--", "bash", "-c", "exit 7")
    assert finish(proc)[0] == 7


def test_the_statefulset_entrypoint_worker_restarts_when_its_leader_restarts(tmp_path: Path, procs: list) -> None:
    """The entrypoint of a StatefulSet worker, with vLLM standing in as a long sleep, against a stand-in leader."""
    port = free_port()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "vllm").write_text(f'#!/bin/bash\necho "$@" > {tmp_path}/vllm-args\necho $$ > {tmp_path}/vllm\n'
                                  "exec sleep 300 </dev/null >/dev/null 2>&1\n")
    (bin_dir / "getent").write_text('#!/bin/bash\necho "127.0.0.1  $2"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HELM_RDMA_TASK": "serve", "HELM_RDMA_ROLE": "worker",
           "HELM_RDMA_BACKEND": "native", "HELM_RDMA_WORKLOAD": "StatefulSet", "HELM_RDMA_NNODES": "2",
           "HELM_RDMA_MASTER_PORT": "29500", "HELM_RDMA_WATCH_PORT": str(port), "HELM_RDMA_WAIT_SECONDS": "10",
           "HELM_RDMA_LEADER_PREFIX": "llama-vllm-rdma-leader", "POD_NAME": "llama-vllm-rdma-worker-0",
           "POD_NAMESPACE": "ml", "VLLM_HOST_IP": "127.0.0.2", "HELM_RDMA_SCRIPTS": str(WATCH.parent)}
    leader = lead(port, 2, tmp_path / "leader")
    log = tmp_path / "worker.log"
    with log.open("w") as err_file:
        worker = subprocess.Popen(["bash", str(ENTRYPOINT), "m"], env=env, stderr=err_file, text=True)
    procs += [leader, worker]
    wait_for(lambda: alive(tmp_path / "vllm") and "joined leader" in log.read_text(), seconds=30)
    assert (tmp_path / "vllm-args").read_text().split() == [
        "serve", "m", "--nnodes", "2", "--node-rank", "1", "--master-addr", "127.0.0.1", "--master-port", "29500",
        "--headless"]
    leader.send_signal(signal.SIGKILL)
    code = worker.wait(timeout=90)
    err = log.read_text()
    assert code == 3, err
    assert "joined leader 127.0.0.1" in err and "restarting this pod to rejoin the group" in err
    wait_for(lambda: not alive(tmp_path / "vllm"))


def test_a_join_from_outside_the_group_is_ignored_and_restarts_nothing(tmp_path: Path, procs: list) -> None:
    """With --allow-dns the leader takes JOINs only from its workers' addresses: a stranger on the node's network
    (here 127.0.0.2) claiming a rank after the group formed changes nothing (without it, it would restart the group)."""
    port = free_port()
    leader = start("lead", "--port", str(port), "--size", "2", "--allow-dns", "localhost", *FAST, "--",
                   *child(tmp_path / "leader"))
    worker = follow(port, 1, tmp_path / "w1")
    procs += [leader, worker]
    wait_for(lambda: leader.said("group formed") and worker.said("joined leader"), 30)
    with socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0)) as s:
        s.settimeout(5)
        try:
            s.sendall(b"JOIN 1\n")
            assert s.recv(100) == b""  # closed unanswered
        except ConnectionResetError:
            pass  # or reset: either way, no EPOCH
    time.sleep(0.5)
    assert leader.poll() is None and worker.poll() is None
    assert leader.said("ignored a connection from 127.0.0.2: not one of the group's workers (localhost)")


def test_the_statefulset_leader_lets_in_only_its_groups_workers(tmp_path: Path) -> None:
    """Worker j of group g is ordinal g*(nodes-1)+j-1 of the worker StatefulSet; the leader's entrypoint names
    exactly those (group 1 of 3-node groups: workers 2 and 3)."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "group_watch.py").write_text(f"import sys\nopen({str(tmp_path / 'args')!r}, 'w').write(' '.join(sys.argv[1:]))\n")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HELM_RDMA_TASK": "serve", "HELM_RDMA_ROLE": "leader",
           "HELM_RDMA_BACKEND": "native", "HELM_RDMA_WORKLOAD": "StatefulSet", "HELM_RDMA_NNODES": "3",
           "HELM_RDMA_MASTER_PORT": "29500", "HELM_RDMA_WATCH_PORT": "29510", "HELM_RDMA_LEADER_PREFIX": "r-leader",
           "HELM_RDMA_WORKER_PREFIX": "r-worker", "POD_NAME": "r-leader-1", "POD_NAMESPACE": "ml",
           "VLLM_HOST_IP": "10.0.0.5", "HELM_RDMA_SCRIPTS": str(scripts)}
    run = subprocess.run(["bash", str(ENTRYPOINT), "m"], env=env, capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr
    args = (tmp_path / "args").read_text()
    assert args.startswith("lead --port 29510 --size 3 --allow-dns r-worker-2.r-worker.ml.svc "
                           "--allow-dns r-worker-3.r-worker.ml.svc -- /bin/bash ")


def test_a_join_for_a_live_rank_is_ignored_and_a_real_restart_restarts_the_group_once(tmp_path: Path,
                                                                                      procs: list) -> None:
    """Under hostNetwork a worker's address is its node's, shared by every process on it, so --allow-dns cannot tell
    a stranger there from the worker: a JOIN for a rank whose connection is alive changes nothing. The worker's own
    restart closes its connection first (the kernel closes a dead process's sockets), which restarts the group once;
    the restarted worker then joins the restarted leader."""
    port, leader, worker = joined(tmp_path, procs, size=2)
    wait_for(lambda: leader.said("group formed"))
    with socket.create_connection(("127.0.0.1", port)) as s:  # a stranger on the worker's node claims rank 1
        s.settimeout(5)
        s.sendall(b"JOIN 1\n")
        try:
            assert s.recv(100) == b""  # closed unanswered: no EPOCH
        except ConnectionResetError:
            pass
    wait_for(lambda: leader.said("ignored a JOIN for rank 1 from 127.0.0.1: that rank's connection is alive"))
    time.sleep(0.5)
    assert leader.poll() is None and worker.poll() is None and alive(tmp_path / "leader")

    worker.send_signal(signal.SIGKILL)  # the real worker's container restarts
    worker.wait()
    code, err = finish(leader)
    assert code == 3 and err.count("restarting this group") == 1
    assert "worker rank 1 (127.0.0.1) went away" in err
    leader2 = lead(port, 2, tmp_path / "leader2")  # the kubelet restarts both; the group forms again
    worker2 = follow(port, 1, tmp_path / "w1b")
    procs += [leader2, worker2]
    wait_for(lambda: leader2.said("group formed") and worker2.said("joined leader"), 30)
    time.sleep(0.5)
    assert leader2.poll() is None and worker2.poll() is None


def test_a_restarted_worker_waits_for_the_restarted_leader_instead_of_joining_the_stopping_one(
        tmp_path: Path, procs: list) -> None:
    """A leader whose group broke stops its vLLM first, which takes up to its grace period (a stand-in that takes
    3 s here). A worker restarted meanwhile must not join that leader's ending epoch: it would lose it a moment
    later and end again, one more crash-loop step with the kubelet's back-off. The listener closes as the group
    breaks, so the worker keeps retrying until the restarted leader answers."""
    port = free_port()
    slow = ["bash", "-c", f'echo $$ > {tmp_path / "leader"}; trap "sleep 3; exit 0" TERM; '
            'sleep 300 </dev/null >/dev/null 2>&1 & wait']
    leader = start("lead", "--port", str(port), "--size", "2", *FAST, "--", *slow)
    worker = follow(port, 1, tmp_path / "w1")
    procs += [leader, worker]
    wait_for(lambda: leader.said("group formed") and worker.said("joined leader"), 30)
    epoch = leader.log.read_text().split("epoch ", 1)[1].split()[0]

    worker.send_signal(signal.SIGKILL)  # the worker's container restarts
    worker.wait()
    wait_for(lambda: leader.said("restarting this group"), seconds=10)
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more, not even for the accept timeout
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    worker2 = follow(port, 1, tmp_path / "w1b", wait=30)  # back while the leader still stops its vLLM
    procs.append(worker2)
    time.sleep(1.0)
    assert leader.poll() is None  # still stopping
    assert not worker2.said("joined leader")
    code, _ = finish(leader)
    assert code == 3
    leader2 = lead(port, 2, tmp_path / "leader2")
    procs.append(leader2)
    wait_for(lambda: leader2.said("group formed") and worker2.said("joined leader"), 30)
    assert epoch not in worker2.log.read_text()
    time.sleep(0.5)
    assert worker2.poll() is None and "restarting this pod" not in worker2.log.read_text()


def read_line(s: socket.socket) -> bytes:
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        line += chunk
    return line


def impostor_join(port: int, answer: Callable[[str], bytes]) -> bytes:
    """Connect as a process on a worker's node would, read the leader's first line, send ``answer(that line)``; what
    the leader then says (b"" when it closed unanswered)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.settimeout(5)
        first = read_line(s).decode()
        s.sendall(answer(first))
        try:
            return s.recv(100)
        except ConnectionResetError:
            return b""


def test_with_the_key_an_impostor_that_joins_first_takes_no_rank(tmp_path: Path, procs: list,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the group forms, a process on the worker's node (its address under hostNetwork, so --allow-dns lets
    it in) claims rank 1 first. With the release's key, the leader sends a nonce and takes a JOIN only with its HMAC
    under the key: the impostor's claim, its replay of another nonce's proof and a plain JOIN all change nothing,
    and the real worker, second, joins. (Without the key the impostor held rank 1 and the real worker was refused.)"""
    spec = importlib.util.spec_from_file_location("group_watch", WATCH)
    assert spec and spec.loader
    watch = importlib.util.module_from_spec(spec)
    monkeypatch.setenv("HELM_RDMA_WATCH_KEY", "the-release-key")
    spec.loader.exec_module(watch)
    port = free_port()
    leader = lead(port, 2, tmp_path / "leader")
    procs.append(leader)
    wait_for(lambda: leader.said("leading a group of 2"))
    seen = watch.join_proof(b"the-release-key", "00" * 16, 1)  # a proof for another nonce, seen on the network
    firsts: list[str] = []
    assert impostor_join(port, lambda first: firsts.append(first) or b"JOIN 1\n") == b""  # a JOIN proving nothing
    assert firsts[0].startswith("NONCE ") and len(firsts[0].split()[1]) == 32
    assert impostor_join(port, lambda first: f"JOIN 1 {seen}\n".encode()) == b""
    assert impostor_join(port, lambda first: f"JOIN 1 {watch.join_proof(b'a-guess', first.split()[1], 1)}\n"
                         .encode()) == b""
    wait_for(lambda: leader.said("ignored a JOIN for rank 1 from 127.0.0.1: it does not prove the group's key"))
    worker = follow(port, 1, tmp_path / "w1")
    procs.append(worker)
    wait_for(lambda: leader.said("group formed") and worker.said("joined leader"), 30)
    assert "worker rank 1 joined from 127.0.0.1" in leader.log.read_text()
    time.sleep(0.5)
    assert leader.poll() is None and worker.poll() is None


def test_a_worker_with_another_key_is_refused(tmp_path: Path, procs: list, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("HELM_RDMA_WATCH_KEY", "the-release-key")
    leader = lead(port, 2, tmp_path / "leader")
    monkeypatch.setenv("HELM_RDMA_WATCH_KEY", "another-release-key")
    worker = follow(port, 1, tmp_path / "w1")
    procs += [leader, worker]
    code, err = finish(worker, 30)
    assert code == 3 and "closed the watch before answering" in err
    assert leader.said("it does not prove the group's key") and not leader.said("group formed")


def test_the_statefulset_pods_prove_the_releases_api_key() -> None:
    documents = render("workload.kind=StatefulSet", "api.keySecret.name=api-key")
    specs = serving_pod_specs(documents)
    assert len(specs) == 2  # the leader's and the workers' StatefulSets
    for spec in specs:
        env = {e["name"]: e for e in spec["containers"][0]["env"]}
        assert env["HELM_RDMA_WATCH_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "api-key", "key": "api-key"}
    for spec in serving_pod_specs(render("api.keySecret.name=api-key")):  # LeaderWorkerSet: no group watch
        assert "HELM_RDMA_WATCH_KEY" not in {e["name"] for e in spec["containers"][0]["env"]}
