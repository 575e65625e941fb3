"""helm-rdma API key check, inside vLLM's own process: every request to the leader's API carries the key, whatever its
path, but GET/HEAD of /health and /metrics (probes and Prometheus; they leak nothing) and a browser's CORS preflight.

vLLM's own key (--api-key / VLLM_API_KEY) guards only paths under /v1, /v2, /inference and /cohere
(vllm/entrypoints/serve/middleware/authenticate.py, GUARDED_PREFIX); /invocations, /tokenize, /pause and others
answer without it. Under hostNetwork the API listens on the node's VCN address. So the chart starts

    vllm serve ... --middleware api_auth.ApiKeyMiddleware

with this file's directory on PYTHONPATH. vLLM imports the dotted path with importlib and adds a class with
`app.add_middleware` (vllm/entrypoints/serve/middleware/register.py, init_entrypoints_middleware); Starlette builds it
as ApiKeyMiddleware(app), after vLLM's own middleware, so it runs first. It sees every HTTP request and WebSocket
handshake after uvicorn parsed it: no request head is parsed here.

A CORS preflight (an OPTIONS request with Origin and Access-Control-Request-Method: a browser sends no credentials
with it, Fetch standard 4.8 "CORS-preflight fetch") passes without the key: vLLM always adds Starlette's CORSMiddleware
(vllm/entrypoints/openai/api_server.py, build_app, `allow_origins=args.allowed_origins`; --allowed-origins defaults to
[], vllm 0.33.0 entrypoints/openai/cli_args.py), before the --middleware classes, so inside this one. It answers
exactly those requests itself (starlette middleware/cors.py, CORSMiddleware.__call__: `origin is not None and method
== "OPTIONS" and "access-control-request-method" in headers` -> preflight_response, the app never called), with 400
for an origin not in --allowed-origins: a preflight reaches no route of vLLM, and the request that follows it needs
the key as any other.

The key is read once, when the module is imported, from $HELM_RDMA_API_KEY (the chart sets it from api.keySecret), and
kept as its sha256 only. An empty key fails the import: vLLM imports every --middleware while it builds its app, before
it listens, so vLLM stops at startup with that message instead of answering 500 to every request until its startup
probe expires (Starlette constructs a middleware class only on the first request, and uvicorn's lifespan="auto" only
logs that failure). Workers (vllm serve --headless) build no app and never import this module. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

KEY_ENV = "HELM_RDMA_API_KEY"
OPEN_PATHS = frozenset({"/health", "/metrics"})
OPEN_METHODS = frozenset({"GET", "HEAD"})
# ASGI: header names are lower-cased in the scope.
PREFLIGHT_HEADERS = frozenset({b"origin", b"access-control-request-method"})
# RFC 9110 11.6.1 / RFC 6750 3: a 401 names the scheme it wants.
DENIAL_HEADERS = [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]
DENIAL_BODY = json.dumps({"error": "Unauthorized: send Authorization: Bearer <the API key>"}).encode()
# RFC 6455 7.4.1: 1008, a message that violates the endpoint's policy.
POLICY_VIOLATION = 1008

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def bearer_token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The token of the request's one `Authorization: Bearer TOKEN` header; None without exactly one such header.

    RFC 7235 2.1: `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, the scheme case-insensitive.
    """
    values = [value for name, value in headers if name.lower() == b"authorization"]
    if len(values) != 1:
        return None
    scheme, _, token = values[0].strip(b" \t").partition(b" ")
    if scheme.lower() != b"bearer":
        return None
    return token.lstrip(b" ")


def cors_preflight(scope: Scope) -> bool:
    """Whether an HTTP request is a CORS preflight, as Starlette's CORSMiddleware tells one (see the module's doc)."""
    return scope["method"] == "OPTIONS" and PREFLIGHT_HEADERS <= {name for name, _ in scope["headers"]}


def key_digest() -> bytes:
    """The sha256 of $HELM_RDMA_API_KEY.

    Raises:
        RuntimeError: The variable is empty (or only blanks): no request could ever be let through.
    """
    # Blanks around the key are not part of it: a Secret made with --from-file usually ends in a newline, which no
    # HTTP client can send in a header (group_watch.py reads the same Secret the same way).
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        raise RuntimeError(f"helm-rdma api_auth: ${KEY_ENV} is empty: put a key in the Secret named in "
                           "api.keySecret (its key api.keySecret.key), e.g. kubectl create secret generic NAME "
                           "--from-literal=api-key=$(openssl rand -hex 32)")
    return hashlib.sha256(key.encode()).digest()


KEY_DIGEST = key_digest()


class ApiKeyMiddleware:
    """A pure ASGI middleware that answers 401 (HTTP) or refuses the handshake (WebSocket) without the API key."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._digest = KEY_DIGEST

    def allowed(self, scope: Scope) -> bool:
        """Whether a request may reach vLLM: an open path, a CORS preflight (for vLLM's CORSMiddleware), or the key."""
        path = scope["path"].removeprefix(scope.get("root_path", ""))
        if scope["type"] == "http" and (scope["method"] in OPEN_METHODS and path in OPEN_PATHS
                                        or cors_preflight(scope)):
            return True
        token = bearer_token(scope["headers"])
        return token is not None and hmac.compare_digest(hashlib.sha256(token).digest(), self._digest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed(scope):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            await send({"type": "http.response.start", "status": 401,
                        "headers": [*DENIAL_HEADERS, (b"content-length", str(len(DENIAL_BODY)).encode())]})
            await send({"type": "http.response.body", "body": DENIAL_BODY})
        else:
            await self.refuse_websocket(scope, receive, send)

    @staticmethod
    async def refuse_websocket(scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse a WebSocket handshake: a 401 where the server offers the denial response extension, else a close
        before accept, which the server answers with 403 (ASGI spec, WebSocket: websocket.close)."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", "status": 401, "headers": DENIAL_HEADERS})
            await send({"type": "websocket.http.response.body", "body": DENIAL_BODY})
        else:
            await send({"type": "websocket.close", "code": POLICY_VIOLATION})
