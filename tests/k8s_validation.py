"""Validating rendered manifests: kubernetes-validate (strict) for built-in kinds, the shared LWS CRD for LeaderWorkerSets."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

KUBE_VERSIONS = ("1.30.0", "1.35.0")
NOT_BUILT_IN = {"LeaderWorkerSet", "ServiceMonitor"}


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
def lws_validator(crd_path: Path) -> jsonschema.Draft7Validator:
    crd = yaml.safe_load(crd_path.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    return jsonschema.Draft7Validator(closed(copy.deepcopy(version["schema"]["openAPIV3Schema"])))


def validate_documents(documents: list[dict[str, Any]], *, crds: Path | None) -> list[str]:
    """Every problem found in ``documents``; empty when all pass."""
    problems = []
    for doc in documents:
        kind, name = doc["kind"], doc["metadata"]["name"]
        if kind == "LeaderWorkerSet":
            if crds is not None:
                validator = lws_validator(crds / "leaderworkerset.x-k8s.io_leaderworkersets.yaml")
                problems += [f"{kind}/{name}: {'.'.join(map(str, e.absolute_path))}: {e.message}"
                             for e in validator.iter_errors(doc)]
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
