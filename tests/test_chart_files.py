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

from helm_rdma.chart.overrideschema import OVERRIDE_SCHEMA
from helm_rdma.datafiles import chart_dir
from helm_rdma.dev.chart_sync import expected_files, main
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


def test_charts_vllm_rdma_is_what_generate_writes_for_llama405b_on_h100(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check"]) == 0, capsys.readouterr().err  # `make chart` --check: names each file that drifted


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


@pytest.fixture(scope="module")
def for_overrides() -> dict[str, Any]:
    return json.loads((chart_dir() / OVERRIDE_SCHEMA).read_text())


def test_the_override_schema_is_the_charts_schema_without_required_on_merged_maps(
        published: dict[str, Any], for_overrides: dict[str, Any]) -> None:
    """Generated from the same schema (a drift here is a drift of charts/vllm-rdma, which the test above catches):
    only `required` of the root and of the maps below it through `properties` is gone; everything else, closed
    objects, types, enums, ranges, patterns, descriptions and defaults, is the published schema's."""
    dropped: list[str] = []

    def restore(over: dict[str, Any], full: dict[str, Any], path: str) -> dict[str, Any]:
        out = {**over, "properties": dict(over.get("properties", {}))} if "properties" in over else dict(over)
        if "required" in full:
            assert "required" not in over, path
            out["required"] = full["required"]
            dropped.append(path)
        for key, sub in full.get("properties", {}).items():
            out["properties"][key] = restore(over["properties"][key], sub, f"{path}.{key}" if path else key)
        return out

    identity = {"$id": published["$id"], "title": published["title"]}
    assert restore({**for_overrides, **identity}, published, "") == published
    assert for_overrides["$id"] == "https://helm-rdma.dev/schemas/values.override.schema.json"
    assert "" in dropped and "nccl" in dropped and "clusterNetwork.image" in dropped
    # helm's own schema demands as much as before: the merged values must hold every key
    assert published["required"] and "nccl" in published["required"]


def test_the_override_schema_keeps_demands_where_helm_replaces_the_value_whole(for_overrides: dict[str, Any]) -> None:
    """A list replaces the chart's list whole, so each item must be complete; a condition's `required` is a test."""
    env = for_overrides["properties"]["vllm"]["properties"]["extraEnv"]["items"]
    assert env["required"] == ["name", "value"], env
    adapters = for_overrides["properties"]["vllm"]["properties"]["lora"]["properties"]["adapters"]["items"]
    assert all("required" in branch for branch in adapters["oneOf"])
    assert for_overrides["definitions"] == published_definitions()


def published_definitions() -> dict[str, Any]:
    return dict(json.loads((chart_dir() / "values.schema.json").read_text())["definitions"])


@pytest.mark.parametrize(("overrides", "valid"), [
    ({}, True),
    ({"image": {"tag": "v0.17.1"}, "vllm": {"maxModelLen": 65536}, "api": {"keySecret": {"name": "key"}}}, True),
    ({"vllm": {"maxModelLenn": 65536}}, False),
    ({"vllm": {"maxModelLen": "long"}}, False),
    ({"nccl": {"debug": "LOUD"}}, False),
    ({"nodes": 0}, False),
    ({"vllm": {"extraEnv": [{"value": "1"}]}}, False),
], ids=["empty", "three-keys", "typo", "type", "enum", "range", "list-item-whole"])
def test_the_override_schema_judges_a_partial_file_as_helm_judges_it_merged(
        overrides: dict[str, Any], valid: bool, for_overrides: dict[str, Any], published: dict[str, Any]) -> None:
    jsonschema.Draft7Validator.check_schema(for_overrides)
    assert jsonschema.Draft7Validator(for_overrides).is_valid(overrides) == valid
    values = yaml.safe_load((chart_dir() / "values.yaml").read_text())
    merged = _merged(values, overrides)
    assert jsonschema.Draft7Validator(published).is_valid(merged) == valid
    assert not jsonschema.Draft7Validator(published).is_valid(overrides)  # helm's schema wants the merged values


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in over.items()}}
    return over


def test_a_generated_chart_carries_the_override_schema_and_a_rendered_one_does_not() -> None:
    from helm_rdma.chart.write import chart_files
    from helm_rdma.resolve.values import resolve

    assert OVERRIDE_SCHEMA in chart_files(resolve(request()))
    assert OVERRIDE_SCHEMA not in chart_files(resolve(request()), compact=True)
