"""What an editor shows in a values file: the YAML language server behind VS Code's YAML extension (Red Hat's
yaml-language-server, pinned in tests/editor/package-lock.json and installed by scripts/test-tools), driven over
stdio as an editor drives it, with the schema modeline the README gives for override files."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.chart.overrideschema import OVERRIDE_SCHEMA
from helm_rdma.checks.doctor import value_findings
from helm_rdma.datafiles import chart_dir
from helm_rdma.resolve.values import resolve
from helm_rdma.resolve.valuesources import ValueSources

from .rendering import request

EDITOR = Path(__file__).parent / "editor"
SERVER = EDITOR / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
# The modeline the README gives for a values file beside the generated chart's directory, deploy/llama405b.
README = (Path(__file__).parents[1] / "README.md").read_text()
[MODELINE] = [line + "\n" for line in README.splitlines() if line.startswith("# yaml-language-server:")
              and OVERRIDE_SCHEMA in line]
CHART = "llama405b"
# A values file as people write one: the three keys they change.
THREE_KEYS = """\
image:
  tag: v0.17.1
vllm:
  maxModelLen: 65536
api:
  keySecret:
    name: vllm-api-key
"""


class Server:
    """yaml-language-server over stdio: LSP's JSON-RPC messages, each after a Content-Length header (the LSP
    specification, "Base Protocol"). Answers the requests the server makes of its client."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen([node, str(SERVER), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self._id = 0
        self.results: dict[int, Any] = {}
        self.published: dict[str, list[Any]] = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while (line := out.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not line:
                return
            self.messages.put(json.loads(out.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        self.proc.stdin.flush()

    def call(self, method: str, params: dict[str, Any], *, timeout: float = 15.0) -> Any:
        """Send a request and return its result."""
        self._id += 1
        self.send({"id": self._id, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        while self._id not in self.results:
            if not self._pump(deadline):
                raise AssertionError(f"no answer to {method} within {timeout} s")
        return self.results.pop(self._id)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"method": method, "params": params})

    def diagnostics(self, uris: set[str], *, timeout: float = 15.0, settle: float = 0.5) -> dict[str, list[Any]]:
        """The last diagnostics published for each of ``uris``, once every one has some and ``settle`` seconds pass
        without more."""
        deadline = time.monotonic() + timeout
        while not uris <= set(self.published):
            if not self._pump(deadline):
                raise AssertionError(f"no diagnostics within {timeout} s for {sorted(uris - set(self.published))}")
        while self._pump(time.monotonic() + settle):
            pass
        return {uri: self.published[uri] for uri in uris}

    def _pump(self, until: float) -> bool:
        """Handle one message from the server, or return False when none came before ``until``."""
        try:
            message = self.messages.get(timeout=max(until - time.monotonic(), 0.01))
        except queue.Empty:
            return False
        if "id" in message and "method" in message:  # a request of the server's: configuration, registration
            items = message.get("params", {}).get("items", [])
            result = [SETTINGS["yaml"]] * len(items) if message["method"] == "workspace/configuration" else None
            self.send({"id": message["id"], "result": result})
        elif "id" in message:
            self.results[message["id"]] = message.get("result", message.get("error"))
        elif message.get("method") == "textDocument/publishDiagnostics":
            self.published[message["params"]["uri"]] = message["params"]["diagnostics"]
        return True

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


SETTINGS: dict[str, Any] = {"yaml": {"validate": True, "hover": True, "completion": True, "schemas": {},
                                     "schemaStore": {"enable": False}}}


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None or not SERVER.is_file():
        pytest.fail("yaml-language-server is not installed: run scripts/test-tools (`make test` does), which "
                    "installs Node.js and npm with apt-get where they are missing and runs `npm ci` in tests/editor")
    srv = Server(node)
    srv.call("initialize", {"processId": None, "rootUri": None, "capabilities": {
        "workspace": {"configuration": True}, "textDocument": {"publishDiagnostics": {}}}})
    srv.notify("initialized", {})
    srv.notify("workspace/didChangeConfiguration", {"settings": SETTINGS})
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def shown(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Diagnostics of each document below, each a values file beside a copy of the generated chart's schemas, and
    under "uris" the URI of each."""
    root = tmp_path_factory.mktemp("deploy")
    (root / CHART).mkdir()
    for name in ("values.schema.json", OVERRIDE_SCHEMA):  # charts/vllm-rdma is what generate writes for llama405b
        shutil.copy(chart_dir() / name, root / CHART / name)
    docs = {
        "three-keys": MODELINE + THREE_KEYS,
        "three-keys-full-schema": f"# yaml-language-server: $schema={CHART}/values.schema.json\n" + THREE_KEYS,
        "typo": MODELINE + "vllm:\n  maxModelLenn: 65536\n",
        "wrong-type": MODELINE + "vllm:\n  maxModelLen: long\n",
        "lookalike": MODELINE + "nccl:\n  settings:\n    NCCL_TIMEOUT: 1800\n",
    }
    uris = {}
    for name, text in docs.items():
        path = root / f"values-{name}.yaml"
        path.write_text(text)
        uris[name] = path.as_uri()
        server.notify("textDocument/didOpen", {"textDocument": {"uri": uris[name], "languageId": "yaml",
                                                                "version": 1, "text": text}})
    found = server.diagnostics(set(uris.values()))
    return {name: found[uri] for name, uri in uris.items()} | {"uris": uris}


def messages(diagnostics: list[dict[str, Any]]) -> list[str]:
    return [d["message"] for d in diagnostics]


def test_a_three_key_override_file_pointed_at_the_override_schema_shows_nothing(shown: dict[str, Any]) -> None:
    assert shown["three-keys"] == []


def test_the_charts_own_schema_still_demands_every_key(shown: dict[str, Any]) -> None:
    """values.schema.json, which helm checks the merged values against, is as strict as before: the same file
    pointed at it shows a "Missing property" for each key it leaves out (baseValidator.js:993, from `required`)."""
    missing = [m for m in messages(shown["three-keys-full-schema"]) if m.startswith("Missing property")]
    assert len(missing) > 20, messages(shown["three-keys-full-schema"])


def test_a_typo_is_shown_on_its_key(shown: dict[str, Any]) -> None:
    [d] = shown["typo"]
    assert d["message"] == "Property maxModelLenn is not allowed."
    assert d["range"]["start"]["line"] == 2


def test_a_wrong_type_is_shown_with_the_type_expected(shown: dict[str, Any]) -> None:
    [d] = shown["wrong-type"]
    assert "integer" in d["message"] and d["range"]["start"]["line"] == 2, d


def test_an_nccl_lookalike_is_shown_in_doctors_words(shown: dict[str, Any], tmp_path: Path) -> None:
    """The values schema gives the name a ``deprecationMessage``, which yaml-language-server reports on the key (1.25.0,
    lib/umd/languageservice/parser/schemaValidation/baseValidator.js:648-656), as an error like a typo, and which
    helm's validators ignore, leaving the refusal to the chart's validateValues (tests/test_rules.py)."""
    f = tmp_path / "values.yaml"
    f.write_text("nccl:\n  settings:\n    NCCL_TIMEOUT: 1800\n")
    [finding] = [x for x in value_findings(resolve(request(sources=ValueSources(files=(f,))))) if "NCCL_TIMEOUT" in x.key]
    [d] = shown["lookalike"]
    assert d["message"] == f"{finding.message}; fix: {finding.fix}"
    assert d["message"].startswith("NCCL_TIMEOUT is not an NCCL variable")
    assert d["range"]["start"]["line"] == 3 and d["severity"] == shown["typo"][0]["severity"] == 1  # Error


def test_hovering_a_key_of_an_override_file_shows_its_description(server: Server, shown: dict[str, Any]) -> None:
    lines = THREE_KEYS.splitlines()
    line = 1 + lines.index("  maxModelLen: 65536")  # after the modeline
    hover = server.call("textDocument/hover", {"textDocument": {"uri": shown["uris"]["three-keys"]},
                                               "position": {"line": line, "character": 4}})
    schema = json.loads((chart_dir() / OVERRIDE_SCHEMA).read_text())
    described = schema["properties"]["vllm"]["properties"]["maxModelLen"]["description"]
    assert described[:40] in json.dumps(hover), hover
