"""The published values schema, the generated values.yaml, and charts/vllm-rdma staying equal to generator output."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helm_rdma.datafiles import chart_dir
from helm_rdma.dev.chart_sync import drift, expected_files
from helm_rdma.resolve.values import values_schema

from .rendering import request


def walk(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for key, sub in schema.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        yield here, sub
        yield from walk(sub, here)


@pytest.fixture(scope="module")
def published() -> dict[str, Any]:
    return json.loads((chart_dir() / "values.schema.json").read_text())


def test_charts_vllm_rdma_is_what_generate_writes_for_llama405b_on_h100() -> None:
    assert drift() == [], "run `make chart` to refresh charts/vllm-rdma"


def test_schema_is_draft07_self_contained_and_declares_global(published: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(published)
    assert published["$schema"] == "http://json-schema.org/draft-07/schema#"
    # self-contained: every $ref names a definition the schema itself holds (the trimmed Kubernetes definitions)
    refs = set(re.findall(r'"\$ref": "([^"]*)"', json.dumps(published)))
    assert refs and all(r.startswith("#/definitions/") for r in refs)
    assert {r.removeprefix("#/definitions/") for r in refs} <= set(published["definitions"])
    assert "global" in published["properties"]


def test_every_key_has_a_description_and_a_default(published: dict[str, Any]) -> None:
    missing = [p for p, sub in walk(published) if "description" not in sub or "default" not in sub]
    assert missing == []


def test_objects_with_known_keys_are_closed(published: dict[str, Any]) -> None:
    assert published["additionalProperties"] is False
    open_objects = [p for p, sub in walk(published) if "properties" in sub and sub.get("additionalProperties") is not False]
    assert open_objects == []


def test_generated_defaults_are_the_generated_values(published: dict[str, Any]) -> None:
    values = yaml.safe_load((chart_dir() / "values.yaml").read_text())
    assert jsonschema.Draft7Validator(published).is_valid(values)
    for path, sub in walk(published):
        node: Any = values
        for part in path.split("."):
            node = node[part]
        assert sub["default"] == node, path


def test_values_yaml_has_the_modeline_and_a_comment_on_every_key() -> None:
    text = expected_files()["values.yaml"]
    lines = text.splitlines()
    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    key = re.compile(r"^\s*[\"A-Za-z_][^:#]*:( |$)")
    for i, line in enumerate(lines):
        if key.match(line) and not line.lstrip().startswith("- "):
            previous = lines[i - 1].strip()
            assert previous.startswith("#"), f"line {i + 1} has no comment: {line}"


def test_source_schema_and_published_schema_differ_only_in_defaults(published: dict[str, Any]) -> None:
    source = values_schema()  # schemas/values.schema.json with schemas/kubernetes-definitions.json

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "default"}
        return node

    assert strip(source) == strip(published)


def test_helm_reads_a_one_line_json_values_file_of_4096_multiple_bytes_only_with_a_newline(tmp_path: Path) -> None:
    """What the compact chart of `template` relies on: helm took a 4096 (or 8192) byte values.yaml without a newline
    for empty values (seen with helm 3.17.2 and 4.1.4)."""
    import json
    import shutil
    import subprocess

    from helm_rdma.chart.write import chart_files
    from helm_rdma.resolve.values import resolve

    from .conftest import helm_path

    resolved = resolve(request())
    compact = chart_files(resolved, compact=True)
    assert all(text.endswith("\n") for text in compact.values())
    chart = tmp_path / "chart"
    shutil.copytree(chart_dir(), chart)
    values = json.loads(compact["values.yaml"])
    values["podAnnotations"] = {"pad": ""}
    values["podAnnotations"]["pad"] = "x" * (8192 - len(json.dumps(values)))
    text = json.dumps(values)
    assert len(text) == 8192
    for ending, renders in (("\n", True), ("", False)):
        (chart / "values.yaml").write_text(text + ending)
        run = subprocess.run([str(helm_path("helm4")), "template", "x", str(chart)], capture_output=True, text=True)
        assert (run.returncode == 0) == renders, run.stderr
