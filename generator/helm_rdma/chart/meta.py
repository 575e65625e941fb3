"""A generated chart's identity and Chart.yaml: a name and a version that say what it serves and change with its
content, the vLLM image tag as appVersion, and the metadata Artifact Hub and chart-testing read.

The version is ``X.Y.Z+DIGEST``. DIGEST (12 hex digits) hashes everything the chart is made of: the values, the
preset's notes, the copied templates and files, the values schema, the README template and helm-rdma's version, so
two charts with different content never share a version, and the same inputs always give the same one. ``X.Y.Z``
starts at 0.1.0 and, when `generate --force` replaces a chart whose content differs, is the replaced chart's with its
patch number raised: chart-testing's version check compares X.Y.Z only (semver ignores build metadata).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from helm_rdma import __version__
from helm_rdma.chart.images import artifacthub_images
from helm_rdma.resolve.values import Resolved, default_stand_in, schema_defaults
from helm_rdma.suggest import clip

FIRST_VERSION = "0.1.0"
DIGEST_LENGTH = 12
LICENSE = "Apache-2.0"  # helm-rdma's, and so its charts'
# Sidecar containers (the port guard: a restartable init container with a startup probe) are on by default from
# Kubernetes 1.29 (KEP-753, beta in 1.29, GA in 1.33); on 1.27 and 1.28 the API server refuses the pod template.
KUBE_VERSION = ">=1.29.0-0"
VLLM_SOURCE = "https://github.com/vllm-project/vllm"
LWS_SOURCE = "https://github.com/kubernetes-sigs/lws"
ICON = "https://raw.githubusercontent.com/vllm-project/vllm/main/docs/assets/logos/vllm-logo-only-light.png"
KEYWORDS = ("vllm", "llm", "rdma", "nccl", "oci", "leaderworkerset")
# Annotations of ours on Chart.yaml; the templates read helm-rdma.io/version (the provisioner image's default tag).
ANNOTATION_PREFIX = "helm-rdma.io/"
VERSION_PATTERN = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:\+([0-9a-f]+))?$")
CHANGES_LISTED = 12


class PreviousChart(NamedTuple):
    """The chart a `generate --force` replaces: its version, digest, changes and values."""

    version: tuple[int, int, int]
    digest: str | None
    changes: str | None
    values: dict[str, Any]


def content_digest(resolved: Resolved, sources: Mapping[str, bytes], extra: Mapping[str, bytes]) -> str:
    """The digest of what a chart is made of (the same for `generate` and the compact charts of `template`).

    Args:
        resolved: The values and the preset's notes.
        sources: The copied chart files (relative path -> bytes).
        extra: Other inputs of the generated files, such as the values schema and the README template.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({"helm-rdma": __version__, "values": resolved.values, "notes": resolved.notes,
                              "release": resolved.release}, sort_keys=True).encode())
    for name, data in sorted({**sources, **{f"//{k}": v for k, v in extra.items()}}.items()):
        digest.update(f"\0{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:DIGEST_LENGTH]


def read_previous(chart: Path) -> PreviousChart | None:
    """The version, digest, changes and values of a chart directory, or None when it has no readable Chart.yaml.

    The values are those it was generated with: the defaults of its published values.schema.json, which are the
    generated values (values.yaml may have been edited by hand since: generate then stops, or with --discard-edits
    overwrites it).
    """
    import yaml

    try:
        meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
        try:
            values = schema_defaults(json.loads((chart / "values.schema.json").read_text(encoding="utf-8")))
        except (OSError, ValueError, AttributeError):
            values = yaml.safe_load((chart / "values.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(meta, dict) or not isinstance(values, dict):
        return None
    found = VERSION_PATTERN.match(str(meta.get("version", "")))
    if found is None:
        return None
    changes = (meta.get("annotations") or {}).get("artifacthub.io/changes")
    return PreviousChart(version=(int(found[1]), int(found[2]), int(found[3])), digest=found[4],
                         changes=changes if isinstance(changes, str) else None, values=values)


def read_identity(chart: Path) -> tuple[str, str]:
    """The name and version in a chart's Chart.yaml (one generate just wrote)."""
    import yaml

    meta = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    return str(meta["name"]), str(meta["version"])


def chart_version(digest: str, previous: PreviousChart | None) -> str:
    """``X.Y.Z+DIGEST``: the replaced chart's X.Y.Z when the content is the same, its patch raised when it differs."""
    if previous is None:
        return f"{FIRST_VERSION}+{digest}"
    major, minor, patch = previous.version
    if previous.digest != digest:
        patch += 1
    return f"{major}.{minor}.{patch}+{digest}"


def chart_metadata(resolved: Resolved, *, digest: str, previous: PreviousChart | None = None) -> dict[str, Any]:
    """The content of Chart.yaml."""
    v = resolved.values
    model, preset = resolved.model, resolved.preset
    model_page = f"https://huggingface.co/{model.repo}"
    return {
        "apiVersion": "v2",
        "name": resolved.release,
        "description": f"{model.repo} served by vLLM on {v['nodes']} x {preset.shape} per group over RDMA "
                       f"(preset {preset.name}, TP {v['vllm']['tensorParallelSize']} x PP "
                       f"{v['vllm']['pipelineParallelSize']}, {v['workload']['kind']}); generated by helm-rdma.",
        "type": "application",
        "version": chart_version(digest, previous),
        "appVersion": str(v["image"]["tag"]),
        "kubeVersion": KUBE_VERSION,
        "home": model_page,
        "sources": [VLLM_SOURCE, LWS_SOURCE],
        "maintainers": [{"name": "helm-rdma"}],
        "keywords": list(KEYWORDS),
        "icon": ICON,
        "annotations": {
            "artifacthub.io/images": _block(artifacthub_images(v)),
            "artifacthub.io/license": LICENSE,
            "artifacthub.io/changes": _changes(resolved, digest, previous),
            "artifacthub.io/links": _block([{"name": "Model", "url": model_page},
                                            {"name": "vLLM", "url": VLLM_SOURCE},
                                            {"name": "LeaderWorkerSet", "url": LWS_SOURCE}]),
            f"{ANNOTATION_PREFIX}preset": preset.name,
            f"{ANNOTATION_PREFIX}model": model.alias,
            f"{ANNOTATION_PREFIX}version": __version__,
        },
    }


def _changes(resolved: Resolved, digest: str, previous: PreviousChart | None) -> str:
    """Artifact Hub's changes of this version: the values that changed since the replaced chart."""
    if previous is not None and previous.digest == digest and previous.changes:
        return previous.changes
    v = resolved.values
    if previous is None:
        return _block([{"kind": "added", "description": f"{resolved.model.alias} ({resolved.model.repo}) on "
                        f"{v['nodes']} x {resolved.preset.shape}, {v['replicas']} group(s)"}])
    changed = change_lines(previous.values, v)
    entries = [{"kind": "changed", "description": text} for text in changed[:CHANGES_LISTED]]
    if len(changed) > CHANGES_LISTED:
        entries.append({"kind": "changed", "description": f"{len(changed) - CHANGES_LISTED} more values"})
    if not entries:
        entries = [{"kind": "changed", "description": f"templates and files of helm-rdma {__version__}"}]
    return _block(entries)


def change_lines(old: Any, new: Any) -> list[str]:
    """``KEY: OLD -> NEW`` for every leaf value that differs (see ``value_changes``), each value clipped."""
    return [f"{path}: {_short(was)} -> {_short(now)}" for path, was, now in value_changes(old, new)]


def value_changes(old: Any, new: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) of every leaf value that differs, in key order; None stands for an absent key."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            here = f"{path}.{key}" if path else str(key)
            out += value_changes(old.get(key), new.get(key), here)
        return out
    if old == new or (isinstance(old, str) and old == default_stand_in(new)):  # the stand-in for a large value
        return []
    return [(path, old, new)]


def _short(value: Any) -> str:
    return clip(json.dumps(value, sort_keys=True), 60)


def _block(entries: list[dict[str, str]]) -> str:
    import yaml

    return yaml.safe_dump(entries, sort_keys=False, width=1000)


def chart_yaml(metadata: dict[str, Any]) -> str:
    """Chart.yaml as people read it: multi-line annotations as literal blocks."""
    import yaml

    class Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)

    Dumper.add_representer(str, text)
    return "# Generated by helm-rdma; the templates come from charts/vllm-rdma.\n" + yaml.dump(
        metadata, Dumper=Dumper, sort_keys=False, width=1000)
