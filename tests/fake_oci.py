"""A fake OCI Compute Management API on 127.0.0.1, for the real `oci` SDK to talk to over a real socket.

It checks every request's signature against the test key (draft-cavage HTTP signatures, as the SDK signs), keeps
instance configurations and cluster networks in memory with a lifecycle that moves PROVISIONING -> RUNNING over a
few polls (and TERMINATING -> TERMINATED), honours opc-retry-token, serves pages, and injects faults on demand.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PREFIX = "/20160918"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaatesttenancy"
USER = "ocid1.user.oc1..aaaaaaaatestuser"


@dataclass
class Fault:
    """Answer the next `times` requests matching `method` and `path` (a regex) with an error."""

    method: str
    path: str
    status: int
    code: str
    message: str
    times: int = 1


@dataclass
class FakeOci:
    """State and knobs of the fake service."""

    polls_to_running: int = 2
    polls_to_terminated: int = 1
    page_size: int = 2
    faults: list[Fault] = field(default_factory=list)
    instance_configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    cluster_networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    public_key: Any = None
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, path: str, status: int, code: str, message: str, times: int = 1) -> None:
        self.faults.append(Fault(method, path, status, code, message, times))

    def new_id(self, kind: str) -> str:
        return f"ocid1.{kind}.oc1.iad.fake{next(self._ids):04d}"

    def add_network(self, name: str, compartment: str, *, tags: dict[str, str], state: str = "RUNNING") -> str:
        """A cluster network made outside helm-rdma (or by an earlier run)."""
        net_id = self.new_id("clusternetwork")
        self.cluster_networks[net_id] = {
            "id": net_id, "compartmentId": compartment, "displayName": name, "freeformTags": tags,
            "lifecycleState": state, "timeCreated": _now(), "instancePools": [], "size": 0,
        }
        return net_id


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def make_key(directory: Path) -> tuple[Path, Any, str]:
    """A fresh RSA key pair: the private key file, the public key and its fingerprint."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "oci_api_key.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                       serialization.NoEncryption()))
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der).hexdigest()
    fingerprint = ":".join(digest[i:i + 2] for i in range(0, 32, 2))
    return path, key.public_key(), fingerprint


def write_config(directory: Path, key_path: Path, fingerprint: str, profile: str = "DEFAULT") -> Path:
    config = directory / "config"
    config.write_text(f"[{profile}]\nuser={USER}\nfingerprint={fingerprint}\ntenancy={TENANCY}\n"
                      f"region=us-ashburn-1\nkey_file={key_path}\n")
    return config


class Handler(BaseHTTPRequestHandler):
    fake: FakeOci

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("opc-request-id", f"fake-{len(self.fake.calls):04d}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, {"code": code, "message": message})

    def _verified(self, method: str, body: bytes) -> bool:
        auth = self.headers.get("authorization", "")
        params = dict(re.findall(r'(\w+)="([^"]*)"', auth))
        if not auth.startswith("Signature ") or "signature" not in params:
            return False
        if params.get("keyId", "").split("/")[:2] != [TENANCY, USER]:
            return False
        lines = []
        for name in params.get("headers", "").split():
            if name == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {self.path}")
            else:
                value = self.headers.get(name)
                if value is None:
                    return False
                lines.append(f"{name}: {value}")
        required = {"date", "(request-target)", "host"}
        if method == "POST":
            required |= {"content-length", "content-type", "x-content-sha256"}
            digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
            if self.headers.get("x-content-sha256") != digest:
                return False
        if not required <= set(params.get("headers", "").split()):
            return False
        try:
            self.fake.public_key.verify(base64.b64decode(params["signature"]), "\n".join(lines).encode(),
                                        padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return False
        return True

    def _handle(self, method: str) -> None:
        fake = self.fake
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        with fake.lock:
            fake.calls.append((method, path))
            if not self._verified(method, body):
                fake.rejected.append(f"{method} {path}")
                self._error(401, "NotAuthenticated", "The required information to complete authentication was "
                                                     "not provided or was incorrect.")
                return
            for fault in fake.faults:
                if fault.times > 0 and fault.method == method and re.fullmatch(fault.path, path):
                    fault.times -= 1
                    self._error(fault.status, fault.code, fault.message)
                    return
            if not path.startswith(PREFIX):
                self._error(404, "NotFound", path)
                return
            route = path[len(PREFIX):]
            payload = json.loads(body) if body else {}
            self._route(method, route, query, payload)

    def _route(self, method: str, route: str, query: dict[str, str], payload: dict[str, Any]) -> None:
        fake = self.fake
        token = self.headers.get("opc-retry-token")
        if method == "POST" and route in ("/instanceConfigurations", "/clusterNetworks"):
            if token and token in fake.tokens:
                store = fake.instance_configurations if route == "/instanceConfigurations" else fake.cluster_networks
                self._send(200, store[fake.tokens[token]])
                return
            if route == "/instanceConfigurations":
                item = {**payload, "id": fake.new_id("instanceconfiguration"), "timeCreated": _now()}
                fake.instance_configurations[item["id"]] = item
            else:
                pools = payload.get("instancePools", [])
                for pool in pools:
                    if pool["instanceConfigurationId"] not in fake.instance_configurations:
                        self._error(404, "NotAuthorizedOrNotFound", "instance configuration not found")
                        return
                net_id = fake.new_id("clusternetwork")
                item = {
                    "id": net_id, "compartmentId": payload["compartmentId"], "displayName": payload["displayName"],
                    "freeformTags": payload.get("freeformTags", {}), "lifecycleState": "PROVISIONING",
                    "timeCreated": _now(), "placementConfiguration": payload.get("placementConfiguration"),
                    "instancePools": [{"id": fake.new_id("instancepool"), "compartmentId": payload["compartmentId"],
                                       "instanceConfigurationId": p["instanceConfigurationId"], "size": p["size"],
                                       "lifecycleState": "PROVISIONING"} for p in pools],
                    "size": sum(p["size"] for p in pools),
                }
                fake.cluster_networks[net_id] = item
            if token:
                fake.tokens[token] = item["id"]
            self._send(200, item)
            return
        match = re.fullmatch(r"/(instanceConfigurations|clusterNetworks)(?:/([^/]+))?(/instances)?", route)
        if not match:
            self._error(404, "NotFound", route)
            return
        kind, item_id, instances = match.groups()
        store = fake.instance_configurations if kind == "instanceConfigurations" else fake.cluster_networks
        if item_id is None:
            items = [i for i in store.values() if i["compartmentId"] == query.get("compartmentId")]
            if "displayName" in query:
                items = [i for i in items if i.get("displayName") == query["displayName"]]
            if "lifecycleState" in query:
                items = [i for i in items if i.get("lifecycleState") == query["lifecycleState"]]
            self._page(items, query)
            return
        if item_id not in store:
            self._error(404, "NotAuthorizedOrNotFound", f"{item_id} not found")
            return
        item = store[item_id]
        if kind == "clusterNetworks" and method == "GET" and not instances:
            self._advance(item)
        if instances:
            running = item["lifecycleState"] == "RUNNING"
            up = item["size"] if running else min(fake.polls.get(item_id, 0), max(item["size"] - 1, 0))
            listed = [{"id": f"{item_id}-instance-{n}", "compartmentId": item["compartmentId"],
                       "availabilityDomain": "AD-1", "region": "iad", "shape": "BM.GPU", "timeCreated": _now(),
                       "state": "Running" if n < up else "Provisioning"} for n in range(item["size"])]
            self._page(listed, query)
        elif method == "GET":
            self._send(200, item)
        elif method == "DELETE" and kind == "clusterNetworks":
            item["lifecycleState"] = "TERMINATING"
            fake.polls[item_id] = 0
            self._send(204, None)
        elif method == "DELETE":
            in_use = [n for n in fake.cluster_networks.values() if n["lifecycleState"] != "TERMINATED"
                      and any(p["instanceConfigurationId"] == item_id for p in n["instancePools"])]
            if in_use:
                self._error(409, "Conflict", "instance configuration is in use by an instance pool")
                return
            del store[item_id]
            self._send(204, None)

    def _advance(self, item: dict[str, Any]) -> None:
        fake = self.fake
        seen = fake.polls.get(item["id"], 0) + 1
        fake.polls[item["id"]] = seen
        if item["lifecycleState"] == "PROVISIONING" and seen >= fake.polls_to_running:
            item["lifecycleState"] = "RUNNING"
        elif item["lifecycleState"] == "TERMINATING" and seen >= fake.polls_to_terminated:
            item["lifecycleState"] = "TERMINATED"

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> None:
        start = int(query.get("page", 0))
        size = self.fake.page_size
        chunk = items[start:start + size]
        headers = {"opc-next-page": str(start + size)} if start + size < len(items) else {}
        self._send(200, chunk, headers)


@contextmanager
def serve(public_key: Any, **knobs: Any) -> Iterator[FakeOci]:
    """Run the fake on 127.0.0.1 (a random port) for the duration of the block."""
    fake = FakeOci(public_key=public_key, **knobs)
    handler = type("BoundHandler", (Handler,), {"fake": fake})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
