"""`generate --pin-digests` against a registry served on loopback that speaks the registry API as Docker Hub does:
a 401 with a Bearer challenge, an anonymous token from the realm, then the manifest's Docker-Content-Digest
(distribution spec, "Pulling manifests"; Docker's token authentication spec)."""

from __future__ import annotations

import hashlib
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.chart.registry import ImageName, split_name
from helm_rdma.cli import main

TOKEN = "anonymous-pull-token"
VLLM = "sha256:" + hashlib.sha256(b"vllm index").hexdigest()
BODY = b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}'
GUARD = "sha256:" + hashlib.sha256(b"netshoot index").hexdigest()
MANIFESTS = {("vllm/vllm-openai", "v0.33.0"): VLLM, ("library/python", "3.13-alpine"): None,  # None: no header
             ("nicolaka/netshoot", "v0.16"): GUARD}


class FakeRegistry(BaseHTTPRequestHandler):
    requests: list[tuple[str, str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _manifest(self, send_body: bool) -> None:
        url = urllib.parse.urlsplit(self.path)
        FakeRegistry.requests.append((self.command, url.path, self.headers.get("Accept", "")))
        if url.path == "/token":
            scope = urllib.parse.parse_qs(url.query)["scope"][0]
            assert scope.endswith(":pull")
            self._answer(200, json.dumps({"token": TOKEN}).encode(), {"Content-Type": "application/json"})
            return
        repo, _, tag = url.path.removeprefix("/v2/").rpartition("/manifests/")
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            realm = f"http://{self.headers['Host']}/token"
            challenge = f'Bearer realm="{realm}",service="fake",scope="repository:{repo}:pull"'
            self._answer(401, b"", {"WWW-Authenticate": challenge})
            return
        if (repo, tag) not in MANIFESTS:
            self._answer(404, b"", {})
            return
        digest = MANIFESTS[(repo, tag)]
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        if digest:
            headers["Docker-Content-Digest"] = digest
        self._answer(200, BODY if send_body else b"", headers, length=len(BODY))

    def _answer(self, code: int, body: bytes, headers: dict[str, str], length: int | None = None) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802
        self._manifest(send_body=False)

    def do_GET(self) -> None:  # noqa: N802
        self._manifest(send_body=True)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakeRegistry.requests = []
    url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HELM_RDMA_REGISTRY_ENDPOINT", url)
    yield url
    server.shutdown()
    server.server_close()


def test_docker_names_expand_as_docker_expands_them() -> None:
    assert split_name("python") == ImageName("docker.io", "library/python")
    assert split_name("vllm/vllm-openai") == ImageName("docker.io", "vllm/vllm-openai")
    assert split_name("iad.ocir.io/ns/helm-rdma-provisioner") == ImageName("iad.ocir.io", "ns/helm-rdma-provisioner")
    assert split_name("localhost:5000/x") == ImageName("localhost:5000", "x")


def test_generate_pins_every_tag_to_the_digest_the_registry_names(registry: str, tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "c"),
                                    "--pin-digests"])
    assert out.exit_code == 0, out.output
    values = yaml.safe_load((tmp_path / "c" / "values.yaml").read_text())
    assert values["image"]["digest"] == VLLM
    assert values["distributed"]["portGuard"]["image"]["digest"] == GUARD
    assert values["verify"]["tests"]["image"]["digest"] == "sha256:" + hashlib.sha256(BODY).hexdigest()  # hashed GET
    assert f"pinned image docker.io/vllm/vllm-openai:v0.33.0 to {VLLM}" in out.output
    text = " ".join(line.strip().lstrip("#").strip() for line in (tmp_path / "c" / "values.yaml").open())
    assert "Pinned by `helm-rdma generate --pin-digests`: what docker.io/vllm/vllm-openai:v0.33.0 pointed at" in text
    manifests = [r for r in FakeRegistry.requests if "/manifests/" in r[1]]
    assert {r[1] for r in manifests} == {"/v2/vllm/vllm-openai/manifests/v0.33.0",
                                         "/v2/library/python/manifests/3.13-alpine",
                                         "/v2/nicolaka/netshoot/manifests/v0.16"}
    assert all("application/vnd.oci.image.index.v1+json" in r[2] for r in manifests)


def test_a_digest_already_set_is_kept_and_not_asked_for(registry: str, tmp_path: Path) -> None:
    mine = "sha256:" + "d" * 64
    out = CliRunner().invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "c"),
                                    "--pin-digests", "--set", f"image.digest={mine}"])
    assert out.exit_code == 0, out.output
    assert yaml.safe_load((tmp_path / "c" / "values.yaml").read_text())["image"]["digest"] == mine
    assert not [r for r in FakeRegistry.requests if "vllm-openai" in r[1]]


def test_a_tag_the_registry_does_not_know_fails_and_writes_nothing(registry: str, tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "c"),
                                    "--pin-digests", "--set", "image.tag=v9.9.9"])
    assert out.exit_code == 1
    assert ("image: cannot pin docker.io/vllm/vllm-openai:v9.9.9 to a digest: the registry has no such repository or tag "
            "(404)") in out.output
    assert "set image.digest=sha256:... yourself, or leave --pin-digests off" in out.output
    assert not (tmp_path / "c").exists()


def test_an_unreachable_registry_is_a_runtime_failure_naming_the_key(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("HELM_RDMA_REGISTRY_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    out = CliRunner().invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "c"),
                                    "--pin-digests"])
    assert out.exit_code == 1 and "image: cannot pin docker.io/vllm/vllm-openai:v0.33.0" in out.output
    assert "could not be reached" in out.output and not (tmp_path / "c").exists()
