"""Limits that helm and Kubernetes enforce on what the values become, checked before a chart is written.

- helm loads no chart file larger than 5 MiB, and no chart archive larger than 100 MiB once decompressed (helm v4.1.4
  pkg/chart/loader/archive/archive.go lines 38 and 42, MaxDecompressedChartSize and MaxDecompressedFileSize; a chart
  directory's files in pkg/chart/v2/loader/directory.go line 103; helm 3 since 3.17.3 as well).
- Kubernetes refuses an object whose annotations (keys and values, in bytes) exceed 256 KiB (kubernetes/apimachinery
  pkg/api/validation/objectmeta.go, TotalAnnotationSizeLimitB and ValidateAnnotationsSize).

Each problem names the key, where its value came from (the -f file or --set flag) and the fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from helm_rdma.errors import ValuesLimitError
from helm_rdma.resolve.overrides import origin_of

HELM_FILE_LIMIT = 5 * 1024 * 1024
HELM_CHART_LIMIT = 100 * 1024 * 1024
ANNOTATIONS_LIMIT = 256 * 1024
CHART_OWN_ANNOTATIONS = 4 * 1024  # room kept for the annotations the chart adds itself (checksum/config, networks)


def annotation_keys(schema: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of the values schema that become an object's annotations (``podAnnotations``,
    ``service.annotations``, ...): the schema is their one home."""
    keys = []
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        if name.endswith(("annotations", "Annotations")) and sub.get("type") == "object":
            keys.append(path)
        elif isinstance(sub, Mapping):
            keys += annotation_keys(sub, path)
    return keys


def check_annotations(values: Mapping[str, Any], origins: Mapping[str, str], schema: Mapping[str, Any]) -> None:
    """Refuse annotations Kubernetes would refuse for their size.

    Raises:
        ValuesLimitError: The annotations of one key are larger than Kubernetes takes for one object.
    """
    limit = ANNOTATIONS_LIMIT - CHART_OWN_ANNOTATIONS
    for key in annotation_keys(schema):
        found = _at(values, key)
        if not isinstance(found, Mapping):
            continue
        size = sum(len(str(k).encode()) + len(str(v).encode()) for k, v in found.items())
        if size > limit:
            largest = max(found, key=lambda k: len(str(k).encode()) + len(str(found[k]).encode()))
            raise ValuesLimitError(
                key=f"{key}.{largest}", origin=origin_of(f"{key}.{largest}", origins),
                problem=f"{key} holds {size} bytes of annotations; Kubernetes takes at most {ANNOTATIONS_LIMIT} per "
                        f"object and the chart adds its own, so at most {limit}",
                fix="keep large data out of annotations (a ConfigMap, or a smaller value)")


def check_chart_files(sizes: Mapping[str, int], values: Mapping[str, Any], origins: Mapping[str, str]) -> None:
    """Refuse a chart helm would refuse to load for the size of a file, or of the whole.

    Raises:
        ValuesLimitError: Naming the file and the user's largest value with where it came from.
    """
    too_large = [(name, size) for name, size in sizes.items() if size > HELM_FILE_LIMIT]
    total = sum(sizes.values())
    if not too_large and total <= HELM_CHART_LIMIT:
        return
    key, size = largest_value(values, origins)
    if too_large:
        name, got = max(too_large, key=lambda item: item[1])
        problem = f"the chart's {name} would be {got} bytes; helm loads no chart file over {HELM_FILE_LIMIT}"
    else:
        problem = f"the chart would be {total} bytes; helm loads no chart over {HELM_CHART_LIMIT}"
    raise ValuesLimitError(key=key, origin=origin_of(key, origins),
                           problem=f"{problem}, and the largest value is {key} ({size} bytes)",
                           fix="keep large data out of the values (a ConfigMap or a file the image holds)")


def largest_value(values: Mapping[str, Any], origins: Mapping[str, str]) -> tuple[str, int]:
    """The deepest user-set key whose value is the largest (its dotted key and size as compact JSON)."""
    best = ("", -1)
    for key, value in _leaves(values):
        if origin_of(key, origins) == "defaults":
            continue
        size = _size(value)
        if size > best[1]:
            best = (key, size)
    if best[1] < 0:
        best = max(((k, _size(v)) for k, v in _leaves(values)), key=lambda item: item[1], default=("", 0))
    return best


def _size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def _leaves(values: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in values.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, path)
        else:
            yield path, value


def _at(values: Mapping[str, Any], key: str) -> Any:
    node: Any = values
    for part in key.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node
