"""A fake OCI API on 127.0.0.1 (Compute Management, Compute images, instances, VNIC attachments and console
histories, Virtual Network VNICs, subnets, security lists and NSG security rules, Container Engine), for the real
`oci` SDK to talk to over a real socket.

It checks every request's signature against the test key (draft-cavage HTTP signatures, as the SDK signs), keeps
instance configurations, cluster networks and OKE clusters in memory with a lifecycle that moves PROVISIONING or
SCALING -> RUNNING over a few polls (and TERMINATING -> TERMINATED), serves pages, and injects faults on demand.

Retry tokens follow OCI's rules (FACTS.md): the same token with the same body answers the first answer again (as it
was then, even for a resource terminated since); the same token with another body is a 409. With
``reject_tokens_of_deleted`` a token whose resource was deleted or terminated is a 409 too (OCI "can invalidate"
such tokens).

An instance pool holds real instances (an id, a fault domain, a creation time), spread evenly over three fault
domains as they are launched. A smaller size through UpdateInstancePool or UpdateClusterNetwork terminates in the
order Oracle documents ("Updating the Size of an Instance Pool", docs.oracle.com/iaas/Content/Compute/Tasks/
updatinginstancepool_topic-update-instance-pool-size.htm: "the number of instances is balanced across availability
domains, and then balanced across fault domains. Finally, within a fault domain, the oldest instance is terminated
first"); DetachInstancePoolInstance (POST /instancePools/ID/actions/detachInstance) removes exactly the instance
named, with the size decremented and the instance terminated when asked. ``terminated`` lists what went, in order.
Every cluster network has an ETag (a GET answers it; any change makes a new one) and an update that carries an
If-Match of another ETag is refused with 412, as OCI does.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import socket
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

CORE = "/20160918"
CONTAINER_ENGINE = "/20180222"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaatesttenancy"
USER = "ocid1.user.oc1..aaaaaaaatestuser"
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfakefakefake\n-----END CERTIFICATE-----\n"
CA_B64 = base64.b64encode(CA_PEM).decode()


@dataclass
class Fault:
    """Answer the next `times` requests matching `method` and `path` (a regex) with an error, or (kind "reset")
    carry them out and then close the connection without an answer."""

    method: str
    path: str
    status: int
    code: str
    message: str
    times: int = 1
    kind: str = "error"


@dataclass
class FakeOci:
    """State and knobs of the fake service."""

    polls_to_running: int = 2
    polls_to_terminated: int = 1
    page_size: int = 2
    reject_tokens_of_deleted: bool = False
    faults: list[Fault] = field(default_factory=list)
    instance_configurations: dict[str, dict[str, Any]] = field(default_factory=dict)
    cluster_networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    clusters: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_images: set[str] = field(default_factory=set)
    terminated: list[str] = field(default_factory=list)  # instance ids, in the order the fake terminated them
    etags: dict[str, int] = field(default_factory=dict)  # cluster network id -> version
    consoles: dict[str, str] = field(default_factory=dict)  # what each instance printed; "*" for every other one
    console_histories: dict[str, dict[str, Any]] = field(default_factory=dict)
    instance_records: dict[str, dict[str, Any]] = field(default_factory=dict)  # GetInstance's answers
    vnic_attachments: list[dict[str, Any]] = field(default_factory=list)
    vnics: dict[str, dict[str, Any]] = field(default_factory=dict)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)  # GetSubnet's answers
    security_lists: dict[str, dict[str, Any]] = field(default_factory=dict)  # GetSecurityList's answers
    nsg_rules: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # NSG OCID -> its security rules
    calls: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, int] = field(default_factory=dict)
    create_barrier: threading.Barrier | None = None
    update_barrier: threading.Barrier | None = None  # the next PUTs of cluster networks meet here, once
    refusals: list[tuple[str, str, int]] = field(default_factory=list)  # (method, path, status) of each error
    public_key: Any = None
    url: str = ""
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, method: str, path: str, status: int, code: str, message: str, times: int = 1) -> None:
        self.faults.append(Fault(method, path, status, code, message, times))

    def reset_after(self, method: str, path: str, times: int = 1) -> None:
        """Carry out the next matching requests, then drop the connection without answering."""
        self.faults.append(Fault(method, path, 0, "", "", times, kind="reset"))

    def new_id(self, kind: str) -> str:
        return f"ocid1.{kind}.oc1.iad.fake{next(self._ids):04d}"

    def add_network(self, name: str, compartment: str, *, tags: dict[str, str], state: str = "RUNNING",
                    size: int = 2, config_id: str = "") -> str:
        """A cluster network made outside helm-rdma (or by an earlier run)."""
        net_id = self.new_id("clusternetwork")
        pool = {"id": self.new_id("instancepool"), "compartmentId": compartment, "size": size,
                "instanceConfigurationId": config_id or self.new_id("instanceconfiguration"),
                "lifecycleState": state, "availabilityDomains": ["Uocm:US-ASHBURN-AD-1"]}
        self.launch(pool, size)
        self.cluster_networks[net_id] = {
            "id": net_id, "compartmentId": compartment, "displayName": name, "freeformTags": tags,
            "lifecycleState": state, "timeCreated": _now(), "timeUpdated": _now(), "instancePools": [pool],
        }
        return net_id

    def add_cluster(self, *, cni: str = "FLANNEL_OVERLAY", kind: str = "ENHANCED_CLUSTER",
                    private_endpoint: str = "10.0.0.10:6443", version: str = "v1.31.1") -> str:
        """An OKE cluster for the Container Engine API to describe."""
        cluster_id = self.new_id("cluster")
        self.clusters[cluster_id] = {
            "id": cluster_id, "name": "oke", "compartmentId": "ocid1.compartment.oc1..aaaaaaaatest",
            "vcnId": "ocid1.vcn.oc1..v", "kubernetesVersion": version, "lifecycleState": "ACTIVE", "type": kind,
            "endpoints": {"privateEndpoint": private_endpoint, "kubernetes": None},
            "clusterPodNetworkOptions": [{"cniType": cni}],
        }
        return cluster_id

    def add_subnet(self, cidr: str, *ingress: list[dict[str, Any]]) -> str:
        """A subnet with one security list per list of ingress rules (the API's IngressSecurityRule JSON)."""
        lists = []
        for rules in ingress:
            ocid = self.new_id("securitylist")
            self.security_lists[ocid] = {"id": ocid, "compartmentId": "ocid1.compartment.oc1..net",
                                         "vcnId": "ocid1.vcn.oc1..v", "displayName": ocid, "lifecycleState": "AVAILABLE",
                                         "ingressSecurityRules": rules, "egressSecurityRules": [],
                                         "timeCreated": _now()}
            lists.append(ocid)
        subnet = self.new_id("subnet")
        self.subnets[subnet] = {"id": subnet, "compartmentId": "ocid1.compartment.oc1..net", "vcnId": "ocid1.vcn.oc1..v",
                                "cidrBlock": cidr, "securityListIds": lists, "lifecycleState": "AVAILABLE",
                                "displayName": subnet, "timeCreated": _now()}
        return subnet

    def add_nsg(self, *rules: dict[str, Any]) -> str:
        """An NSG with these security rules (the API's SecurityRule JSON; an id is given to each, and a source
        "SELF" becomes the NSG's own OCID)."""
        ocid = self.new_id("networksecuritygroup")
        self.nsg_rules[ocid] = [{"id": f"{index:06X}", "isValid": True, **rule,
                                 **({"source": ocid} if rule.get("source") == "SELF" else {})}
                                for index, rule in enumerate(rules)]
        return ocid

    def add_instance(self, compartment: str, *nsg_ids: list[str], detached: tuple[str, ...] = (),
                     subnet: str = "ocid1.subnet.oc1..s", ocid: str = "") -> str:
        """An instance with one attached VNIC per list of NSG OCIDs (the first its primary), all in ``subnet``, and a
        VNIC attachment that is DETACHED for each of ``detached`` (NSG OCIDs of a VNIC no longer attached)."""
        ocid = ocid or self.new_id("instance")
        self.instance_records[ocid] = {"id": ocid, "compartmentId": compartment, "availabilityDomain": "AD-1",
                                "region": "iad", "shape": "BM.GPU.H100.8", "lifecycleState": "RUNNING",
                                "displayName": ocid, "timeCreated": _now()}
        vnics = [(list(n), "ATTACHED") for n in nsg_ids] + [([d], "DETACHED") for d in detached]
        for index, (nsgs, state) in enumerate(vnics):
            self.attach_vnic(ocid, compartment, subnet=subnet, nsgs=nsgs, primary=index == 0, state=state)
        return ocid

    def attach_vnic(self, instance: str, compartment: str, *, subnet: str, nsgs: list[str], primary: bool = False,
                    state: str = "ATTACHED") -> str:
        """A VNIC in ``subnet`` carrying ``nsgs``, attached to ``instance`` (``state`` its attachment's state)."""
        vnic = self.new_id("vnic")
        self.vnics[vnic] = {"id": vnic, "compartmentId": compartment, "availabilityDomain": "AD-1",
                            "lifecycleState": "AVAILABLE", "nsgIds": nsgs, "isPrimary": primary,
                            "subnetId": subnet, "timeCreated": _now()}
        self.vnic_attachments.append({"id": self.new_id("vnicattachment"), "instanceId": instance, "vnicId": vnic,
                                      "compartmentId": compartment, "availabilityDomain": "AD-1",
                                      "subnetId": subnet, "lifecycleState": state, "timeCreated": _now()})
        return vnic

    def nsg_members(self, nsg: str) -> list[dict[str, Any]]:
        """ListNetworkSecurityGroupVnics' items: each VNIC carrying ``nsg``, with the instance it is attached to (a
        VNIC whose attachment is DETACHED is gone: OCI deletes a secondary VNIC it detaches)."""
        attached = {a["vnicId"]: a["instanceId"] for a in self.vnic_attachments if a["lifecycleState"] == "ATTACHED"}
        gone = {a["vnicId"] for a in self.vnic_attachments} - set(attached)
        return [{"vnicId": v["id"], "resourceId": attached.get(v["id"]), "timeAssociated": v["timeCreated"]}
                for v in self.vnics.values() if nsg in (v.get("nsgIds") or []) and v["id"] not in gone]

    def network(self) -> dict[str, Any]:
        """The one live cluster network (the tests' usual case)."""
        [live] = [n for n in self.cluster_networks.values() if n["lifecycleState"] != "TERMINATED"]
        return live

    def pool_size(self, net_id: str) -> int:
        return int(self.cluster_networks[net_id]["instancePools"][0]["size"])

    def instances(self, net_id: str) -> list[dict[str, Any]]:
        """The instances of the network's pool, oldest first."""
        return list(self.cluster_networks[net_id]["instancePools"][0]["_instances"])

    def launch(self, pool: dict[str, Any], count: int) -> None:
        """Add ``count`` instances to ``pool``, each in the fault domain that has the fewest (OCI spreads a pool's
        instances evenly over its fault domains)."""
        members = pool.setdefault("_instances", [])
        for _ in range(count):
            held = {fd: sum(1 for i in members if i["faultDomain"] == fd) for fd in FAULT_DOMAINS}
            domain = min(FAULT_DOMAINS, key=lambda fd: held[fd])
            members.append({"id": self.new_id("instance"), "faultDomain": domain, "timeCreated": _tick()})
            if pool.get("_subnet"):  # a network placed in a subnet: its instances get the configuration's VNIC
                launch = self.instance_configurations.get(pool["instanceConfigurationId"], {})
                vnic = launch.get("instanceDetails", {}).get("launchDetails", {}).get("createVnicDetails", {})
                self.add_instance(pool["compartmentId"], list(vnic.get("nsgIds") or []), subnet=pool["_subnet"],
                                  ocid=members[-1]["id"])

    def shrink_by_size(self, pool: dict[str, Any], size: int) -> None:
        """Terminate instances until ``size`` remain, in Oracle's documented order: from the fault domain that holds
        the most (balanced across fault domains; one availability domain here), within it the oldest first."""
        members = pool["_instances"]
        while len(members) > size:
            held = {fd: [i for i in members if i["faultDomain"] == fd] for fd in FAULT_DOMAINS}
            fullest = max(len(v) for v in held.values())
            # among equally full fault domains, the one whose oldest instance is oldest
            candidates = [min(v, key=lambda i: i["timeCreated"]) for v in held.values() if len(v) == fullest]
            victim = min(candidates, key=lambda i: i["timeCreated"])
            members.remove(victim)
            self.terminated.append(victim["id"])

    def touch(self, net_id: str) -> None:
        """A change to the network: a new ETag."""
        self.etags[net_id] = self.etags.get(net_id, 0) + 1

    def etag(self, net_id: str) -> str:
        return f'"{net_id}-v{self.etags.get(net_id, 0)}"'


FAULT_DOMAINS = ("FAULT-DOMAIN-1", "FAULT-DOMAIN-2", "FAULT-DOMAIN-3")
_TICKS = itertools.count()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _tick() -> str:
    """A creation time later than every earlier one (launches within one request are ordered too)."""
    base = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()
    return datetime.fromtimestamp(base + next(_TICKS), timezone.utc).isoformat().replace("+00:00", "Z")


def _public(item: dict[str, Any]) -> Any:
    """An item as the API shows it: without the fake's own bookkeeping (keys that start with _)."""
    if isinstance(item, dict):
        return {k: _public(v) for k, v in item.items() if not k.startswith("_")}
    if isinstance(item, list):
        return [_public(v) for v in item]
    return item


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


def write_config(directory: Path, key_path: Path | str, fingerprint: str, profile: str = "DEFAULT") -> Path:
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

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        data = b"" if body is None else body.encode() if isinstance(body, str) else json.dumps(_public(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("opc-request-id", f"fake-{len(self.fake.calls):04d}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self.fake.refusals.append((self.command, urlsplit(self.path).path, status))
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
        if method in ("POST", "PUT"):
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
        if fake.create_barrier is not None and method == "POST" and path == f"{CORE}/clusterNetworks":
            fake.create_barrier.wait(10)  # let concurrent creates meet here, then take them one at a time
        barrier = fake.update_barrier
        if barrier is not None and method == "PUT" and path.startswith(f"{CORE}/clusterNetworks/"):
            barrier.wait(10)  # once: the PUTs that meet here were sent together; a later one (a re-read's) goes alone
            fake.update_barrier = None
        with fake.lock:
            fake.calls.append((method, path))
            if not self._verified(method, body):
                fake.rejected.append(f"{method} {path}")
                self._error(401, "NotAuthenticated", "The required information to complete authentication was "
                                                     "not provided or was incorrect.")
                return
            reset = False
            for fault in fake.faults:
                if fault.times > 0 and fault.method == method and re.fullmatch(fault.path, path):
                    fault.times -= 1
                    if fault.kind == "reset":
                        reset = True
                        break
                    self._error(fault.status, fault.code, fault.message)
                    return
            if reset:
                self.wfile = _Discard()  # carry the request out, but let no answer reach the client
                self.close_connection = True
            payload = json.loads(body) if body else {}
            if path.startswith(CONTAINER_ENGINE):
                self._container_engine(method, path[len(CONTAINER_ENGINE):])
            elif path.startswith(CORE):
                self._core(method, path[len(CORE):], query, payload)
            else:
                self._error(404, "NotFound", path)

    def _container_engine(self, method: str, route: str) -> None:
        match = re.fullmatch(r"/clusters/([^/]+)(/kubeconfig/content)?", route)
        cluster = self.fake.clusters.get(match.group(1)) if match else None
        if cluster is None:
            self._error(404, "NotAuthorizedOrNotFound", f"{route} not found")
        elif match and match.group(2) and method == "POST":
            server = f"https://{cluster['endpoints']['privateEndpoint']}"
            kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
                          "clusters": [{"name": "c", "cluster": {"server": server,
                                                                 "certificate-authority-data": CA_B64}}],
                          "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                          "users": [{"name": "u", "user": {"exec": {"command": "oci"}}}]}
            self._send(200, json.dumps(kubeconfig), content_type="application/x-yaml")
        else:
            self._send(200, cluster)

    def _retried(self, method: str, route: str, payload: dict[str, Any]) -> bool:
        """Answer a request whose retry token was seen before; False for a new token (or none)."""
        fake, token = self.fake, self.headers.get("opc-retry-token")
        if not token or token not in fake.tokens:
            return False
        seen = fake.tokens[token]
        if seen["request"] != (method, route, payload):
            self._error(409, "Conflict", "The retry token was already used for a different request")
        elif seen.get("invalid"):
            self._error(409, "Conflict", "The retry token is no longer valid: its resource was deleted")
        else:
            self._send(200, seen["answer"])
        return True

    def _remember(self, method: str, route: str, payload: dict[str, Any], item: dict[str, Any]) -> None:
        token = self.headers.get("opc-retry-token")
        if token:
            self.fake.tokens[token] = {"request": (method, route, payload), "answer": copy.deepcopy(item),
                                       "id": item["id"]}

    def _gone(self, item_id: str) -> None:
        if self.fake.reject_tokens_of_deleted:
            for seen in self.fake.tokens.values():
                if seen["id"] == item_id:
                    seen["invalid"] = True

    def _core(self, method: str, route: str, query: dict[str, str], payload: dict[str, Any]) -> None:
        fake = self.fake
        if method in ("POST", "PUT") and self._retried(method, route, payload):
            return
        if method == "POST" and route == "/instanceConfigurations":
            item = {**payload, "id": fake.new_id("instanceconfiguration"), "timeCreated": _now()}
            fake.instance_configurations[item["id"]] = item
            self._remember(method, route, payload, item)
            self._send(200, item)
            return
        if method == "POST" and route == "/clusterNetworks":
            self._create_network(payload)
            return
        if route.startswith("/instanceConsoleHistories"):
            self._console_history(method, route, payload)
            return
        match = re.fullmatch(r"/images/([^/]+)", route)
        if match:
            if match.group(1) in fake.missing_images:
                self._error(404, "NotAuthorizedOrNotFound", "image not found")
            else:
                self._send(200, {"id": match.group(1), "compartmentId": None, "operatingSystem": "Canonical Ubuntu",
                                 "operatingSystemVersion": "22.04", "lifecycleState": "AVAILABLE"})
            return
        if method == "GET" and self._instance_network(route, query):
            return
        match = re.fullmatch(r"/instancePools/([^/]+)(/actions/detachInstance)?", route)
        if match and method in ("PUT", "POST"):
            nets = [n for n in fake.cluster_networks.values()
                    if any(p["id"] == match.group(1) for p in n["instancePools"])]
            if not nets:
                self._error(404, "NotAuthorizedOrNotFound", "instance pool not found")
                return
            if not self._matches(nets[0]):
                return
            if match.group(2):
                self._detach(nets[0], match.group(1), payload)
                return
            self._resize(nets[0], match.group(1), int(payload["size"]))
            [pool] = [p for p in nets[0]["instancePools"] if p["id"] == match.group(1)]
            self._remember(method, route, payload, pool)
            self._send(200, pool)
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
            members = [i for p in item["instancePools"] for i in p.get("_instances", [])]
            up = len(members) if running else min(fake.polls.get(item_id, 0), max(len(members) - 1, 0))
            listed = [{"id": i["id"], "compartmentId": item["compartmentId"], "availabilityDomain": "AD-1",
                       "faultDomain": i["faultDomain"], "region": "iad", "shape": "BM.GPU",
                       "timeCreated": i["timeCreated"], "state": "Running" if n < up else "Provisioning"}
                      for n, i in enumerate(members)]
            self._page(listed, query)
        elif method == "GET":
            self._send(200, item, {"etag": fake.etag(item_id)} if kind == "clusterNetworks" else None)
        elif method == "PUT" and kind == "clusterNetworks":
            if not self._matches(item):
                return
            if item["lifecycleState"] != "RUNNING":
                self._error(409, "IncorrectState", f"cluster network is {item['lifecycleState']}")
                return
            for change in payload.get("instancePools", []):
                self._resize(item, change["id"], int(change["size"]))
            self._remember(method, route, payload, item)
            self._send(200, item)
        elif method == "DELETE" and kind == "clusterNetworks":
            item["lifecycleState"] = "TERMINATING"
            fake.touch(item_id)
            fake.polls[item_id] = 0
            self._gone(item_id)
            self._send(204, None)
        elif method == "DELETE":
            in_use = [n for n in fake.cluster_networks.values() if n["lifecycleState"] != "TERMINATED"
                      and any(p["instanceConfigurationId"] == item_id for p in n["instancePools"])]
            if in_use:
                self._error(409, "Conflict", "instance configuration is in use by an instance pool")
                return
            del store[item_id]
            self._gone(item_id)
            self._send(204, None)

    def _instance_network(self, route: str, query: dict[str, str]) -> bool:
        """GET /instances/ID, /vnicAttachments?compartmentId=C&instanceId=I (paged), /vnics/ID, /subnets/ID,
        /securityLists/ID, /networkSecurityGroups/ID/securityRules?direction=D and /networkSecurityGroups/ID/vnics
        (both paged); False for another route."""
        fake = self.fake
        if route == "/vnicAttachments":
            self._page([a for a in fake.vnic_attachments if a["compartmentId"] == query.get("compartmentId")
                        and a["instanceId"] == query.get("instanceId", a["instanceId"])], query)
            return True
        match = re.fullmatch(r"/networkSecurityGroups/([^/]+)/vnics", route)
        if match:
            if match.group(1) not in fake.nsg_rules:
                self._error(404, "NotAuthorizedOrNotFound", f"{route} not found")
            else:
                self._page(fake.nsg_members(match.group(1)), query)
            return True
        match = re.fullmatch(r"/networkSecurityGroups/([^/]+)/securityRules", route)
        if match:
            if match.group(1) not in fake.nsg_rules:
                self._error(404, "NotAuthorizedOrNotFound", f"{route} not found")
            else:
                self._page([r for r in fake.nsg_rules[match.group(1)]
                            if r["direction"] == query.get("direction", r["direction"])], query)
            return True
        match = re.fullmatch(r"/(instances|vnics|subnets|securityLists)/([^/]+)", route)
        if not match:
            return False
        store = {"instances": fake.instance_records, "vnics": fake.vnics, "subnets": fake.subnets,
                 "securityLists": fake.security_lists}[match.group(1)]
        if match.group(2) in store:
            self._send(200, store[match.group(2)])
        else:
            self._error(404, "NotAuthorizedOrNotFound", f"{route} not found")
        return True

    def _console_history(self, method: str, route: str, payload: dict[str, Any]) -> None:
        """CaptureConsoleHistory (REQUESTED, then SUCCEEDED at the next GET), GetConsoleHistory, its /data (the
        instance's console text), DeleteConsoleHistory."""
        fake = self.fake
        match = re.fullmatch(r"/instanceConsoleHistories(?:/([^/]+))?(/data)?", route)
        item_id, data = match.groups() if match else (None, None)
        if method == "POST" and item_id is None:
            item = {"id": fake.new_id("consolehistory"), "instanceId": payload["instanceId"],
                    "compartmentId": "ocid1.compartment.oc1..aaaaaaaatest", "availabilityDomain": "AD-1",
                    "displayName": payload.get("displayName"), "lifecycleState": "REQUESTED", "timeCreated": _now()}
            fake.console_histories[item["id"]] = item
            self._send(200, item)
            return
        item = fake.console_histories.get(item_id or "")
        if item is None:
            self._error(404, "NotAuthorizedOrNotFound", f"{route} not found")
        elif data:
            text = fake.consoles.get(item["instanceId"], fake.consoles.get("*", ""))
            self._send(200, text, content_type="text/plain")
        elif method == "GET":
            item["lifecycleState"] = "SUCCEEDED"
            self._send(200, item)
        elif method == "DELETE":
            del fake.console_histories[item["id"]]
            self._send(204, None)
        else:
            self._error(404, "NotFound", route)

    def _create_network(self, payload: dict[str, Any]) -> None:
        fake = self.fake
        pools = payload.get("instancePools", [])
        for pool in pools:
            if pool["instanceConfigurationId"] not in fake.instance_configurations:
                self._error(404, "NotAuthorizedOrNotFound", "instance configuration not found")
                return
        net_id = fake.new_id("clusternetwork")
        ad = payload["placementConfiguration"]["availabilityDomain"]
        item = {
            "id": net_id, "compartmentId": payload["compartmentId"], "displayName": payload["displayName"],
            "freeformTags": payload.get("freeformTags", {}), "lifecycleState": "PROVISIONING",
            "timeCreated": _now(), "timeUpdated": _now(), "placementConfiguration": payload["placementConfiguration"],
            "instancePools": [{"id": fake.new_id("instancepool"), "compartmentId": payload["compartmentId"],
                               "instanceConfigurationId": p["instanceConfigurationId"], "size": p["size"],
                               "lifecycleState": "PROVISIONING", "availabilityDomains": [ad],
                               "_subnet": payload["placementConfiguration"].get("primaryVnicSubnets", {})
                               .get("subnetId")} for p in pools],
        }
        for pool in item["instancePools"]:
            fake.launch(pool, int(pool["size"]))
        fake.cluster_networks[net_id] = item
        self._remember("POST", "/clusterNetworks", payload, item)
        self._send(200, item)

    def _matches(self, network: dict[str, Any]) -> bool:
        """Whether an If-Match the request carries is the network's ETag (else answer 412, as OCI does)."""
        wanted = self.headers.get("if-match")
        if wanted is None or wanted == self.fake.etag(network["id"]):
            return True
        self._error(412, "PreconditionFailed", "The resource has changed since the ETag of If-Match was read")
        return False

    def _resize(self, network: dict[str, Any], pool_id: str, size: int) -> None:
        for pool in network["instancePools"]:
            if pool["id"] == pool_id:
                if size > len(pool["_instances"]):
                    self.fake.launch(pool, size - len(pool["_instances"]))
                else:
                    self.fake.shrink_by_size(pool, size)
                pool["size"] = size
        network["lifecycleState"] = "SCALING"
        network["timeUpdated"] = _now()
        self.fake.polls[network["id"]] = 0
        self.fake.touch(network["id"])

    def _detach(self, network: dict[str, Any], pool_id: str, payload: dict[str, Any]) -> None:
        """DetachInstancePoolInstance: exactly that instance leaves the pool; with isDecrementSize the size drops
        by one (else the pool launches a replacement), with isAutoTerminate the instance is terminated."""
        [pool] = [p for p in network["instancePools"] if p["id"] == pool_id]
        if network["lifecycleState"] != "RUNNING":
            self._error(409, "IncorrectState", f"cluster network is {network['lifecycleState']}")
            return
        found = [i for i in pool["_instances"] if i["id"] == payload.get("instanceId")]
        if not found:
            self._error(404, "NotAuthorizedOrNotFound", f"instance {payload.get('instanceId')} is not in {pool_id}")
            return
        pool["_instances"].remove(found[0])
        if payload.get("isDecrementSize"):
            pool["size"] -= 1
        else:
            self.fake.launch(pool, 1)
        if payload.get("isAutoTerminate"):
            self.fake.terminated.append(found[0]["id"])
        network["lifecycleState"] = "SCALING"
        network["timeUpdated"] = _now()
        self.fake.polls[network["id"]] = 0
        self.fake.touch(network["id"])
        self._send(202, None, {"opc-work-request-id": self.fake.new_id("workrequest")})

    def _advance(self, item: dict[str, Any]) -> None:
        fake = self.fake
        seen = fake.polls.get(item["id"], 0) + 1
        fake.polls[item["id"]] = seen
        if item["lifecycleState"] in ("PROVISIONING", "SCALING") and seen >= fake.polls_to_running:
            item["lifecycleState"] = "RUNNING"
            fake.touch(item["id"])
        elif item["lifecycleState"] == "TERMINATING" and seen >= fake.polls_to_terminated:
            item["lifecycleState"] = "TERMINATED"
            fake.touch(item["id"])

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> None:
        start = int(query.get("page", 0))
        size = self.fake.page_size
        chunk = items[start:start + size]
        headers = {"opc-next-page": str(start + size)} if start + size < len(items) else {}
        self._send(200, chunk, headers)


class _Discard:
    """A write end that drops everything (the answer of a request whose connection the fake resets)."""

    closed = False

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass


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


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def refused_endpoint() -> str:
    """An endpoint where nothing listens (a port just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"
