"""The API key gate (charts/vllm-rdma/files/api_auth.py) in front of a stand-in vLLM: every path needs the key
but /health and /metrics, because vLLM's own key guards /v1 only (vllm/entrypoints/openai/api_server.py;
docs.vllm.ai usage/security lists /invocations, /tokenize, /pause and more as open)."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helm_rdma.datafiles import chart_dir

GATE = chart_dir() / "files" / "api_auth.py"
KEY = "0123abcd"


class FakeVllm(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append((self.command, self.path))
        self._answer(b'{"ok": true}')

    def do_POST(self) -> None:  # noqa: N802
        self.seen.append((self.command, self.path))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/v1/completions/stream":  # a streamed answer, in chunks over time
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(3):
                data = f"data: {i}\n\n".encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            return
        self._answer(b'{"choices": []}')

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gate() -> Iterator[int]:
    FakeVllm.seen = []
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), FakeVllm)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(GATE), "--listen", str(port), "--upstream",
                             f"127.0.0.1:{upstream.server_address[1]}", "--open", "/health", "--open", "/metrics"],
                            env={**os.environ, "VLLM_API_KEY": KEY}, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "the gate did not start"
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)
    upstream.shutdown()


def call(port: int, method: str, path: str, key: str | None = None, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/models"), ("POST", "/invocations"), ("POST", "/tokenize"),
                                              ("POST", "/pause"), ("GET", "/docs"), ("POST", "/v1/completions")])
def test_every_path_needs_the_key(gate: int, method: str, path: str) -> None:
    body = b"{}" if method == "POST" else None
    assert call(gate, method, path, body=body)[0] == 401
    assert call(gate, method, path, key="wrong", body=body)[0] == 401
    assert call(gate, method, path, key=KEY, body=body)[0] == 200
    assert FakeVllm.seen == [(method, path)]  # only the request with the key reached vLLM


def test_health_and_metrics_stay_open_for_probes_and_prometheus(gate: int) -> None:
    assert call(gate, "GET", "/health")[0] == 200 and call(gate, "GET", "/metrics")[0] == 200
    assert call(gate, "POST", "/health", body=b"")[0] == 401  # open means read-only


def test_a_streamed_completion_passes_whole(gate: int) -> None:
    status, data = call(gate, "POST", "/v1/completions/stream", key=KEY, body=b"{}")
    assert status == 200 and data == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_a_second_request_on_one_connection_is_not_passed_unchecked(gate: int) -> None:
    with socket.create_connection(("127.0.0.1", gate)) as s:
        s.sendall(f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n"
                  "POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200") == 1
    assert FakeVllm.seen == [("GET", "/v1/models")]  # the gate made it one request per connection
