#!/usr/bin/env python3
"""helm-rdma group watch: makes the pods of one StatefulSet group restart as one (LeaderWorkerSet does it itself).

vLLM's headless workers block forever when the leader goes away (vllm v1/executor/multiproc_executor.py,
dequeue(indefinite=True)), and a restarted leader waits for workers that never come back. Under hostNetwork a
restarted leader even keeps its address and DNS name, so a worker cannot tell from those. The watch gives each pod a
signal that changes on every restart: a TCP connection from each worker to its leader's watch.

    group_watch.py lead   --port P --size N [--allow-dns NAME]...      -- COMMAND...
    group_watch.py follow --host H --port P --rank R [--wait S]      -- COMMAND...

Both run COMMAND (the pod's real work) as a child in its own process group, and end it, exiting 3, when the group
breaks: the leader when a worker that had joined disconnects or falls silent; a worker when its connection to the
leader drops, the leader stops answering, or the leader's epoch (a random id per start) changes. The kubelet then
restarts the container and the group forms again. A worker that cannot reach the leader within --wait seconds ends
too (exit 1). When COMMAND ends by itself, its exit code is returned. SIGTERM and SIGINT are passed to COMMAND.

Protocol (one line each): worker "JOIN <rank>", leader "EPOCH <id>"; then the worker sends "PING" and the leader
answers "PONG" every --interval seconds; silence for --timeout seconds counts as a break. With --allow-dns, the leader
takes a JOIN only from an address one of those names resolves to (the group's workers, by their StatefulSet DNS
names). Under hostNetwork that address is the worker node's, shared by every process and hostNetwork pod on it, so a
JOIN for a rank whose connection is alive is refused too (the leader closes it unanswered): a restarted worker's old
connection closes when its process ends (or falls silent for --timeout when its node does), which is what breaks
the group, once; its new JOIN is taken after that.

With $HELM_RDMA_WATCH_KEY set (the chart sets it from the release's API key Secret, in the leader's and the workers'
pods alike), a JOIN carries proof of the key: the leader first sends "NONCE <random hex>", and the worker answers
"JOIN <rank> <HMAC-SHA256 of 'helm-rdma group watch <nonce> <rank>' under the key, hex>". Without it a process on a
worker's node could take a rank before the real worker joins (the worker is then refused until it leaves, and its
leaving restarts the group). The key never crosses the wire; a nonce is used once, so a JOIN seen on the network
cannot be replayed. Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import secrets
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

BROKEN = 3
KEY_ENV = "HELM_RDMA_WATCH_KEY"


def join_proof(key: bytes, nonce: str, rank: int) -> str:
    """What a worker sends to prove the key for one JOIN (see the module's doc)."""
    return hmac.new(key, f"helm-rdma group watch {nonce} {rank}".encode(), hashlib.sha256).hexdigest()


def log(message: str) -> None:
    print(f"helm-rdma group watch: {message}", file=sys.stderr, flush=True)


class Child:
    """COMMAND in its own process group, so that everything it started ends with it."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(command, start_new_session=True)

    def stop(self, grace: float = 20.0) -> None:
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def forward_signals(self) -> None:
        def handler(signum: int, _frame: object) -> None:
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                pass

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def read_line(conn: socket.socket, buffer: bytearray) -> str | None:
    """One line from ``conn`` (None when it closed); ``buffer`` keeps what came after it."""
    while b"\n" not in buffer:
        chunk = conn.recv(256)
        if not chunk:
            return None
        buffer += chunk
        if len(buffer) > 4096:
            return None
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode("ascii", "replace").strip()


class Leader:
    """Accepts one connection per worker rank; the group has formed once every rank 1..size-1 joined."""

    def __init__(self, port: int, size: int, timeout: float, allow_dns: tuple[str, ...] = (),
                 key: bytes = b"") -> None:
        self.size, self.timeout, self.allow_dns, self.key = size, timeout, allow_dns, key
        self.epoch = uuid.uuid4().hex
        self.members: dict[int, socket.socket] = {}
        self.formed = False
        self.broken = threading.Event()
        self.reason = ""
        self.lock = threading.Lock()
        self.server = socket.create_server(("", port), reuse_port=False)
        self.server.settimeout(0.5)

    def serve(self) -> None:
        while not self.broken.is_set():
            try:
                conn, address = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._member, args=(conn, address), daemon=True).start()

    def _break(self, reason: str) -> None:
        with self.lock:
            if not self.broken.is_set():
                self.reason = reason
                self.broken.set()
        # Stop listening at once: stopping COMMAND takes up to its grace period, and a worker restarted meanwhile
        # must wait for the restarted leader rather than join this ending epoch (and end again a moment later).
        # shutdown() takes the socket out of LISTEN even while the accepting thread still holds it (its poll keeps
        # a reference, so close() alone would leave it queueing connections for up to the accept timeout).
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()

    def _allowed(self, address: str) -> bool:
        """Whether ``address`` is one of the group's workers (every address is, without --allow-dns)."""
        if not self.allow_dns:
            return True
        for name in self.allow_dns:
            try:
                if address in socket.gethostbyname_ex(name)[2]:
                    return True
            except OSError:
                continue
        return False

    def _member(self, conn: socket.socket, address: tuple[str, int]) -> None:
        if not self._allowed(address[0]):
            log(f"ignored a connection from {address[0]}: not one of the group's workers ({', '.join(self.allow_dns)})")
            conn.close()
            return
        buffer = bytearray()
        conn.settimeout(10)
        nonce = secrets.token_hex(16)
        try:
            if self.key:
                conn.sendall(f"NONCE {nonce}\n".encode())
            hello = read_line(conn, buffer)
        except OSError:
            hello = None
        parts = (hello or "").split()
        if (len(parts) != (3 if self.key else 2) or parts[0] != "JOIN" or not parts[1].isdigit()
                or not 0 < int(parts[1]) < self.size):
            conn.close()  # not a worker of this group: ignored
            return
        rank = int(parts[1])
        if self.key and not hmac.compare_digest(parts[2].encode(), join_proof(self.key, nonce, rank).encode()):
            log(f"ignored a JOIN for rank {rank} from {address[0]}: it does not prove the group's key")
            conn.close()
            return
        with self.lock:
            if self.broken.is_set():
                conn.close()  # the group broke while this worker was joining: it joins the restarted leader
                return
            taken = rank in self.members
            if not taken:
                self.members[rank] = conn
                if not self.formed and len(self.members) == self.size - 1:
                    self.formed = True
                    log(f"group formed: {self.size - 1} worker(s) joined epoch {self.epoch}")
        if taken:
            # Rank `rank` holds a live connection: this JOIN is not from its worker (whose restart would have closed
            # that connection first), or comes too early; either way it changes nothing.
            log(f"ignored a JOIN for rank {rank} from {address[0]}: that rank's connection is alive")
            conn.close()
            return
        log(f"worker rank {rank} joined from {address[0]}")
        try:
            conn.sendall(f"EPOCH {self.epoch}\n".encode())
            conn.settimeout(self.timeout)
            while not self.broken.is_set():
                line = read_line(conn, buffer)
                if line is None:
                    raise ConnectionError("closed")
                if line == "PING":
                    conn.sendall(b"PONG\n")
        except (OSError, ConnectionError) as exc:
            with self.lock:
                current = self.members.get(rank) is conn
                formed = self.formed
                if current:
                    del self.members[rank]  # the rank is free again: its worker's next JOIN is taken
            if current and formed:
                self._break(f"worker rank {rank} ({address[0]}) went away ({exc or 'silent'})")
            elif current:
                log(f"worker rank {rank} left before the group formed; waiting for it to come back")

def follow(host: str, port: int, rank: int, wait: float, interval: float, timeout: float,
           child: Child, key: bytes = b"") -> tuple[int, str]:
    """Join the leader's watch and hold the connection; returns (exit code, reason) when the group breaks."""
    start = time.monotonic()
    while True:
        if child.process.poll() is not None:
            return -1, ""
        try:
            conn = socket.create_connection((host, port), timeout=5)
            break
        except OSError as exc:
            if time.monotonic() - start >= wait:
                return 1, f"the leader's group watch at {host}:{port} did not answer within {wait:.0f}s ({exc})"
            time.sleep(min(interval, 2.0))
    buffer = bytearray()
    try:
        conn.settimeout(timeout)
        if key:
            nonce = read_line(conn, buffer) or ""
            if not nonce.startswith("NONCE "):
                return BROKEN, f"the leader at {host}:{port} sent no nonce (is it of this release, with the key?)"
            conn.sendall(f"JOIN {rank} {join_proof(key, nonce.split(' ', 1)[1], rank)}\n".encode())
        else:
            conn.sendall(f"JOIN {rank}\n".encode())
        epoch = read_line(conn, buffer)
        if epoch is None or not epoch.startswith("EPOCH "):
            return BROKEN, f"the leader at {host}:{port} closed the watch before answering"
        log(f"joined leader {host}:{port} as rank {rank}, {epoch.lower()}")
        selector = selectors.DefaultSelector()
        selector.register(conn, selectors.EVENT_READ)
        last_pong = time.monotonic()
        while True:
            if child.process.poll() is not None:
                return -1, ""
            conn.sendall(b"PING\n")
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0:
                if child.process.poll() is not None:
                    return -1, ""
                if selector.select(min(left, 0.5)):
                    line = read_line(conn, buffer)
                    if line is None:
                        return BROKEN, f"the leader at {host}:{port} went away (connection closed)"
                    if line == "PONG":
                        last_pong = time.monotonic()
                    elif line.startswith("EPOCH ") and line != epoch:
                        return BROKEN, f"the leader at {host}:{port} restarted ({line.lower()})"
            if time.monotonic() - last_pong > timeout:
                return BROKEN, f"the leader at {host}:{port} stopped answering for {timeout:.0f}s"
    except TimeoutError:
        return BROKEN, f"the leader at {host}:{port} stopped answering for {timeout:.0f}s"
    except OSError as exc:
        return BROKEN, f"the leader at {host}:{port} went away ({exc})"
    finally:
        conn.close()


def arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    if "--" not in argv:
        raise SystemExit("usage: group_watch.py lead|follow ... -- COMMAND...")
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["lead", "follow"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--size", type=int, default=0, help="nodes in the group (lead)")
    parser.add_argument("--allow-dns", action="append", default=[], help="a worker's DNS name (lead; repeatable)")
    parser.add_argument("--host", default="", help="the leader's address (follow)")
    parser.add_argument("--rank", type=int, default=0, help="this worker's node rank (follow)")
    parser.add_argument("--wait", type=float, default=900, help="seconds to reach the leader (follow)")
    parser.add_argument("--interval", type=float, default=5)
    parser.add_argument("--timeout", type=float, default=60)
    args = parser.parse_args(argv[:cut])
    command = argv[cut + 1:]
    if not command:
        raise SystemExit("group_watch.py: no COMMAND after --")
    if args.mode == "lead" and args.size < 2:
        raise SystemExit("group_watch.py lead: --size must be 2 or more")
    if args.mode == "follow" and (not args.host or args.rank < 1):
        raise SystemExit("group_watch.py follow: --host and a --rank of 1 or more are required")
    return args, command


def main(argv: list[str] | None = None) -> int:
    args, command = arguments(sys.argv[1:] if argv is None else argv)
    key = os.environ.get(KEY_ENV, "").strip().encode()
    if not key:
        log(f"${KEY_ENV} is empty: a JOIN proves no key (any process on a worker's node may take its rank)")
    if args.mode == "lead":
        leader = Leader(args.port, args.size, args.timeout, tuple(args.allow_dns), key)
        threading.Thread(target=leader.serve, daemon=True).start()
        log(f"leading a group of {args.size} on port {args.port}, epoch {leader.epoch}")
        child = Child(command)
        child.forward_signals()
        while child.process.poll() is None and not leader.broken.wait(0.5):
            pass
        if leader.broken.is_set() and child.process.poll() is None:
            log(f"{leader.reason}: restarting this group")
            child.stop()
            return BROKEN
        leader.server.close()
        return child.process.returncode
    child = Child(command)
    child.forward_signals()
    code, reason = follow(args.host, args.port, args.rank, args.wait, args.interval, args.timeout, child, key)
    if code == -1:
        return child.process.returncode
    log(f"{reason}: restarting this pod to rejoin the group")
    child.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
