"""Property: whatever values a user writes (valid, invalid, unicode, huge, null, of the wrong type), `generate`
either stops with exit 2 (a message naming a key or the file, nothing written) or writes a chart that plain helm 3
and 4 render alike and that passes kubernetes-validate --strict, the LWS CRD and the API server's own rules; and
plain helm given the same values on charts/vllm-rdma renders valid manifests or refuses them through the schema or
validateValues, never with a template error.

Hypothesis runs derandomized with a fixed budget (EXAMPLES), so `make test` stays quick and repeatable; to search
further, set HELM_RDMA_PROPERTY_EXAMPLES (for example 2000), which also lets hypothesis pick new examples each run.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helm_rdma.commands.generate import generate
from helm_rdma.datafiles import chart_dir, schema_path
from helm_rdma.errors import InputError
from helm_rdma.resolve.valuesources import ValueSources

from .conftest import SHARED_CRDS, helm_path
from .k8s_validation import load_manifests, validate_documents
from .rendering import request

EXPLORE = os.environ.get("HELM_RDMA_PROPERTY_EXAMPLES")
EXAMPLES = int(EXPLORE or 40)
OUTCOMES: dict[str, int] = {}
SCHEMA = json.loads(schema_path("values.schema.json").read_text())
REFUSALS = ("values don't meet the specifications of the schema", "vllm-rdma: the values do not fit together")
TEMPLATE_ERRORS = ("nil pointer", "error calling", "wrong type for value", "can't evaluate field",
                   "error converting YAML", "invalid value; expected")


def leaves(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = []
    for key, sub in schema.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        out += leaves(sub, here) if "properties" in sub else [(here, sub)]
    return out


KEYS = dict(leaves(SCHEMA))
STRINGS = ["", "a", "A", "x" * 64, "x" * 300, "a.b", "a/b", "a b", "a\nb", "-a", "a-", "0", "1.10", "null", "true",
           "ünïcödé", "hostPID: true", 'a"b', "{{ .Values }}", "/abs/path", "/a/../b", "../x", "1Gi", "30s",
           "example.com/key", "nvidia.com/rdma-vf", "vllm/vllm-openai", "v0.17.1", "=mlx5_0,mlx5_1", "eth0",
           "ocid1.subnet.oc1..x", "Exists", "NoExecute", "\t", "😀" * 3]
ATOMS = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, 1, -1, 2, 8, 64, 65, 65535, 65536, 2**31, 2**63, 10**30]), st.integers(-3, 100),
    st.sampled_from([0.5, 1.0, 1.5, -0.0, 1e300]),
    st.sampled_from(STRINGS), st.text(max_size=12),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-./_", min_size=1, max_size=70),
)
MAP_KEYS = st.one_of(st.sampled_from(["example.com/team", "team", "a b", "Team", "x" * 70, "app.kubernetes.io/name",
                                      "NCCL_IB_TC", "NCCL_X", "checksum/config", "-x", "a/b/c"]),
                     st.text(max_size=10))
ANY = st.recursive(ATOMS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(MAP_KEYS, inner, max_size=3)), max_leaves=5)


def plausible(path: str) -> st.SearchStrategy[Any]:
    """Values a user would try for ``path``: its enum or default, or anything at all."""
    sub = KEYS[path]
    known = list(sub.get("enum", [])) + ([sub["default"]] if "default" in sub else [])
    if isinstance(sub.get("additionalProperties"), dict):
        return st.one_of(st.dictionaries(MAP_KEYS, st.one_of(st.sampled_from(STRINGS), ATOMS), max_size=3), ANY)
    return st.one_of(st.sampled_from(known), ANY) if known else ANY


ASSIGNMENTS = st.lists(st.sampled_from(sorted(KEYS)).flatmap(lambda p: st.tuples(st.just(p), plausible(p))),
                       min_size=1, max_size=3)
CASES = st.tuples(ASSIGNMENTS, st.sampled_from(["h100", "gpu4", "mi300x"]),
                  st.sampled_from(["llama405b", "llama70b", "llama405b-fp8"]))
COUNTER = itertools.count()


def nested(assignments: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in assignments:
        node = out
        *parents, last = path.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    return out


def helm(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path(name)), "template", *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})


def check_rendered(helm3: subprocess.CompletedProcess[str], helm4: subprocess.CompletedProcess[str]) -> None:
    assert helm3.returncode == 0 and helm4.returncode == 0, helm3.stderr + helm4.stderr
    assert helm3.stdout == helm4.stdout, "helm 3 and helm 4 render differently"
    crds = SHARED_CRDS if SHARED_CRDS.is_dir() else None
    assert validate_documents(load_manifests(helm4.stdout), crds=crds) == []


@settings(max_examples=EXAMPLES, derandomize=not EXPLORE, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(case=CASES)
def test_any_values_fail_cleanly_or_give_a_chart_kubernetes_accepts(case: tuple[list[tuple[str, Any]], str, str],
                                                                    tmp_path: Path) -> None:
    assignments, preset, model = case
    work = tmp_path / str(next(COUNTER))
    work.mkdir()
    values = work / "values.yaml"
    values.write_text(yaml.safe_dump(nested(assignments), allow_unicode=True), encoding="utf-8")
    out = work / "out"
    try:
        generate(request(preset=preset, model=model, sources=ValueSources(files=(values,))), output=out)
    except InputError as exc:
        OUTCOMES[type(exc).__name__] = OUTCOMES.get(type(exc).__name__, 0) + 1
        message = str(exc)
        named = {str(values)} | {part for path, _ in assignments for part in (path, *path.split("."))}
        assert any(n in message for n in named) or "nodes" in message, message
        assert [p.name for p in work.iterdir()] == ["values.yaml"], "something was written"
    else:
        OUTCOMES["written"] = OUTCOMES.get("written", 0) + 1
        check_rendered(helm("helm3", "llama405b", str(out)), helm("helm4", "llama405b", str(out)))

    plain = helm("helm4", "llama405b", str(chart_dir()), "-f", str(values))
    if plain.returncode == 0:
        crds = SHARED_CRDS if SHARED_CRDS.is_dir() else None
        assert validate_documents(load_manifests(plain.stdout), crds=crds) == []
    elif not plain.stderr.startswith(f"Error: failed to parse {values}"):  # YAML helm itself cannot read
        assert not any(t in plain.stderr for t in TEMPLATE_ERRORS), plain.stderr
        assert any(r in plain.stderr for r in REFUSALS), plain.stderr


@pytest.mark.parametrize("assignments", [
    [("nameOverride", "a--b"), ("fullnameOverride", "")],
    [("placement.nodeSelector", {"helm-rdma.io/cluster-network": "x"})],
    [("rdma.mode", "sriov"), ("rdma.sriov.resourceName", "nvidia.com/gpu")],
    [("placement.tolerations", [{"key": "k", "operator": "Equal", "value": "v", "effect": "NoExecute",
                                 "tolerationSeconds": 9223372036854775807}])],
    [("podLabels", {"example.com/team": "ml"}), ("podAnnotations", {"example.com/x": "y\nz"})],
    [("nccl.settings", {"NCCL_IB_HCA": None, "NCCL_IB_TC": 106})],
])
def test_chosen_values_fail_cleanly_or_render(assignments: list[tuple[str, Any]], tmp_path: Path) -> None:
    """Cases the property found or that sit on a boundary, kept so that they are always run."""
    test_any_values_fail_cleanly_or_give_a_chart_kubernetes_accepts.hypothesis.inner_test(  # type: ignore[attr-defined]
        case=(assignments, "h100", "llama405b"), tmp_path=tmp_path)
