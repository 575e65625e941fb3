"""A local stand-in for the Hugging Face Hub, enough for the real `huggingface_hub` client (HF_ENDPOINT=its URL):
model info with file sizes, the recursive tree listing, and file downloads with HEAD metadata and Range resumes
(`hf_hub_download` and `model_info` as the planner uses them, plain HTTP as files/fetch_model.py does). Files are bytes
in memory, or (for the benchmark's repositories of several GB) files on disk, streamed from there.

The answers follow the Hub's HTTP contract as huggingface_hub reads it: `X-Repo-Commit`, `ETag` / `X-Linked-Etag`,
`X-Linked-Size` on `HEAD /{repo}/resolve/{revision}/{path}` (huggingface_hub file_download.py,
get_hf_file_metadata); 206 with Content-Range for a Range request (http_get's resume); `X-Error-Code: GatedRepo`
with 401/403, `RepoNotFound` with 404 and `RevisionNotFound` with 404 for a revision the repository does not have
(huggingface_hub utils/_http.py, hf_raise_for_status).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse


@functools.lru_cache(maxsize=4096)
def _file_sha256(path: Path, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Repo:
    files: dict[str, bytes]
    sha: str = "0123456789abcdef0123456789abcdef01234567"
    gated: bool = False
    lfs: tuple[str, ...] = (".safetensors", ".bin", ".pth", ".pt")
    disk: dict[str, Path] = field(default_factory=dict)  # files served from disk (their sha256 read once)
    stated_sha256: dict[str, str] = field(default_factory=dict)  # listed instead of the real one (huge sparse files)
    revisions: tuple[str, ...] = ("main",)  # besides the commit sha itself
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # older commits' files, by commit sha

    def at(self, revision: str) -> Repo:
        """The repository as of REVISION: an older commit's files, or as it is now."""
        if revision not in self.commits:
            return self
        return Repo(files=self.commits[revision], sha=revision, gated=self.gated, lfs=self.lfs)

    def names(self) -> list[str]:
        return sorted({*self.files, *self.disk})

    def size(self, path: str) -> int:
        return self.disk[path].stat().st_size if path in self.disk else len(self.files[path])

    def is_lfs(self, path: str) -> bool:
        return path.endswith(self.lfs)

    def etag(self, path: str) -> str:
        """The Hub's ETag: an LFS file's sha256 (the listing's lfs.sha256), else the git blob's sha1."""
        if path in self.stated_sha256:
            return self.stated_sha256[path]
        if path in self.disk:
            return _file_sha256(self.disk[path], self.disk[path].stat().st_mtime_ns)
        return hashlib.sha256(self.files[path]).hexdigest() if self.is_lfs(path) else \
            hashlib.sha1(self.files[path]).hexdigest()

    def oid(self, path: str) -> str:
        return hashlib.sha1(self.etag(path).encode()).hexdigest() if path in self.disk else \
            hashlib.sha1(self.files[path]).hexdigest()


@dataclass
class Hub:
    """The stand-in's state: repositories, the requests it answered, and an optional throttle (bytes/second)."""

    repos: dict[str, Repo] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range header)
    throttle: float | None = None
    token: str | None = None  # gated repos answer only this bearer token
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0  # body bytes of file downloads sent

    def count(self, n: int) -> None:
        with self.lock:
            self.sent += n

    def served(self, method: str, prefix: str = "") -> list[tuple[str, str, str]]:
        with self.lock:
            return [r for r in self.requests if r[0] == method and r[1].startswith(prefix)]


def _handler(hub: Hub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  content_length: int | None = None) -> None:
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
            self.end_headers()
            if self.command != "HEAD":
                self._write(body)

        def _write(self, body: bytes) -> None:
            if self.path.split("?")[0].count("/resolve/"):
                hub.count(len(body))
            if hub.throttle is None:
                self.wfile.write(body)
                return
            step = 64 * 1024
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                self.wfile.flush()
                time.sleep(step / hub.throttle)

        def _error(self, status: int, code: str, message: str) -> None:
            body = json.dumps({"error": message}).encode()
            self._send(status, body, {"Content-Type": "application/json", "X-Error-Code": code,
                                      "X-Error-Message": message})

        def _repo(self, repo_id: str, revision: str = "main") -> Repo | None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                self._error(404, "RepoNotFound", "Repository not found")
                return None
            if repo.gated and self.headers.get("Authorization") != f"Bearer {hub.token}":
                self._error(401, "GatedRepo", "Access to model is restricted. You must have access to it.")
                return None
            if revision not in (*repo.revisions, repo.sha, *repo.commits):
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return None
            return repo.at(revision)

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            path = unquote(urlparse(self.path).path)
            with hub.lock:
                hub.requests.append((self.command, path, self.headers.get("Range", "")))
            m = re.match(r"^/api/models/([^/]+/[^/]+)/revision/([^/]+)$", path)
            if m:
                return self._info(m.group(1), m.group(2))
            m = re.match(r"^/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?$", path)
            if m:
                return self._tree(m.group(1), (m.group(3) or "").strip("/"))
            m = re.match(r"^/api/models/([^/]+/[^/]+)$", path)
            if m:
                return self._info(m.group(1))
            m = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", path)
            if m:
                return self._file(m.group(1), m.group(3), m.group(2))
            self._error(404, "EntryNotFound", f"no route for {path}")

        def _info(self, repo_id: str, revision: str = "main") -> None:
            repo = self._repo(repo_id, revision)
            if repo is None:
                return
            siblings = [{"rfilename": p, "size": repo.size(p), "blobId": repo.oid(p),
                         **({"lfs": {"size": repo.size(p), "sha256": repo.etag(p), "pointerSize": 134}}
                            if repo.is_lfs(p) else {})} for p in repo.names()]
            body = {"_id": repo_id, "id": repo_id, "modelId": repo_id, "sha": repo.sha, "private": False,
                    "gated": "manual" if repo.gated else False, "disabled": False, "downloads": 0, "likes": 0,
                    "tags": [], "siblings": siblings, "lastModified": "2026-01-01T00:00:00.000Z",
                    "createdAt": "2026-01-01T00:00:00.000Z"}
            self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})

        def _tree(self, repo_id: str, prefix: str) -> None:
            repo = self._repo(repo_id)
            if repo is None:
                return
            entries = []
            for p in repo.names():
                if prefix and not p.startswith(prefix + "/"):
                    continue
                entry: dict[str, Any] = {"type": "file", "path": p, "size": repo.size(p), "oid": repo.oid(p)}
                if repo.is_lfs(p):
                    entry["lfs"] = {"oid": repo.etag(p), "size": repo.size(p), "pointerSize": 134}
                entries.append(entry)
            self._send(200, json.dumps(entries).encode(), {"Content-Type": "application/json"})

        def _file(self, repo_id: str, name: str, revision: str = "main") -> None:
            repo = self._repo(repo_id, revision)
            if repo is None:
                return
            if name not in repo.files and name not in repo.disk:
                self._error(404, "EntryNotFound", f"{name} does not exist")
                return
            size = repo.size(name)
            headers = {"X-Repo-Commit": repo.sha, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
            etag = f'"{repo.etag(name)}"'
            if repo.is_lfs(name):
                headers.update({"X-Linked-Etag": etag, "X-Linked-Size": str(size), "ETag": etag})
            else:
                headers["ETag"] = etag
            wanted = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            start, end, status = 0, size - 1, 200
            if wanted and self.command == "GET":
                start = int(wanted.group(1))
                end = int(wanted.group(2)) if wanted.group(2) else size - 1
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                status = 206
            if name in repo.disk:
                return self._send_disk(status, repo.disk[name], start, end, headers)
            data = repo.files[name]
            if status == 206:
                self._send(206, data[start:end + 1], headers)
                return
            self._send(200, data, headers, content_length=len(data))

        def _send_disk(self, status: int, path: Path, start: int, end: int, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(end + 1 - start))
            self.end_headers()
            if self.command == "HEAD":
                return
            with path.open("rb") as f:
                f.seek(start)
                left = end + 1 - start
                while left > 0:
                    chunk = f.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self._write(chunk)
                    left -= len(chunk)

    return Handler


class HubServer:
    """The stand-in on 127.0.0.1, on a thread: `with HubServer(hub) as url: ...`."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
