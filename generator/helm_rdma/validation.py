"""JSON Schema validation that reports every problem with its dotted key path, judging patterns as helm does.

helm checks values.schema.json with Go's regular expressions, where ``$`` is the very end of the text and ``\\d``,
``\\w``, ``\\s`` are ASCII only; Python's ``$`` also matches before a final newline, so patterns are compiled here
with Go's meaning, or "eth0\\n" would pass here and fail in helm.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from helm_rdma.suggest import clip, nearest

if TYPE_CHECKING:
    import jsonschema

# What a pattern of the values schema asks for, in words, for messages (the pattern itself lives in the schema).
KINDS = {
    "^(|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$": "empty or a DNS-1123 label (lower-case letters, digits and '-', "
                                          "starting and ending with a letter or digit)",
    "^(|[a-z]([-a-z0-9]*[a-z0-9])?)$": "empty or a DNS-1035 label (lower-case letters, digits and '-', starting "
                                       "with a letter, ending with a letter or digit)",
    "^(|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)$":
        "empty or a Kubernetes object name (lower-case letters, digits, '-' and '.')",
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$":
        "a Kubernetes object name (lower-case letters, digits, '-' and '.')",
    "^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$":
        "a Kubernetes label value (at most 63 letters, digits, '-', '_' and '.', starting and ending with a "
        "letter or digit)",
    "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$":
        "empty or a Kubernetes label value (letters, digits, '-', '_' and '.', starting and ending with a letter or "
        "digit)",
    "^([^/]{1,253}/)?[^/]*$": "a key whose prefix before '/' has at most 253 characters",
    "^[ -~]*$": "printable ASCII on one line",
    "^[!-~]*$": "printable ASCII without spaces",
    "^[!-~]+$": "printable ASCII without spaces, not empty",
    "^/(\\.?[-A-Za-z0-9_+@/])*\\.?$": "an absolute path of letters, digits and -_+@./ without '..'",
    "^(|LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t[A-Za-z0-9+/=]*)$":
        "empty or a PEM certificate (-----BEGIN CERTIFICATE-----) in base64, on one line, as a kubeconfig's "
        "certificate-authority-data holds it",
    "^(|(https?|file)://[!-~]+( +(https?|file)://[!-~]+)*)$":
        "empty or apt repository URIs (http://, https:// or file://), separated by spaces",
}
# Keys that moved, by their old dotted path: the schema is closed, so an old values file stops at the old key, and
# the message names the new one. serviceMonitor moved under monitoring beside the PrometheusRule and the dashboard.
MOVED = {"serviceMonitor": "monitoring.serviceMonitor"}
# An OCID pattern of the schema, such as ^(|ocid1\.subnet\..+)$: each ocid1\.KIND\..+ names a resource kind.
_OCID_KIND = re.compile(r"ocid1\\\.([a-z]+)\\\.\.\+")
QUALIFIED = "a Kubernetes label key: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' and '.'"
KUBELET_LABEL = ("a label the kubelet sets (it refuses other kubernetes.io and k8s.io keys in --node-labels): "
                 "node.kubernetes.io/... or kubelet.kubernetes.io/..., kubernetes.io/hostname, kubernetes.io/os, "
                 "kubernetes.io/arch, kubernetes.io/instance-type, failure-domain.kubernetes.io/zone or /region; "
                 "give your own prefix instead, e.g. example.com/role")
SSH_PUBLIC = ("an OpenSSH public key (the .pub file): one key per line, TYPE AAAA... [comment], TYPE one of "
              "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, sk-ssh-ed25519@openssh.com, "
              "sk-ecdsa-sha2-nistp256@openssh.com, ssh-dss")


def dotted(path: Any) -> str:
    """Render a jsonschema path (deque of keys and indexes) as ``a.b[0].c``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


# An escaped character, a character class, or a ``$`` outside both (the one go_regex rewrites).
_REGEX_PART = re.compile(r"\\.?|\[(?:\\.?|[^\]\\])*\]?|\$", re.DOTALL)


@cache
def go_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with Go's meaning: ASCII classes, and ``$`` (outside a class) only at the very end."""
    return re.compile(_REGEX_PART.sub(lambda m: r"\Z" if m.group() == "$" else m.group(), pattern), re.ASCII)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    import jsonschema

    if validator.is_type(instance, "string") and not go_regex(pattern).search(instance):
        yield jsonschema.ValidationError(f"{clip(instance, 80)!r} does not match {pattern!r}")


@cache
def _validator_class() -> Any:
    import jsonschema  # 60 ms to import: only where something is really validated

    return jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _pattern})


def _ocid_words(pattern: str) -> str | None:
    """What an OCID pattern asks for, in words, or None when ``pattern`` is not only OCID kinds."""
    kinds = _OCID_KIND.findall(pattern)
    rest = _OCID_KIND.sub("", pattern)
    if not kinds or not re.fullmatch(r"\^\(?\|*\)?\$", rest):
        return None
    words = " or ".join(f"ocid1.{kind}..." for kind in kinds)
    return f"{'empty or ' if rest.startswith('^(|') else ''}an OCID of kind {' or '.join(kinds)} ({words})"


def _what(pattern: str) -> str:
    if pattern in KINDS:
        return KINDS[pattern]
    ocid = _ocid_words(pattern)
    if ocid:
        return ocid
    if "[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$" in pattern:
        return QUALIFIED
    if "kubelet" in pattern:
        return KUBELET_LABEL
    if "ssh-ed25519" in pattern:
        return SSH_PUBLIC
    return f"text matching {pattern}"


def _shown(instance: Any) -> str:
    return clip(repr(instance), 80)


def _json_type(value: Any) -> str:
    names = {type(None): "null", dict: "map", list: "list", str: "string", bool: "boolean", int: "integer",
             float: "number"}
    return names.get(type(value), type(value).__name__)


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        parent = dotted(error.absolute_path) + "." if error.absolute_path else ""
        moved = [f'"{parent}{k}" moved to "{MOVED[parent + k]}"' for k in extra if parent + k in MOVED]
        extra = [k for k in extra if parent + k not in MOVED]
        keys = ", ".join(f'"{k}"' for k in extra)
        hints = [f'"{parent}{found}"' for found in (nearest(k, allowed) for k in extra) if found]
        hint = f" (did you mean {' or '.join(hints)}?)" if hints else ""
        unknown = f"unknown key {keys}{hint}; allowed: {', '.join(allowed)}" if extra else ""
        if moved:
            return "; ".join([f"{', '.join(moved)}: write the same keys under the new name", *filter(None, [unknown])])
        return unknown
    if error.validator == "enum":
        return f"{_shown(error.instance)} is not one of {', '.join(repr(v) for v in error.validator_value)}"
    if error.validator == "type":
        want = error.validator_value
        want_text = " or ".join(want) if isinstance(want, list) else want
        shown = "" if error.instance is None else f" {_shown(error.instance)}"
        return f"expected {want_text}, got {_json_type(error.instance)}{shown}"
    if error.validator == "required":
        return "is required (a null removes a key: give it a value instead)"
    if error.validator == "pattern" and isinstance(error.instance, str) and "PRIVATE KEY" in error.instance:
        # Never echoed: a private key pasted where a public one belongs (ssh-keygen's id_ed25519 beside id_ed25519.pub).
        return f"this is a private key: pass the .pub file; expected {_what(error.validator_value)}"
    if error.validator == "pattern":
        return f"{_shown(error.instance)} is not {_what(error.validator_value)}"
    if error.validator == "not" and isinstance(error.validator_value, dict) and "enum" in error.validator_value:
        return f"{_shown(error.instance)} is set by the chart itself; choose another key"
    if error.validator in ("maxLength", "minLength"):
        limit = "at most" if error.validator == "maxLength" else "at least"
        return f"{_shown(error.instance)} has {len(error.instance)} characters; {limit} {error.validator_value}"
    if error.validator == "const":
        return f"{_shown(error.instance)}: must be {error.validator_value!r} here"
    return str(error.message)


def _leaves(error: jsonschema.ValidationError) -> Iterator[jsonschema.ValidationError]:
    """The errors that say what is wrong: allOf/if-then wrappers are replaced by their causes."""
    if error.validator in ("allOf", "if", "propertyNames") and error.context:
        for sub in error.context:
            yield from _leaves(sub)
    else:
        yield error


def schema_problems(data: Any, schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Validate ``data`` against a draft-07 ``schema``.

    Returns:
        (dotted key path, what is wrong) for every violation, sorted by path; empty when valid.
    """
    validator = _validator_class()(schema)
    found = []
    for top in validator.iter_errors(data):
        for error in _leaves(top):
            path = list(error.absolute_path)
            if error.validator == "additionalProperties" and isinstance(error.instance, dict):
                extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
                if len(extra) == 1:
                    path.append(extra[0])
            if error.validator == "required" and isinstance(error.instance, dict):
                path += [k for k in error.validator_value if k not in error.instance and repr(k) in error.message][:1]
            if "propertyNames" in error.absolute_schema_path and isinstance(error.instance, str):
                path.append(error.instance)
                found.append((dotted(path), f"the key {_describe(error)}"))
                continue
            found.append((dotted(path), _describe(error)))
    return sorted(set(found))

