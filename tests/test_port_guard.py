"""The port guard (files/port_guard.py) run for real: the chart's own container environment, the real nft, the real
kernel, in network namespaces made here. A "node" namespace holds the pod's listeners in a cgroup named as the kubelet
names a Burstable pod's with the systemd driver (kubernetes pkg/kubelet/cm/pod_container_manager_linux.go,
GetPodContainerName: kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid, - as _>.slice), and another
workload's listener in a cgroup of its own. Around it: a peer (a node of the release, which the release's headless
Service name resolves to, by the namespace's hosts file), a stranger on the node network, and a pod behind the node
(a veth, forwarded as a CNI forwards). The guard matches the pod's listening sockets with nft's `socket cgroupv2`
on the input hook (Linux net/netfilter/nft_socket.c: the lookup finds the listener a SYN is for) and resolves the
cgroup path under /sys/fs/cgroup (nftables src/datatype.c), where the chart mounts the host's hierarchy.

Needs root, nft (Debian's nftables; scripts/test-tools installs it), iproute2 and a writable cgroup v2 hierarchy;
elsewhere these tests skip, saying which is missing."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.datafiles import chart_dir

from .rendering import render, serving_pod_specs

SCRIPT = chart_dir() / "files" / "port_guard.py"
RELEASE_SERVICE = "llama405b-vllm-rdma.llm.svc"  # what the chart's guard resolves for release llama405b in llm
STORE = 29500  # distributed.masterPort: the torch store's
LISTENER = """
import socket, sys, threading
def serve(s):
    while True:
        c, _ = s.accept(); c.close()
socks = []
for port in [int(p) for p in sys.argv[1:]]:
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", port)); s.listen(16); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
threading.Event().wait()
"""


def cgroup2_root() -> Path | None:
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, kind, *_ = line.split()
        if kind == "cgroup2":
            return Path(mount)
    return None


def missing() -> str:
    if os.geteuid() != 0:
        return "not root"
    for tool in ("nft", "ip"):
        if shutil.which(tool) is None:
            return f"no {tool} (scripts/test-tools installs nftables and iproute2)"
    root = cgroup2_root()
    if root is None or not os.access(root, os.W_OK):
        return "no writable cgroup v2 hierarchy"
    probe = f"hrprobe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode:
        return "cannot make network namespaces"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def load_guard() -> Any:
    """files/port_guard.py as a module, to drive one part of it in this process (its main() does not run)."""
    spec = importlib.util.spec_from_file_location("port_guard", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@dataclass
class Net:
    tag: str
    cgroups: Path
    pod_uid: str
    pod_cgroup: Path
    other_cgroup: Path

    def ns(self, name: str) -> str:
        return f"{name}{self.tag}"

    def reaches(self, source: str, address: str, port: int) -> bool:
        """Whether a TCP connection from namespace ``source`` to address:port opens within a second."""
        code = (f"import socket\ntry:\n socket.create_connection(('{address}', {port}), timeout=1).close()\n"
                "except OSError:\n raise SystemExit(1)")
        return subprocess.run(["ip", "netns", "exec", self.ns(source), sys.executable, "-c", code],
                              capture_output=True).returncode == 0

    def listen(self, cgroup: Path, *ports: int) -> tuple[subprocess.Popen[str], list[int]]:
        """Listeners in ``cgroup`` on the node (port 0: an ephemeral one, as NCCL's and vLLM's sockets bind)."""
        proc = subprocess.Popen(["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec ip netns exec '
                                 f'{self.ns("node")} "$0" -c "$@"', sys.executable, LISTENER,
                                 *map(str, ports)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        return proc, [int(p) for p in proc.stdout.readline().split()]

    def peers(self, *addresses: str) -> None:
        """The hosts file the node's namespace resolves with (ip-netns(8): /etc/netns/NAME/hosts)."""
        Path(f"/etc/netns/{self.ns('node')}/hosts").write_text(
            "".join(f"{a} {RELEASE_SERVICE}\n" for a in addresses) + "127.0.0.1 localhost\n")


@pytest.fixture
def net() -> Iterator[Net]:
    if missing():
        pytest.skip(missing())
    tag = f"g{os.getpid() % 100000}"
    root = cgroup2_root()
    assert root is not None
    uid = str(uuid.uuid4())
    pod = (root / "kubepods.slice" / "kubepods-burstable.slice" /
           f"kubepods-burstable-pod{uid.replace('-', '_')}.slice" / "crio-vllm.scope")
    other = root / f"other-{tag}.slice"
    n = Net(tag, root, uid, pod, other)
    for name in ("node", "peer", "stranger", "pod"):
        sh("ip", "netns", "add", n.ns(name))
        sh("ip", "-n", n.ns(name), "link", "set", "lo", "up")
    links = {"peer": ("10.77.1.1", "10.77.1.2"), "stranger": ("10.77.2.1", "10.77.2.2"), "pod": ("10.77.3.1", "10.77.3.2")}
    for i, (name, (near, far)) in enumerate(links.items()):
        sh("ip", "link", "add", f"h{i}{tag}", "netns", n.ns("node"), "type", "veth", "peer", "name", f"c{i}{tag}",
           "netns", n.ns(name))
        sh("ip", "-n", n.ns("node"), "addr", "add", f"{near}/24", "dev", f"h{i}{tag}")
        sh("ip", "-n", n.ns("node"), "link", "set", f"h{i}{tag}", "up")
        sh("ip", "-n", n.ns(name), "addr", "add", f"{far}/24", "dev", f"c{i}{tag}")
        sh("ip", "-n", n.ns(name), "link", "set", f"c{i}{tag}", "up")
        sh("ip", "-n", n.ns(name), "route", "add", "default", "via", near)
    sh("ip", "netns", "exec", n.ns("node"), "sysctl", "-qw", "net.ipv4.ip_forward=1")
    pod.mkdir(parents=True)
    other.mkdir()
    Path(f"/etc/netns/{n.ns('node')}").mkdir(parents=True, exist_ok=True)
    n.peers("10.77.1.2")
    procs: list[subprocess.Popen[Any]] = []
    n.procs = procs  # type: ignore[attr-defined]
    try:
        yield n
    finally:
        for p in procs:
            p.kill()
            p.wait()
        for name in ("node", "peer", "stranger", "pod"):
            subprocess.run(["ip", "netns", "del", n.ns(name)], capture_output=True)
        shutil.rmtree(f"/etc/netns/{n.ns('node')}", ignore_errors=True)
        for top in (pod.parent, other):
            remove_cgroup(top)


def remove_cgroup(top: Path) -> None:
    """Remove a cgroup and its children, deepest first (a killed process leaves its cgroup a moment later)."""
    if not top.exists():
        return
    for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [top]:
        for _ in range(50):
            if not d.exists() or subprocess.run(["rmdir", str(d)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def chart_env() -> dict[str, str]:
    """The port guard container's plain environment as the chart renders it (release llama405b in llm, h100)."""
    spec = serving_pod_specs(render())[0]
    guard = next(c for c in spec["initContainers"] if c["name"] == "port-guard")
    assert guard["restartPolicy"] == "Always" and spec["initContainers"][0] is guard  # first, and a sidecar
    return {e["name"]: str(e["value"]) for e in guard["env"] if "value" in e}


RUN_GUARD = r"""#!/bin/sh
# $1 the container's cgroup, $2 unshare's extra flags, $3 the node's network namespace, $4 the host's cgroup v2
# hierarchy, $5 a directory for its bind mount, $6 python, $7 the guard.
echo $$ > "$1/cgroup.procs" || exit 99
exec unshare -m $2 sh -c 'mount --bind "$0" "$1" && exec ip netns exec "$2" sh -c \
    "mount --bind \"\$0\" /sys/fs/cgroup && exec \"\$1\" \"\$2\"" "$1" "$3" "$4"' "$4" "$5" "$3" "$6" "$7"
"""


def guard_command(n: Net, scope: Path, tmp: Path, *, unshare: str = "") -> list[str]:
    """The guard as the chart runs it: in a container scope of its pod's cgroup, in the node's cgroup namespace (a
    privileged container's) unless ``unshare`` is -C (a namespace of its own, an unprivileged container's), with the
    host's cgroup v2 hierarchy bound at /sys/fs/cgroup as the chart's hostPath volume binds it (ip netns exec gives it
    /etc/netns/NAME/hosts as /etc/hosts)."""
    scope.mkdir(exist_ok=True)
    run = tmp / "run-guard"
    run.write_text(RUN_GUARD)
    mount = tmp / "host-cgroup"
    mount.mkdir(exist_ok=True)
    return ["sh", str(run), str(scope), unshare, n.ns("node"), str(n.cgroups), str(mount), sys.executable,
            str(SCRIPT)]


def guard_env(n: Net, uid: str, ready: Path) -> dict[str, str]:
    return {**os.environ, **chart_env(), "HELM_RDMA_POD_UID": uid, "HELM_RDMA_GUARD_READY_FILE": str(ready),
            "HELM_RDMA_GUARD_REFRESH_SECONDS": "1"}


def start_guard(n: Net, tmp_path: Path, uid: str | None = None, pod: Path | None = None) -> subprocess.Popen[str]:
    ready = tmp_path / "ready"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(guard_command(n, (pod or n.pod_cgroup.parent) / "crio-guard.scope", tmp_path),
                            env=guard_env(n, uid or n.pod_uid, ready), stderr=subprocess.PIPE, text=True)
    n.procs.append(proc)  # type: ignore[attr-defined]
    for _ in range(100):
        if ready.exists() or proc.poll() is not None:
            break
        time.sleep(0.1)
    assert ready.exists(), proc.stderr.read() if proc.poll() is not None and proc.stderr else "not ready"
    return proc


def tables(n: Net) -> str:
    return subprocess.run(["ip", "netns", "exec", n.ns("node"), "nft", "list", "tables"], capture_output=True,
                          text=True, check=True).stdout


def test_the_guard_admits_only_the_node_and_the_peers_to_the_pods_listeners(net: Net, tmp_path: Path) -> None:
    """Before, a stranger on the node network and a pod on the node reach every listener of the serving pod; with the
    guard, only the node itself, the peers and anyone on the API's port do, and another workload's listener is
    untouched; a peer that appears later is admitted at the next refresh; SIGTERM deletes the table."""
    api = int(chart_env()["HELM_RDMA_GUARD_OPEN"])
    listeners, (api, store, ephemeral) = net.listen(net.pod_cgroup, api, STORE, 0)
    other, (other_port,) = net.listen(net.other_cgroup, 0)
    net.procs += [listeners, other]  # type: ignore[attr-defined]
    assert net.reaches("stranger", "10.77.2.1", store) and net.reaches("pod", "10.77.3.1", ephemeral)  # open before

    guard = start_guard(net, tmp_path)
    assert net.reaches("peer", "10.77.1.1", store) and net.reaches("peer", "10.77.1.1", ephemeral)
    assert net.reaches("node", "10.77.2.1", store)  # the node itself, on any of its addresses
    for source, address in (("stranger", "10.77.2.1"), ("pod", "10.77.3.1")):
        assert not net.reaches(source, address, store), source
        assert not net.reaches(source, address, ephemeral), source
        assert net.reaches(source, address, api), source  # the API checks its key itself
        assert net.reaches(source, address, other_port), source  # not this pod's listener

    net.peers("10.77.1.2", "10.77.2.2")  # a pod of the release starts on the stranger's node
    deadline = time.monotonic() + 10
    while not net.reaches("stranger", "10.77.2.1", store):
        assert time.monotonic() < deadline, "the new peer was never admitted"
    assert not net.reaches("pod", "10.77.3.1", store)

    guard.send_signal(signal.SIGTERM)
    assert guard.wait(timeout=10) == 0
    assert "helm_rdma_guard_" not in tables(net)
    assert net.reaches("pod", "10.77.3.1", store)


def test_pods_on_the_node_reach_a_peer_only_on_the_open_ports(net: Net, tmp_path: Path) -> None:
    """A CNI that masquerades pod traffic to the node's address (flannel's --ip-masq) makes a pod's connection look
    like the node's at the peer, on whatever port a listener of the group took (Ray's worker ports 10002-19999,
    VLLM_PORT's, a sidecar's): the guard drops it where it is forwarded, on every port but the open ones."""
    env = chart_env()
    api, kubelet = int(env["HELM_RDMA_GUARD_OPEN"]), int(env["HELM_RDMA_GUARD_NODE_PORTS"])
    peer_listener = subprocess.Popen(["ip", "netns", "exec", net.ns("peer"), sys.executable, "-c", LISTENER,
                                      str(STORE), "15000", "9100", str(api), str(kubelet)], stdout=subprocess.PIPE,
                                     text=True)
    net.procs.append(peer_listener)  # type: ignore[attr-defined]
    assert peer_listener.stdout is not None and peer_listener.stdout.readline()
    assert net.reaches("pod", "10.77.1.2", STORE) and net.reaches("pod", "10.77.1.2", 15000)
    start_guard(net, tmp_path)
    assert not net.reaches("pod", "10.77.1.2", STORE) and not net.reaches("pod", "10.77.1.2", 15000)
    assert not net.reaches("pod", "10.77.1.2", 9100)  # a node exporter: not named in peerNodePorts
    assert net.reaches("pod", "10.77.1.2", api)  # the API, which checks its key
    assert kubelet == 10250 and net.reaches("pod", "10.77.1.2", kubelet)  # peerNodePorts: the kubelet's
    assert net.reaches("node", "10.77.1.2", STORE)  # the node's own processes: the group's among them


def test_a_killed_guard_leaves_its_table_until_its_pod_is_gone(net: Net, tmp_path: Path) -> None:
    """SIGKILL (a node under pressure) skips the cleanup: the table keeps guarding while the kubelet restarts the
    container, a restart replaces it in one transaction, and once the pod's cgroup is gone the next guard on the node
    deletes it."""
    listeners, (store,) = net.listen(net.pod_cgroup, STORE)
    net.procs.append(listeners)  # type: ignore[attr-defined]
    table = "helm_rdma_guard_" + net.pod_uid.replace("-", "_")
    start_guard(net, tmp_path).kill()
    assert table in tables(net) and not net.reaches("stranger", "10.77.2.1", store)
    start_guard(net, tmp_path).kill()  # the restart
    assert tables(net).count(table) == 1 and not net.reaches("stranger", "10.77.2.1", store)

    for p in net.procs:  # type: ignore[attr-defined]  # the pod is gone
        p.kill()
        p.wait()
    remove_cgroup(net.pod_cgroup.parent)
    other_uid = str(uuid.uuid4())
    other_pod = (net.cgroups / "kubepods.slice" / f"kubepods-pod{other_uid.replace('-', '_')}.slice")  # Guaranteed
    other_pod.mkdir(parents=True)
    try:
        start_guard(net, tmp_path, uid=other_uid, pod=other_pod)
        assert table not in tables(net) and "helm_rdma_guard_" + other_uid.replace("-", "_") in tables(net)
    finally:
        for p in net.procs:  # type: ignore[attr-defined]
            p.kill()
            p.wait()
        remove_cgroup(other_pod)


def test_without_the_pods_cgroup_the_guard_fails_naming_it(net: Net, tmp_path: Path) -> None:
    """A node whose kubelet does not use cgroup v2, or a chart without the host's mount: exit 1, one line saying so,
    and no table (the pod does not start unguarded: the kubelet restarts the container)."""
    ready = tmp_path / "ready"
    done = subprocess.run(guard_command(net, net.other_cgroup / "crio-guard.scope", tmp_path),
                          env=guard_env(net, str(uuid.uuid4()), ready), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and not ready.exists()
    assert "no cgroup of pod" in done.stderr and "/sys/fs/cgroup" in done.stderr
    assert "helm_rdma_guard_" not in tables(net)


def test_from_a_cgroup_namespace_of_its_own_the_guard_refuses(net: Net, tmp_path: Path) -> None:
    """An unprivileged container gets a cgroup namespace of its own (containerd and CRI-O on cgroup v2), and Linux
    adds that namespace root's level to a `socket cgroupv2` rule's level (net/netfilter/nft_socket.c,
    nft_socket_cgroup_subtree_level; since 6.11 and the 6.1.112, 6.6.53, 6.10.12 stable releases): the rule would
    load and match nothing. The guard sees its namespace in /proc/self/cgroup and refuses, saying why."""
    ready = tmp_path / "ready"
    done = subprocess.run(guard_command(net, net.pod_cgroup.parent / "crio-guard.scope", tmp_path, unshare="-C"),
                          env=guard_env(net, net.pod_uid, ready), capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and not ready.exists(), done.stderr
    assert "cgroup namespace is not the node's" in done.stderr and "privileged" in done.stderr
    assert "helm_rdma_guard_" not in tables(net)


def test_the_guard_restores_a_table_removed_under_it_and_never_exits_for_it(net: Net, tmp_path: Path) -> None:
    """`nft flush ruleset` (what restarting a node's nftables service does) removes every table: the guard loads its
    own again at the next refresh, and stays up (LeaderWorkerSet recreates the whole group when a container of a pod
    restarts: kubernetes-sigs/lws pkg/utils/pod/pod_utils.go, ContainerRestarted counts init containers)."""
    listeners, (store,) = net.listen(net.pod_cgroup, STORE)
    net.procs.append(listeners)  # type: ignore[attr-defined]
    guard = start_guard(net, tmp_path)
    assert not net.reaches("stranger", "10.77.2.1", store)
    sh("ip", "netns", "exec", net.ns("node"), "nft", "flush", "ruleset")
    assert net.reaches("stranger", "10.77.2.1", store)  # unguarded, until the next refresh
    deadline = time.monotonic() + 10
    while net.reaches("stranger", "10.77.2.1", store):
        assert time.monotonic() < deadline, "the table was never loaded again"
    assert guard.poll() is None


def test_a_guard_restarted_while_dns_fails_keeps_the_peers_it_had(net: Net, tmp_path: Path) -> None:
    """A restart (an OOM kill, say) while the cluster's DNS does not answer must not load an empty peer set: the
    group's own connections would be dropped until DNS answers."""
    listeners, (store,) = net.listen(net.pod_cgroup, STORE)
    net.procs.append(listeners)  # type: ignore[attr-defined]
    start_guard(net, tmp_path).kill()
    net.peers()  # the name resolves no more
    start_guard(net, tmp_path)
    assert net.reaches("peer", "10.77.1.1", store) and not net.reaches("stranger", "10.77.2.1", store)


def test_while_a_peer_name_fails_to_resolve_the_guard_says_so_once_and_again_when_it_resolves(
        net: Net, tmp_path: Path) -> None:
    """The guard keeps a name's last addresses while DNS fails (CoreDNS down, port 53 blocked, the Service deleted),
    so a group recreated on other nodes meanwhile cannot form: its log says which name fails and what it keeps, at the
    first failure and then at most once a minute (not at every refresh), and says when the name resolves again."""
    listeners, (store,) = net.listen(net.pod_cgroup, STORE)
    net.procs.append(listeners)  # type: ignore[attr-defined]
    guard = start_guard(net, tmp_path)  # refreshes every second
    net.peers()  # the name resolves no more
    time.sleep(4.5)  # four refreshes
    net.peers("10.77.1.2", "10.77.2.2")  # it answers again, with a peer that started meanwhile
    deadline = time.monotonic() + 10
    while not net.reaches("stranger", "10.77.2.1", store):
        assert time.monotonic() < deadline, "the new peer was never admitted"
    assert net.reaches("peer", "10.77.1.1", store)  # kept all along
    guard.send_signal(signal.SIGTERM)
    assert guard.wait(timeout=10) == 0 and guard.stderr is not None
    log = guard.stderr.read().splitlines()
    failed = [line for line in log if "does not resolve" in line or "has not resolved" in line]
    assert len(failed) == 1, log
    assert failed[0].startswith(f"helm-rdma port guard: {RELEASE_SERVICE} does not resolve (")
    assert "keeping its last addresses: 10.77.1.2." in failed[0]
    back = [line for line in log if "resolves again" in line]
    assert len(back) == 1 and f"{RELEASE_SERVICE} resolves again, after " in back[0], log
    assert back[0].endswith(": 10.77.1.2, 10.77.2.2")


def test_a_name_that_keeps_failing_is_logged_once_a_minute_and_a_new_failure_is_logged_at_once(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The cadence over a long failure, on a clock the test moves (the run above covers the first line and the
    recovery on the real resolver): the first failure, then one line per minute with how long it lasts, none between,
    the recovery, and a later failure logged at once as a new one."""
    guard = load_guard()
    address = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 0))]
    dns = {"up": True}

    def getaddrinfo(name: str, *_: Any, **__: Any) -> Any:
        assert name == "peer.llm.svc"
        if not dns["up"]:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return address

    monkeypatch.setattr(guard.socket, "getaddrinfo", getaddrinfo)
    now = [1000.0]
    peers = guard.Peers(["peer.llm.svc"], clock=lambda: now[0])
    lines: list[str] = []

    def at(t: float, up: bool) -> tuple[list[str], list[str]]:
        """Refresh at time ``t`` with DNS up or not; the guard's log lines are collected in ``lines``."""
        now[0], dns["up"] = 1000.0 + t, up
        found = peers.resolve()
        lines.extend(capsys.readouterr().err.splitlines())
        return found

    assert at(0, True) == (["10.0.0.7"], []) and lines == []
    for t in range(5, 60, 5):  # every refresh fails for a minute: one line, the first
        assert at(t, False) == (["10.0.0.7"], [])  # the last addresses are kept
    assert len(lines) == 1 and "peer.llm.svc does not resolve ([Errno -3] Temporary failure" in lines[0]
    assert at(65, False) == (["10.0.0.7"], [])  # a minute after the first line: the second
    assert len(lines) == 2 and "peer.llm.svc has not resolved for 60s" in lines[1] and "10.0.0.7" in lines[1]
    for t in (70, 100, 120):
        at(t, False)
    assert len(lines) == 2
    at(125, False)
    assert len(lines) == 3 and "has not resolved for 120s" in lines[2]
    at(130, True)
    assert len(lines) == 4 and lines[3] == "helm-rdma port guard: peer.llm.svc resolves again, after 125s: 10.0.0.7"
    at(135, True)
    assert len(lines) == 4  # nothing while it resolves
    at(140, False)
    assert len(lines) == 5 and "peer.llm.svc does not resolve (" in lines[4]  # a new failure: said at once
