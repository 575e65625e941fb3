"""Two models generated, packaged and pushed to a real OCI registry do not collide, and what the registry serves
renders exactly as the local chart does.

The registry is Debian's `docker-registry` (the CNCF distribution registry), which scripts/test-tools installs where
apt-get and root exist (CI); it listens on 127.0.0.1 only, with its storage in the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from helm_rdma.commands.generate import generate

from .conftest import helm_path
from .rendering import request

REGISTRY = shutil.which("docker-registry")
pytestmark = pytest.mark.skipif(
    REGISTRY is None, reason="docker-registry is not installed: scripts/test-tools installs Debian's package where "
                             "apt-get runs as root (as in CI); elsewhere `apt-get install docker-registry`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a registry of our own, stopped at the end."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    assert REGISTRY is not None
    proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(root / "log", "w"))  # noqa: SIM115 (closed with the process)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"docker-registry did not start: {(root / 'log').read_text()[-2000:]}")
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def helm(name: str, *args: str, home: Path) -> str:
    env = {**os.environ, "HELM_CACHE_HOME": str(home / "cache"), "HELM_CONFIG_HOME": str(home / "config"),
           "HELM_DATA_HOME": str(home / "data")}
    done = subprocess.run([str(helm_path(name)), *args], capture_output=True, text=True, env=env)
    assert done.returncode == 0, f"helm {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_two_models_pushed_to_one_registry_do_not_collide_and_render_as_local(registry: str,
                                                                            tmp_path: Path) -> None:
    charts = {}
    for name, sets in (("llama405b", ()), ("qwen3-235b", ()), ("llama405b", ("vllm.maxModelLen=32768",))):
        out = tmp_path / f"{name}-{len(sets)}"
        result = generate(request(release=name, sets=sets), output=out / name, package=True)
        assert result.package is not None
        charts[(name, sets)] = result
        helm("helm4", "push", str(result.package.path), f"oci://{registry}/charts", "--plain-http", home=tmp_path)
    tags = {name: json.loads(urllib.request.urlopen(f"http://{registry}/v2/charts/{name}/tags/list").read())["tags"]
            for name in ("llama405b", "qwen3-235b")}
    versions = {(r.package.name, r.package.version) for r in charts.values() if r.package}
    assert len(versions) == 3
    assert sorted(tags["llama405b"]) == sorted(v.replace("+", "_") for n, v in versions if n == "llama405b")
    assert len(tags["qwen3-235b"]) == 1

    for result in charts.values():
        assert result.package is not None
        name, version = result.package.name, result.package.version
        local = helm("helm4", "template", name, str(result.path), "--namespace", "llm", home=tmp_path)
        for binary in ("helm3", "helm4"):
            remote = helm(binary, "template", name, f"oci://{registry}/charts/{name}", "--version", version,
                          "--plain-http", "--namespace", "llm", home=tmp_path)
            assert remote == local, f"{binary}: {name} {version} from the registry renders differently"
