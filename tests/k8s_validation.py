"""Validating rendered manifests: kubernetes-validate (strict) for built-in kinds, the shared CRDs (../shared/crds)
for LeaderWorkerSets and InferencePools, and the published CRDs kept in tests/crds (their sources in
tests/crds/README.md) for the ServiceMonitor, PrometheusRule, HTTPRoute and KEDA's ScaledObject; every custom
resource also against its CRD's CEL rules (tests/cel_rules.py)."""

from __future__ import annotations

import copy
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from .cel_rules import evaluate

KUBE_VERSIONS = ("1.30.0", "1.35.0")
NOT_BUILT_IN = {"LeaderWorkerSet", "InferencePool", "ServiceMonitor", "PrometheusRule", "HTTPRoute", "ScaledObject"}
# kind -> (CRD file in the shared crds directory, the version the chart writes)
SHARED_CRD_FILES = {
    "LeaderWorkerSet": ("leaderworkerset.x-k8s.io_leaderworkersets.yaml", "v1"),
    "InferencePool": ("inference.networking.k8s.io_inferencepools.yaml", "v1"),
}
CRDS = Path(__file__).parent / "crds"
# kind -> (CRD file in tests/crds, the version the chart writes)
VENDORED_CRDS = {
    "ServiceMonitor": ("monitoring.coreos.com_servicemonitors.yaml", "v1"),
    "PrometheusRule": ("monitoring.coreos.com_prometheusrules.yaml", "v1"),
    "HTTPRoute": ("gateway.networking.k8s.io_httproutes.yaml", "v1"),
    "ScaledObject": ("keda.sh_scaledobjects.yaml", "v1alpha1"),
}


def closed(schema: Any) -> Any:
    """Close every object schema with known properties, as the API server prunes unknown fields: a strict check."""
    if isinstance(schema, dict):
        out = {k: closed(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [closed(v) for v in schema]
    return schema


@cache
def crd_schema(crd_path: Path, version: str = "v1") -> dict[str, Any]:
    """The openAPIV3Schema of one version of a CustomResourceDefinition file."""
    crd = yaml.load(crd_path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    served = next(v for v in crd["spec"]["versions"] if v["name"] == version)
    schema: dict[str, Any] = served["schema"]["openAPIV3Schema"]
    return schema


@cache
def crd_validator(crd_path: Path, version: str = "v1") -> jsonschema.Draft7Validator:
    """The strict (closed) validator of one version of a CustomResourceDefinition file; its CEL rules
    (x-kubernetes-validations) are crd_problems' other half."""
    return jsonschema.Draft7Validator(closed(copy.deepcopy(crd_schema(crd_path, version))))


def crd_problems(doc: dict[str, Any], crd_path: Path, version: str) -> list[str]:
    """What the API server would refuse in DOC by its CRD: the schema, closed, then the CEL rules after defaulting."""
    where = f"{doc['kind']}/{doc['metadata']['name']}"
    problems = [f"{where}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
                for e in crd_validator(crd_path, version).iter_errors(doc)]
    return problems + [f"{where}: CEL {p}" for p in evaluate(crd_schema(crd_path, version), doc).broken]


def validate_documents(documents: list[dict[str, Any]], *, crds: Path | None) -> list[str]:
    """Every problem found in ``documents``; empty when all pass."""
    problems = kubernetes_rules(documents)
    for doc in documents:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind in SHARED_CRD_FILES:
            crd_file, version = SHARED_CRD_FILES[kind]
            if crds is not None:
                problems += crd_problems(doc, crds / crd_file, version)
            continue
        if kind in VENDORED_CRDS:
            crd_file, version = VENDORED_CRDS[kind]
            if doc.get("apiVersion", "").rsplit("/", 1)[-1] != version:
                problems.append(f"{kind}/{name}: apiVersion {doc.get('apiVersion')} is not the vendored {version}")
                continue
            problems += crd_problems(doc, CRDS / crd_file, version)
            continue
        if kind in NOT_BUILT_IN:
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                problems.append(f"{kind}/{name} (k8s {version}): {path}: {exc.message}")
    return problems


# Rules the API server applies that the OpenAPI schemas above do not carry. Sources:
# k8s.io/apimachinery/pkg/util/validation/validation.go (IsDNS1123Subdomain, IsDNS1035Label, IsQualifiedName,
# IsValidLabelValue, IsEnvVarName, IsConfigMapKey) and pkg/apis/core/validation/validation.go (ValidateServiceName is
# NameIsDNS1035Label; validateVolumeMounts: "must be unique" and a mount names a volume of the pod; ValidateVolumes and
# validateContainers: unique names; ValidateTolerations; hostPath validatePathNoBacksteps; ValidateSecurityContext:
# allowPrivilegeEscalation false with privileged; validateSysctls: no network sysctl with hostNetwork;
# ValidateResourceRequirements: a limit is not below its request).
DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
DATA_KEY = re.compile(r"[-._a-zA-Z0-9]+")
POD_KINDS = {"Job": ("spec", "template"), "StatefulSet": ("spec", "template"), "Deployment": ("spec", "template"),
             "Pod": ()}


def is_subdomain(name: Any) -> bool:
    return isinstance(name, str) and len(name) <= 253 and DNS1123_SUBDOMAIN.fullmatch(name) is not None


def is_qualified_name(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    if "/" in key and not is_subdomain(prefix):
        return False
    return 0 < len(name) <= 63 and QUALIFIED_NAME.fullmatch(name) is not None


def is_label_value(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 63 and LABEL_VALUE.fullmatch(value) is not None


def _labels(where: str, labels: Any) -> list[str]:
    problems = []
    for key, value in (labels or {}).items():
        if not is_qualified_name(key):
            problems.append(f"{where}: label key {key!r} is not a qualified name")
        if not is_label_value(value):
            problems.append(f"{where}: label {key} has the invalid value {value!r}")
    return problems


QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?")
UNITS = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30,
         "Ti": 2**40, "Pi": 2**50, None: 1}


def quantity(value: Any) -> float | None:
    match = QUANTITY.fullmatch(str(value))
    return float(match.group(1)) * UNITS[match.group(2)] if match else None


def _pod_rules(where: str, spec: dict[str, Any]) -> list[str]:
    """Names unique in the pod, mounts of its own volumes, and what the security and resource rules refuse."""
    problems = []
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    names = [c.get("name") for c in containers]
    problems += [f"{where}: container name {n!r} repeats" for n in sorted({n for n in names if names.count(n) > 1})]
    volumes = [v.get("name") for v in spec.get("volumes") or []]
    problems += [f"{where}: volume name {n!r} repeats" for n in sorted({n for n in volumes if volumes.count(n) > 1})]
    for c in containers:
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problems.append(f"{where}.{c.get('name')}: mounts {m.get('name')!r}, which is no volume of the pod")
        sc = c.get("securityContext") or {}
        if sc.get("allowPrivilegeEscalation") is False and sc.get("privileged"):
            problems.append(f"{where}.{c.get('name')}: allowPrivilegeEscalation false with privileged")
        resources = c.get("resources") or {}
        for name, limit in (resources.get("limits") or {}).items():
            request = (resources.get("requests") or {}).get(name)
            low, high = quantity(limit), quantity(request)
            if request is not None and low is not None and high is not None and low < high:
                problems.append(f"{where}.{c.get('name')}: limit {name}={limit} below its request {request}")
    if spec.get("hostNetwork"):
        for s in (spec.get("securityContext") or {}).get("sysctls") or []:
            if str(s.get("name", "")).startswith("net."):
                problems.append(f"{where}: network sysctl {s.get('name')} with hostNetwork")
    return problems


def _pod_spec(where: str, spec: dict[str, Any]) -> list[str]:
    problems = _labels(f"{where}.nodeSelector", spec.get("nodeSelector")) + _pod_rules(where, spec)
    if "serviceAccountName" in spec and not is_subdomain(spec["serviceAccountName"]):
        problems.append(f"{where}: serviceAccountName {spec['serviceAccountName']!r} is not an object name")
    for secret in spec.get("imagePullSecrets") or []:
        if not is_subdomain(secret.get("name")):
            problems.append(f"{where}: imagePullSecrets name {secret.get('name')!r} is not an object name")
    for t in spec.get("tolerations") or []:
        if t.get("key") and not is_qualified_name(t["key"]):
            problems.append(f"{where}: toleration key {t['key']!r} is not a qualified name")
        if not t.get("key") and t.get("operator") != "Exists":
            problems.append(f"{where}: a toleration without a key needs operator Exists")
        if t.get("operator") == "Exists" and t.get("value"):
            problems.append(f"{where}: a toleration with operator Exists takes no value")
        if "tolerationSeconds" in t and t.get("effect") != "NoExecute":
            problems.append(f"{where}: tolerationSeconds needs effect NoExecute")
    for volume in spec.get("volumes") or []:
        path = (volume.get("hostPath") or {}).get("path")
        if path is not None and ".." in path.split("/"):
            problems.append(f"{where}: hostPath {path!r} contains '..'")
        secret = volume.get("secret") or {}
        if secret and not is_subdomain(secret.get("secretName")):
            problems.append(f"{where}: secretName {secret.get('secretName')!r} is not an object name")
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        name = f"{where}.{container.get('name')}"
        image = container.get("image", "")
        if not image or image != image.strip():
            problems.append(f"{name}: image {image!r} is empty or has surrounding whitespace")
        for env in container.get("env") or []:
            if not ENV_NAME.fullmatch(env.get("name", "")):
                problems.append(f"{name}: env name {env.get('name')!r} is not a valid variable name")
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref and (not is_subdomain(ref.get("name")) or not DATA_KEY.fullmatch(str(ref.get("key")))):
                problems.append(f"{name}: secretKeyRef {ref} names no valid Secret and key")
        mounts = [m.get("mountPath") for m in container.get("volumeMounts") or []]
        if len(mounts) != len(set(mounts)):
            problems.append(f"{name}: volume mount paths repeat: {mounts}")
        for part in ("requests", "limits"):
            for key in (container.get("resources") or {}).get(part) or {}:
                if not is_qualified_name(key):
                    problems.append(f"{name}: resource name {key!r} is not a qualified name")
    return problems


def kubernetes_rules(documents: list[dict[str, Any]]) -> list[str]:
    """What the API server would refuse in ``documents`` beyond their OpenAPI schemas: names, labels, annotations,
    env names, secret references, mounts, tolerations."""
    problems = []
    for doc in documents:
        kind, meta = doc["kind"], doc["metadata"]
        name = meta.get("name")
        where = f"{kind}/{name}"
        if not is_subdomain(name):
            problems.append(f"{where}: the name is not a DNS-1123 subdomain")
        if kind == "Service" and not (isinstance(name, str) and len(name) <= 63 and DNS1035_LABEL.fullmatch(name)):
            problems.append(f"{where}: a Service name must be a DNS-1035 label")
        if kind in ("Job", "StatefulSet", "Deployment", "LeaderWorkerSet") and len(str(name)) > 63:
            problems.append(f"{where}: the name is longer than 63 characters (it becomes a label value)")
        problems += _labels(where, meta.get("labels"))
        problems += [f"{where}: annotation key {k!r} is not a qualified name"
                     for k in meta.get("annotations") or {} if not is_qualified_name(k)]
        if kind == "ConfigMap":
            problems += [f"{where}: data key {k!r} is invalid" for k in doc.get("data") or {} if not DATA_KEY.fullmatch(k)]
        spec = doc.get("spec") or {}
        problems += _labels(f"{where}.selector", spec.get("selector") if kind == "Service" else None)
        problems += _labels(f"{where}.selector", (spec.get("selector") or {}).get("matchLabels")
                            if kind != "Service" else None)
        templates = []
        if kind == "LeaderWorkerSet":
            lwt = spec.get("leaderWorkerTemplate") or {}
            templates = [t for t in (lwt.get("leaderTemplate"), lwt.get("workerTemplate")) if t]
        elif kind in ("Job", "StatefulSet", "Deployment"):
            templates = [spec.get("template") or {}]
        elif kind == "Pod":
            templates = [doc]
        for template in templates:
            tmeta = template.get("metadata") or {}
            problems += _labels(f"{where} pod", tmeta.get("labels"))
            problems += [f"{where} pod: annotation key {k!r} is not a qualified name"
                         for k in tmeta.get("annotations") or {} if not is_qualified_name(k)]
            problems += _pod_spec(f"{where} pod", template.get("spec") or {})
    return problems


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping (the API server's decoder does)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
        if repeated:
            raise yaml.constructor.ConstructorError(None, None, f"repeated keys {repeated}", node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_manifests(text: str) -> list[dict[str, Any]]:
    """The documents of rendered manifests; a mapping with a repeated key fails the test."""
    return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d]
