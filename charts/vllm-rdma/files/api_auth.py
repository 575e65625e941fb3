#!/usr/bin/env python3
"""helm-rdma API key gate: every request to the leader's API carries the key, whatever its path.

vLLM's own --api-key / VLLM_API_KEY guards only paths under /v1 (vllm/entrypoints/openai/api_server.py: the
authentication middleware passes any other path on); /invocations, /tokenize, /pooling, /score, /rerank, /pause and
others answer without it (docs.vllm.ai, usage/security). Under hostNetwork the API listens on the node's VCN address.
So vLLM listens on 127.0.0.1 only, and this gate listens on the API port:

    api_auth.py --listen PORT --upstream 127.0.0.1:PORT [--open /health --open /metrics]

It reads each request's head, answers 401 unless it holds `Authorization: Bearer $VLLM_API_KEY` (the --open paths,
which leak nothing, excepted: probes and Prometheus use them), and otherwise passes the request to vLLM with
`Connection: close`, so that every request on a connection is checked, and pipes both ways until vLLM closes
(streamed completions included). Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import os
import sys

HEAD_LIMIT = 64 * 1024
HOP_BY_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade"}


def log(message: str) -> None:
    print(f"helm-rdma api gate: {message}", file=sys.stderr, flush=True)


def allowed(head: bytes, key: bytes, open_paths: frozenset[bytes]) -> tuple[bool, bytes]:
    """Whether a request head may pass, and its path."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        return False, b""
    path = parts[1].split(b"?", 1)[0]
    if parts[0] in (b"GET", b"HEAD") and path in open_paths:
        return True, path
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"authorization":
            return hmac.compare_digest(value.strip(), b"Bearer " + key), path
    return False, path


def rewrite(head: bytes) -> bytes:
    """The request head with hop-by-hop headers dropped and `Connection: close` added."""
    lines = head.split(b"\r\n")
    kept = [lines[0]] + [line for line in lines[1:] if line and line.partition(b":")[0].strip().lower()
                         not in HOP_BY_HOP]
    return b"\r\n".join([*kept, b"Connection: close"]) + b"\r\n\r\n"


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.write_eof() if writer.can_write_eof() else writer.close()
        except (OSError, RuntimeError):
            pass


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, key: bytes, upstream: tuple[str, int],
                 open_paths: frozenset[bytes]) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
    except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    ok, _ = allowed(head[:-4], key, open_paths)
    if not ok:
        body = b'{"error": "Unauthorized: send Authorization: Bearer <the API key>"}'
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nWWW-Authenticate: Bearer\r\n"
                     b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        try:
            await writer.drain()
        finally:
            writer.close()
        return
    try:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
    except OSError as exc:
        body = b'{"error": "the model server is not up yet"}'
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body)
        log(f"upstream {upstream[0]}:{upstream[1]}: {exc}")
        writer.close()
        return
    up_writer.write(rewrite(head[:-4]))
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    for w in (writer, up_writer):
        w.close()


async def serve(port: int, upstream: tuple[str, int], key: bytes, open_paths: frozenset[bytes]) -> None:
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, key=key, upstream=upstream, open_paths=open_paths), host=None, port=port,
        limit=HEAD_LIMIT, reuse_address=True)
    log(f"listening on port {port}, passing authenticated requests to {upstream[0]}:{upstream[1]}; open without the "
        f"key: {', '.join(p.decode() for p in sorted(open_paths)) or 'nothing'}")
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of vLLM")
    parser.add_argument("--open", action="append", default=[], help="a path served without the key (GET/HEAD)")
    args = parser.parse_args(argv)
    key = os.environ.get("VLLM_API_KEY", "")
    if not key:
        log("error: VLLM_API_KEY is empty: name a Secret with the key in api.keySecret")
        return 1
    host, _, port = args.upstream.rpartition(":")
    try:
        asyncio.run(serve(args.listen, (host, int(port)), key.encode(), frozenset(p.encode() for p in args.open)))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
