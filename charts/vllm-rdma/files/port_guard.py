#!/usr/bin/env python3
"""helm-rdma port guard: a host firewall for one serving pod under hostNetwork.

Under hostNetwork the group's processes listen on the node's own addresses with no authentication: the torch store
(distributed.masterPort), the group watch, NCCL's bootstrap and vLLM's ZMQ sockets on kernel-ephemeral ports (vLLM
unpickles what those read). Kubernetes NetworkPolicies do not reach hostNetwork pods, and no OCI rule sees traffic
that starts on the node itself or arrives through a CNI overlay. This guard loads an nftables table in the node's
network namespace (the pod's, under hostNetwork) that drops every new TCP connection to a listening socket of THIS pod
unless it comes from the node itself or from a peer (a pod of the same release, by the addresses its headless
Services publish), on every port but the ones open to all (the API's, which checks its key). It matches the pod's
sockets by their cgroup (nft `socket cgroupv2`, the pod's cgroup as the kubelet names it), so no other workload's
listener is touched and a port chosen at random is guarded too. A second chain drops new TCP connections that pods on
this node (forwarded, not local) open to a peer's address on any port but the open ones: a CNI that masquerades pod
traffic to the node's address (flannel's --ip-masq: pkg/trafficmngr/iptables/iptables.go, masqRules) would otherwise
make them look like the peer node itself, on whatever port a listener of the group took (Ray's worker ports,
VLLM_PORT's, a sidecar's). So pods on a node of the release reach the other nodes of the release only on the open
ports and the node ports named (the kubelet's, by default). (A CNI that masquerades in eBPF before netfilter's forward
hook, as Cilium can, is not covered; nor is kube-proxy in IPVS mode, which rewrites a Service's destination after the
filter hooks: a Service aimed at the group's ports, which only someone who may create Services in the release's
privileged namespace can make, bypasses both chains.)

Trusted: the node's own processes and hostNetwork pods (the Pod Security Standards allow hostNetwork only at the
privileged level, which can read this pod's secrets anyway), and the peers at the addresses DNS publishes for them
(the node's InternalIP under hostNetwork: the group's sockets must use the interface of that address, as
network.interface does by default). Everything else is dropped, and TCP retries the SYN.

    python3 port_guard.py

Runs as a restartable init container (a sidecar), privileged: CAP_NET_ADMIN, and the node's cgroup namespace, which
containerd and CRI-O give privileged containers only (Linux nft_socket.c adds the level of the loading process's
cgroup namespace root to the rule's level, so a rule loaded from a namespace of its own matches nothing; checked at
start). It needs the host's /sys/fs/cgroup at /sys/fs/cgroup (nft resolves a cgroupv2 path there when it loads the
rule), nft 1.0 or later, and Linux 5.15.35 or later with cgroup v2 (the socket match on the input hook). It loads
the table (replacing one a killed run left), writes the ready file its startup probe reads,
then, every few seconds, re-resolves the peers and updates their sets in one transaction, and loads the table again
if something removed it (`nft flush ruleset`, a restart of the node's nftables service). A failure there is logged and
tried again, never an exit: LeaderWorkerSet recreates the whole group when any container of a pod restarts. A peer
name that does not resolve keeps its last addresses, and the log says so at its first failure, once a minute while it
lasts and when it resolves again. A guard restarted while DNS does not answer keeps the table its last run loaded.
On SIGTERM (the pod's end: the kubelet stops a sidecar after the pod's other containers, and sends no other SIGTERM
once its startup probe passed) it deletes the table. Tables of pods whose cgroup is gone (a node crash, SIGKILL) are
deleted at start. Any step that fails ends the container with one line naming
what is missing: the pod does not start unguarded.

Settings (set by the chart): HELM_RDMA_POD_UID (downward API metadata.uid); HELM_RDMA_GUARD_PEERS (DNS names, space
separated, each resolving to the release's pod addresses); HELM_RDMA_GUARD_OPEN (ports open to all, comma
separated); HELM_RDMA_GUARD_NODE_PORTS (ports of the peer nodes that pods on this node may reach too, comma
separated); HELM_RDMA_GUARD_REFRESH_SECONDS; HELM_RDMA_GUARD_READY_FILE. Standard library only.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")  # where nft resolves `socket cgroupv2` paths (nftables src/datatype.c)
TABLE_PREFIX = "helm_rdma_guard_"


def log(message: str) -> None:
    print(f"helm-rdma port guard: {message}", file=sys.stderr, flush=True)


class GuardError(Exception):
    """A precondition the guard cannot meet: the pod must not start unguarded."""


class Stop(Exception):
    """SIGTERM or SIGINT: the pod ends."""


def _stop(*_: object) -> None:
    raise Stop


def table_name(pod_uid: str) -> str:
    """The table of one pod (nft names take letters, digits and underscores)."""
    return TABLE_PREFIX + pod_uid.replace("-", "_")


def pod_cgroup(pod_uid: str, root: Path = CGROUP_ROOT) -> str | None:
    """The pod's cgroup, relative to ``root``, as the kubelet names it: with the systemd driver
    kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid with _>.slice, with cgroupfs
    kubepods[/<qos>]/pod<uid> (kubernetes pkg/kubelet/cm/pod_container_manager_linux.go, GetPodContainerName; the QoS
    level is absent for Guaranteed pods). None when there is none (the pod is gone)."""
    names = {f"pod{pod_uid}", f"-pod{pod_uid.replace('-', '_')}.slice"}
    for top in sorted(root.glob("kubepods*")):
        for path in [top, *sorted(top.glob("*")), *sorted(top.glob("*/*"))]:
            if path.is_dir() and any(path.name == n or (n.startswith("-") and path.name.endswith(n)) for n in names):
                return path.relative_to(root).as_posix()
    return None


def ports(text: str, *, required: bool = True) -> list[int]:
    """A comma-separated list of ports (empty only when not ``required``)."""
    parts = [p for p in re.split(r"[,\s]+", text.strip()) if p]
    if (required and not parts) or not all(p.isdigit() and 0 < int(p) < 65536 for p in parts):
        raise GuardError(f"bad port list {text!r}")
    return [int(p) for p in parts]


DNS_LOG_SECONDS = 60.0  # while a peer name does not resolve, the log says so at most this often


class Peers:
    """The addresses the peer names resolve to. A name that does not resolve keeps the addresses it had, so a lookup
    that fails for a moment never drops a peer; the log says so at the name's first failure, then at most once every
    ``log_every`` seconds while it lasts, and once when the name resolves again."""

    def __init__(self, names: Iterable[str], *, log_every: float = DNS_LOG_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.names = list(names)
        self.log_every = log_every
        self.clock = clock
        self.known: dict[str, set[str]] = {}
        self.failing: dict[str, tuple[float, float]] = {}  # name: (its first failure, its last line), by clock

    def resolve(self) -> tuple[list[str], list[str]]:
        """The IPv4 and IPv6 addresses of all names now (the last known ones of a name that fails)."""
        for name in self.names:
            try:
                infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                self._failed(name, exc)
                continue
            self.known[name] = {str(address[0]).split("%")[0] for *_, address in infos}
            if name in self.failing:
                since, _ = self.failing.pop(name)
                log(f"{name} resolves again, after {self.clock() - since:.0f}s: {self._addresses(name)}")
        found = set().union(*self.known.values()) if self.known else set()
        return sorted(a for a in found if ":" not in a), sorted(a for a in found if ":" in a)

    def _failed(self, name: str, exc: Exception) -> None:
        now = self.clock()
        if name not in self.failing:
            self.failing[name] = (now, now)
            log(f"{name} does not resolve ({exc}); keeping its last addresses: {self._addresses(name)}. A peer that "
                "started since is refused until it does: does the cluster's DNS answer?")
        elif now - self.failing[name][1] >= self.log_every:
            since = self.failing[name][0]
            self.failing[name] = (since, now)
            log(f"{name} has not resolved for {now - since:.0f}s ({exc}); keeping its last addresses: "
                f"{self._addresses(name)}")

    def _addresses(self, name: str) -> str:
        return ", ".join(sorted(self.known.get(name, ()))) or "none known yet"


def ruleset(table: str, *, cgroup: str, open_ports: list[int], node_ports: list[int], v4: list[str],
            v6: list[str]) -> str:
    """The whole table, replacing any table of the same name in one transaction (`table` then `delete table` makes
    the delete succeed whether or not it existed; nft(8), "delete table")."""
    level = len(cgroup.split("/"))
    open_set = ", ".join(str(p) for p in sorted(set(open_ports)))
    reachable = ", ".join(str(p) for p in sorted(set(open_ports) | set(node_ports)))
    syn = "tcp flags & (fin | syn | rst | ack) == syn"
    return f"""table inet {table}
delete table inet {table}
table inet {table} {{
  set peers4 {{
    type ipv4_addr
{_elements(v4)}  }}
  set peers6 {{
    type ipv6_addr
{_elements(v6)}  }}
  chain input {{
    type filter hook input priority filter; policy accept;
    {syn} tcp dport != {{ {open_set} }} socket cgroupv2 level {level} "{cgroup}" jump admit
  }}
  chain admit {{
    iif "lo" accept
    fib saddr type local accept
    ip saddr @peers4 accept
    ip6 saddr @peers6 accept
    counter drop
  }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    {syn} ip daddr @peers4 tcp dport != {{ {reachable} }} counter drop
    {syn} ip6 daddr @peers6 tcp dport != {{ {reachable} }} counter drop
  }}
}}
"""


def _elements(addresses: list[str]) -> str:
    return f"    elements = {{ {', '.join(addresses)} }}\n" if addresses else ""


def peers_update(table: str, v4: list[str], v6: list[str]) -> str:
    """New peer sets in one transaction: never a moment with neither the old nor the new."""
    lines = [f"flush set inet {table} peers4", f"flush set inet {table} peers6"]
    if v4:
        lines.append(f"add element inet {table} peers4 {{ {', '.join(v4)} }}")
    if v6:
        lines.append(f"add element inet {table} peers6 {{ {', '.join(v6)} }}")
    return "\n".join(lines) + "\n"


NFT_SECONDS = 30  # an nft that hangs (a netlink lock) must not hang the guard


def nft(script: str) -> None:
    try:
        done = subprocess.run(["nft", "-f", "-"], input=script, text=True, capture_output=True, check=False,
                              timeout=NFT_SECONDS)
    except subprocess.TimeoutExpired:
        raise GuardError(f"nft did not answer within {NFT_SECONDS}s") from None
    if done.returncode:
        raise GuardError(f"nft refused the rules: {done.stderr.strip()}")


def remove_stale(root: Path = CGROUP_ROOT) -> None:
    """Delete the tables of pods whose cgroup is gone (a guard killed before it could delete its own)."""
    listed = subprocess.run(["nft", "list", "tables"], text=True, capture_output=True, check=False)
    for line in listed.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].startswith(TABLE_PREFIX):
            uid = parts[2][len(TABLE_PREFIX):].replace("_", "-")
            if pod_cgroup(uid, root) is None:
                subprocess.run(["nft", "delete", "table", parts[1], parts[2]], capture_output=True, check=False)
                log(f"deleted {parts[2]}: its pod is gone")


def own_cgroup(path: Path = Path("/proc/self/cgroup")) -> str:
    """This process's cgroup v2 path as its cgroup namespace shows it (the "0::" line, cgroups(7))."""
    for line in path.read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    return ""


def preconditions() -> None:
    if shutil.which("nft") is None:
        raise GuardError("no nft in this image: distributed.portGuard.image must ship nftables 1.0 or later")
    if not (CGROUP_ROOT / "cgroup.controllers").is_file():
        raise GuardError(f"{CGROUP_ROOT} is not the host's cgroup v2 hierarchy: the node must boot with cgroup v2 "
                         "(Kubernetes 1.35 requires it), and the chart mounts the host's /sys/fs/cgroup there; or set "
                         "distributed.portGuard.enabled=false and close the group's ports another way (docs/rdma.md)")


def table_loaded(table: str) -> bool:
    try:
        return subprocess.run(["nft", "list", "table", "inet", table], capture_output=True, check=False,
                              timeout=NFT_SECONDS).returncode == 0
    except subprocess.TimeoutExpired:
        raise GuardError(f"nft did not answer within {NFT_SECONDS}s") from None


def main() -> int:
    env = os.environ
    uid = env.get("HELM_RDMA_POD_UID", "")
    peers = env.get("HELM_RDMA_GUARD_PEERS", "").split()
    ready = Path(env.get("HELM_RDMA_GUARD_READY_FILE", "/tmp/port-guard.ready"))
    table = table_name(uid)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        guard(uid, peers, ready=ready, refresh=float(env.get("HELM_RDMA_GUARD_REFRESH_SECONDS", "5")),
              open_ports=ports(env.get("HELM_RDMA_GUARD_OPEN", "")),
              node_ports=ports(env.get("HELM_RDMA_GUARD_NODE_PORTS", ""), required=False))
    except Stop:
        if not ready.exists():  # stopped before this run took over (its startup probe failed): an earlier run's
            return 0            # table keeps guarding the pod's listeners
        # the pod ends: the kubelet stops a sidecar after the pod's other containers, and probes it no more once
        # its startup probe passed; its listeners are gone, and so goes the table
        subprocess.run(["nft", "delete", "table", "inet", table], capture_output=True, check=False)
        log(f"deleted table inet {table}")
        return 0
    except (GuardError, OSError, ValueError) as exc:
        # Only before the table is loaded: a table an earlier run loaded stays, and guards, while the kubelet
        # restarts this container.
        log(str(exc))
        return 1
    return 0


def guard(uid: str, peers: list[str], *, ready: Path, refresh: float, open_ports: list[int],
          node_ports: list[int]) -> None:
    """Load the table, say so, and keep it and the peers current until a signal stops it."""
    if not uid or not peers:
        raise GuardError("HELM_RDMA_POD_UID and HELM_RDMA_GUARD_PEERS must be set (the chart sets them)")
    preconditions()
    cgroup = pod_cgroup(uid)
    if cgroup is None:
        raise GuardError(f"no cgroup of pod {uid} under {CGROUP_ROOT} (kubepods*/...pod{uid}...): is the host's "
                         "/sys/fs/cgroup mounted there, and does the kubelet use cgroup v2?")
    own = own_cgroup()
    if not own.startswith(f"/{cgroup}/"):
        # Linux nft_socket.c (since 6.11, and 6.1.112, 6.6.53, 6.10.12) adds the level of the loading process's cgroup
        # namespace root to the rule's level: loaded from a namespace of its own, the rule would match nothing.
        raise GuardError(f"this container's cgroup namespace is not the node's (/proc/self/cgroup shows {own!r}, not "
                         f"a path under /{cgroup}): nft would match none of the pod's sockets. The chart runs the "
                         "guard privileged, which containerd and CRI-O give the node's cgroup namespace; keep it so")
    table = table_name(uid)
    remove_stale()
    names = Peers(peers)
    v4, v6 = names.resolve()

    def load() -> None:
        nft(ruleset(table, cgroup=cgroup, open_ports=open_ports, node_ports=node_ports, v4=v4, v6=v6))

    if (v4 or v6) or not table_loaded(table):
        load()
        said = ", ".join(v4 + v6) or "(none resolved yet)"
    else:  # a restart while DNS does not answer: the last run's peers are the best known
        said = "as the table its last run loaded holds (DNS gave none)"
    ready.write_text("ready\n")
    log(f"table inet {table}: new TCP connections to this pod's listeners (cgroup {cgroup}) but on ports "
        f"{', '.join(map(str, open_ports))} come only from this node and the peers {said}")
    while True:
        time.sleep(refresh)
        try:
            if not table_loaded(table):  # first, with the peers known: DNS may take seconds to fail
                load()
                log(f"table inet {table} was gone (removed outside this guard): loaded it again")
            now = names.resolve()
            if now != (v4, v6) and (now[0] or now[1]):
                nft(peers_update(table, *now))
                v4, v6 = now
                log(f"peers now {', '.join(v4 + v6)}")
        except (GuardError, OSError) as exc:  # tried again at the next refresh: an exit would recreate the group
            log(f"{exc}; trying again in {refresh:g}s")


if __name__ == "__main__":
    sys.exit(main())
