"""The API key check (charts/vllm-rdma/files/api_auth.py) inside a real uvicorn, with each of its HTTP parsers, around
a Starlette app wrapped as vLLM wraps it: every path needs the key but GET/HEAD of /health and /metrics, because vLLM's
own key guards only /v1, /v2, /inference and /cohere (vllm-project/vllm vllm/entrypoints/serve/middleware/
authenticate.py at baaf6e9c, GUARDED_PREFIX line 11).

vLLM loads `--middleware MODULE.CLASS` with importlib by its dotted path and, for a class, calls app.add_middleware
(vllm/entrypoints/serve/middleware/register.py at 41a041c8, lines 65-69: `module_path, object_name =
middleware.rsplit(".", 1)`, `getattr(importlib.import_module(module_path), object_name)`,
`app.add_middleware(imported)`); the served app below does the same with the chart's --middleware argument.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httptools  # noqa: F401  (uvicorn --http httptools needs it: fail here, not as a skip)
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from helm_rdma.datafiles import chart_dir

from .rendering import render, serving_pod_specs

FILES = chart_dir() / "files"
KEY = "0123abcd-key"


def leader() -> dict[str, Any]:
    """The leader's pod spec as the chart renders it (memoized by render): the test serves what the pods run."""
    return next(s for s in serving_pod_specs(render("api.keySecret.name=api-key")) if s["containers"][0].get("ports"))


def middleware() -> str:
    """The chart's --middleware argument."""
    args = leader()["containers"][0]["args"]
    return str(args[args.index("--middleware") + 1])


SERVED_APP = textwrap.dedent('''
    import importlib, inspect, json, os
    from starlette.applications import Starlette
    from starlette.middleware.cors import CORSMiddleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute

    def seen(what):
        with open(os.environ["SEEN"], "a") as f:
            f.write(what + "\\n")

    async def answer(request):
        seen(f"{request.method} {request.url.path}")
        return JSONResponse({"ok": True})

    async def realtime(websocket):
        seen("WS " + websocket.url.path)
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = Starlette(routes=[Route(p, answer, methods=["GET", "POST"])
                            for p in ("/health", "/metrics", "/invocations", "/v1/models", "/pause")]
                    + [WebSocketRoute("/v1/realtime", realtime)])
    # as vllm/entrypoints/openai/api_server.py build_app does before the --middleware classes (--allowed-origins
    # defaults to ["*"], vllm/entrypoints/openai/cli_args.py)
    app.add_middleware(CORSMiddleware, allow_origins=json.loads(os.environ.get("ORIGINS", '["*"]')),
                       allow_methods=["*"], allow_headers=["*"])
    # as vllm/entrypoints/serve/middleware/register.py does with each --middleware (FastAPI inherits
    # add_middleware from Starlette)
    module_path, object_name = os.environ["MIDDLEWARE"].rsplit(".", 1)
    imported = getattr(importlib.import_module(module_path), object_name)
    assert inspect.isclass(imported)
    app.add_middleware(imported)
''')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, port: int, seen: Path) -> None:
        self.port, self.seen_file = port, seen

    def seen(self) -> list[str]:
        return self.seen_file.read_text().splitlines() if self.seen_file.exists() else []

    def raw(self, data: bytes) -> bytes:
        """What the server answers to ``data`` sent as is, until it closes or goes quiet."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=3) as s:
            s.sendall(data)
            received = b""
            try:
                while chunk := s.recv(65536):
                    received += chunk
            except TimeoutError:
                pass
        return received

    def get(self, method: str, path: str, authorization: str | None = None, **headers: str) -> int:
        return int(self.answer(method, path, authorization, **headers).split(b" ", 2)[1])

    def answer(self, method: str, path: str, authorization: str | None = None, **headers: str) -> bytes:
        """The whole answer; ``headers`` as keyword arguments, ``_`` for ``-`` (access_control_request_method)."""
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n"
        if authorization is not None:
            head += f"Authorization: {authorization}\r\n"
        head += "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
        return self.raw((head + "\r\n").encode())


# uvicorn's two HTTP parsers differ on malformed heads (h11 ends a head at a bare LF; httptools answers 400):
# uvicorn 0.55 uvicorn/config.py HTTP_PROTOCOLS (line 52), `--http h11|httptools`.
@pytest.fixture(scope="module", params=["h11", "httptools"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve(request.param, tmp_path_factory.mktemp(f"uvicorn-{request.param}"))


def serve(parser: str, tmp: Path, origins: str = '["*"]') -> Iterator[Server]:
    """uvicorn with ``parser`` serving SERVED_APP (vLLM's CORSMiddleware allowing ``origins``, JSON) from ``tmp``."""
    (tmp / "served_app.py").write_text(SERVED_APP)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{tmp}{os.pathsep}{FILES}", "HELM_RDMA_API_KEY": KEY,
           "MIDDLEWARE": middleware(), "SEEN": str(tmp / "seen"), "ORIGINS": origins}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "served_app:app", "--host", "127.0.0.1", "--port",
                             str(port), "--http", parser, "--ws", "websockets", "--no-access-log"],
                            env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
    yield Server(port, tmp / "seen")
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def fresh(server: Server) -> Server:
    server.seen_file.unlink(missing_ok=True)
    return server


def test_the_chart_loads_the_check_through_vllms_middleware_hook_with_its_directory_on_pythonpath() -> None:
    assert middleware() == "api_auth.ApiKeyMiddleware"
    spec = leader()
    vllm = spec["containers"][0]
    env = {e["name"]: e for e in vllm["env"]}
    assert env["PYTHONPATH"]["value"] == "/opt/helm-rdma"
    assert {"name": "scripts", "mountPath": "/opt/helm-rdma"}.items() <= next(
        m for m in vllm["volumeMounts"] if m["name"] == "scripts").items()
    assert env["HELM_RDMA_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "api-key", "key": "api-key"}
    # vLLM itself holds the Service's port: no second container, no loopback port
    assert [c["name"] for c in spec["containers"]] == ["vllm"]
    assert "--host" not in vllm["args"] and vllm["args"][vllm["args"].index("--port") + 1] == "8000"


@pytest.mark.parametrize("path", ["/v1/models", "/invocations", "/pause"])
def test_every_path_needs_the_key(fresh: Server, path: str) -> None:
    assert fresh.get("POST", path) == 401
    assert fresh.get("POST", path, "Bearer wrong") == 401
    assert fresh.get("POST", path, f"Basic {KEY}") == 401
    assert fresh.get("POST", path, f"Bearer {KEY}x") == 401
    assert fresh.seen() == []
    assert fresh.get("POST", path, f"Bearer {KEY}") == 200
    assert fresh.seen() == [f"POST {path}"]


def test_the_denial_is_json_with_the_scheme_it_wants(fresh: Server) -> None:
    answer = fresh.raw(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401") and b"content-type: application/json" in head.lower()
    assert b"www-authenticate: bearer" in head.lower() and b'"error"' in body


# RFC 7235 2.1: "It uses a case-insensitive token as a means to identify the authentication scheme", and
# `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`. vLLM's own check lowers the scheme too
# (authenticate.py at baaf6e9c, verify_token, line 36).
@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_the_scheme_is_case_insensitive(fresh: Server, scheme: str) -> None:
    assert fresh.get("GET", "/v1/models", f"{scheme} {KEY}") == 200
    assert fresh.get("GET", "/v1/models", f"{scheme}  {KEY}") == 200


def test_health_and_metrics_stay_open_for_probes_and_prometheus(fresh: Server) -> None:
    assert fresh.get("GET", "/health") == 200 and fresh.get("GET", "/metrics") == 200
    assert fresh.get("POST", "/health") == 401  # open means read-only
    assert fresh.get("GET", "/health/../invocations") == 401
    assert fresh.seen() == ["GET /health", "GET /metrics"]


def test_a_bare_lf_smuggled_request_never_reaches_a_guarded_path(fresh: Server) -> None:
    # The bypass of the old proxy: h11 ends the first head at "\n\n" and reads a second, pipelined request (h11 0.16
    # _receivebuffer.py line 44, blank_line_regex = b"\n\r?\n"); httptools refuses the bytes with 400. Both requests pass the
    # middleware, after uvicorn parsed them, so the second needs the key as any other.
    answer = fresh.raw(b"GET /health HTTP/1.1\r\nHost: x\n\nPOST /invocations HTTP/1.1\r\nHost: x\r\n"
                       b"Content-Length: 0\r\n\r\n")
    assert b"HTTP/1.1 401" in answer or b"HTTP/1.1 400" in answer
    assert "POST /invocations" not in fresh.seen()
    assert set(fresh.seen()) <= {"GET /health"}


def test_a_second_request_on_one_connection_is_checked_too(fresh: Server) -> None:
    answer = fresh.raw(f"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n"
                       "POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
    assert answer.count(b"HTTP/1.1 200") == 1 and answer.count(b"HTTP/1.1 401") == 1
    assert fresh.seen() == ["GET /v1/models"]


# vLLM's own authenticate.py checks "http" and "websocket" scopes alike (AuthenticationMiddleware.__call__, line 49);
# a coroutine --middleware would be HTTP-only (register.py lines 70-71, app.middleware("http")). uvicorn offers the
# websocket.http.response extension (ASGI spec, WebSocket Denial Response; uvicorn protocols/websockets/
# websockets_impl.py line 211), so the refusal is a 401.
def test_a_websocket_upgrade_needs_the_key(fresh: Server) -> None:
    url = f"ws://127.0.0.1:{fresh.port}/v1/realtime"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=5).close()
    assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        connect(url, additional_headers={"Authorization": "Bearer wrong"}, open_timeout=5).close()
    assert fresh.seen() == []
    with connect(url, additional_headers={"Authorization": f"bearer {KEY}"}, open_timeout=5) as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "hello"
    assert fresh.seen() == ["WS /v1/realtime"]


# A browser's CORS preflight carries no credentials (Fetch standard, 4.8 CORS-preflight fetch), so with the key
# required it failed and no browser client could call the API. vLLM always installs Starlette's CORSMiddleware
# inside the --middleware classes (vllm/entrypoints/openai/api_server.py build_app; --allowed-origins defaults to
# ["*"]), which answers a preflight itself and never calls a route (starlette 1.x middleware/cors.py,
# CORSMiddleware.__call__, lines 86-89): the check lets exactly those requests through.
def test_a_cors_preflight_is_answered_by_vllms_cors_middleware_without_the_key(fresh: Server) -> None:
    answer = fresh.answer("OPTIONS", "/v1/chat/completions", origin="https://app.example",
                          access_control_request_method="POST", access_control_request_headers="authorization")
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200") and b"access-control-allow-origin: *" in head  # vLLM's default
    assert fresh.seen() == []  # no route ran
    # the request that follows needs the key; an OPTIONS that is no preflight too, and so does one from a page
    assert fresh.get("POST", "/v1/models", origin="https://app.example") == 401
    assert fresh.get("OPTIONS", "/v1/models") == 401
    assert fresh.get("OPTIONS", "/v1/models", origin="https://app.example") == 401
    assert fresh.get("OPTIONS", "/v1/models", access_control_request_method="POST") == 401
    assert fresh.seen() == []


def test_a_cors_preflight_from_an_origin_vllm_does_not_allow_is_refused_by_vllm(tmp_path: Path) -> None:
    for server in serve("h11", tmp_path, origins='["https://ok.example"]'):
        assert server.get("OPTIONS", "/v1/models", origin="https://evil.example",
                          access_control_request_method="POST") == 400  # "Disallowed CORS origin"
        assert server.get("OPTIONS", "/v1/models", origin="https://ok.example",
                          access_control_request_method="POST") == 200
        assert server.seen() == []


def test_without_a_key_vllm_does_not_start_open() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HELM_RDMA_API_KEY"}
    out = subprocess.run([sys.executable, "-c", "import api_auth; api_auth.ApiKeyMiddleware(None)"],
                         env={**env, "PYTHONPATH": str(FILES)}, capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "HELM_RDMA_API_KEY is empty" in out.stderr and "api.keySecret" in out.stderr


@pytest.mark.parametrize("key", ["", "  "])
def test_an_empty_key_stops_the_server_at_startup_before_it_listens(tmp_path: Path, key: str) -> None:
    # vLLM imports each --middleware while it builds its app, before it serves (register.py at 41a041c8, lines
    # 65-69, called from build_app); the served app here imports it at load, as uvicorn loads an app before it
    # listens. A check in __init__ alone ran only when Starlette built the middleware stack on the first request:
    # the server started, and every request got 500 until the startup probe expired.
    (tmp_path / "served_app.py").write_text(SERVED_APP)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{FILES}", "HELM_RDMA_API_KEY": key,
           "MIDDLEWARE": middleware(), "SEEN": str(tmp_path / "seen")}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "served_app:app", "--host", "127.0.0.1", "--port",
                             str(port), "--no-access-log"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(10)
        pytest.fail("the server kept running with an empty key")
    assert proc.returncode != 0
    assert "$HELM_RDMA_API_KEY is empty: put a key in the Secret named in api.keySecret" in stderr


def test_a_key_whose_secret_ends_in_a_newline_is_the_key_without_it() -> None:
    # `kubectl create secret generic NAME --from-file=api-key=FILE` keeps the file's final newline, which no client
    # can send in a header (h11 and httptools refuse it); the group watch reads the same Secret stripped too.
    check = "import api_auth, hashlib; print(api_auth.KEY_DIGEST == hashlib.sha256(b'the-key').digest())"
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "PYTHONPATH": str(FILES), "HELM_RDMA_API_KEY": "the-key\n"})
    assert out.stdout.strip() == "True", out.stderr
