"""The CEL rules of a CustomResourceDefinition (`x-kubernetes-validations`), evaluated offline with cel-python as the
API server evaluates them when an object is created: after structural defaulting (each `default` of a property the
object leaves out, where its parent is present), every rule with `self` bound to the value at its node; a rule that
reads `oldSelf` is a transition rule and runs on updates only (kubernetes.io/docs/tasks/extend-kubernetes/
custom-resources/custom-resource-definitions, "Validation rules" and "Transition rules"; defaulting before validation:
"Defaulting"). Kubernetes adds functions of its own to CEL (isURL, url, ip, cidr, quantity, ...: its "CEL libraries"
list); cel-python has CEL's standard ones only, so a rule that calls another is reported as not evaluated, with the
function it needs, never as passing."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import celpy


@dataclass(frozen=True)
class CelReport:
    """What the rules said of one object: the rules broken (path, message) and those cel-python could not run."""

    broken: list[str] = field(default_factory=list)
    not_evaluated: list[str] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)


@cache
def _program(rule: str) -> Any:
    env = celpy.Environment()
    return env.program(env.compile(rule))


def defaulted(schema: dict[str, Any], value: Any) -> Any:
    """VALUE with the schema's defaults filled in where the API server's structural defaulting puts them."""
    value = copy.deepcopy(value)
    _default(schema, value)
    return value


def _default(schema: dict[str, Any], value: Any) -> None:
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                _default(sub, value[name])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in set(value) - set(schema.get("properties") or {}):
                _default(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(schema["items"], item)


def evaluate(schema: dict[str, Any], obj: dict[str, Any]) -> CelReport:
    """Every CEL rule of SCHEMA (a CRD version's openAPIV3Schema) applied to OBJ after defaulting."""
    report = CelReport()
    _walk(schema, defaulted(schema, obj), "", report)
    return report


def _walk(schema: dict[str, Any], value: Any, path: str, report: CelReport) -> None:
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule["rule"]
        if "oldSelf" in text:
            continue
        where = path or "<root>"
        try:
            result = _program(text).evaluate({"self": celpy.json_to_cel(value)})
        except (celpy.CELEvalError, KeyError, TypeError) as exc:
            missing = next((str(a) for a in getattr(exc, "args", ()) if isinstance(a, tuple) and a), None)
            report.not_evaluated.append(f"{where}: {text} ({missing or type(exc).__name__}: {exc!s:.80})")
            continue
        if isinstance(result, celpy.CELEvalError):
            report.not_evaluated.append(f"{where}: {text} ({result!s:.120})")
            continue
        report.evaluated.append(f"{where}: {text}")
        if not bool(result):
            report.broken.append(f"{where}: {rule.get('message') or text}")
    if isinstance(value, dict):
        for name, sub in (schema.get("properties") or {}).items():
            if name in value:
                _walk(sub, value[name], f"{path}.{name}" if path else name, report)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name in set(value) - set(schema.get("properties") or {}):
                _walk(extra, value[name], f"{path}.{name}" if path else name, report)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{i}]", report)
