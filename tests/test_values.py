from __future__ import annotations

from pathlib import Path

import pytest

from helm_rdma.errors import SchemaViolation, SetSyntaxError, TooFewNodesError, YamlFileError
from helm_rdma.overrides import parse_set
from helm_rdma.values import resolve


def test_preset_and_model_fill_the_values() -> None:
    r = resolve(release="llama405b", preset="h100")
    v = r.values
    assert v["preset"]["shape"] == "BM.GPU.H100.8"
    assert v["model"]["name"] == "meta-llama/Llama-3.1-405B-Instruct"
    assert (v["nodes"], v["vllm"]["tensorParallelSize"], v["vllm"]["pipelineParallelSize"]) == (2, 8, 2)
    assert v["nccl"]["settings"]["NCCL_IB_GID_INDEX"] == "3"
    assert "NCCL_TIMEOUT" not in v["nccl"]["settings"]
    assert v["placement"]["clusterNetworkLabel"] == {"enabled": None, "key": "helm-rdma.io/cluster-network", "value": ""}


def test_release_name_that_is_not_an_alias_needs_model() -> None:
    r = resolve(release="prod", preset="h100", model="llama70b")
    assert r.values["model"]["servedName"] == "llama70b" and r.values["nodes"] == 1


def test_precedence_preset_model_files_set_flags(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("vllm:\n  maxModelLen: 16384\n  gpuMemoryUtilization: 0.8\nreplicas: 2\n")
    second = tmp_path / "b.yaml"
    second.write_text("vllm:\n  maxModelLen: 8192\n")
    r = resolve(release="llama405b", preset="h100", value_files=(first, second),
                set_values=("replicas=3", "vllm.maxModelLen=4096"), max_model_len=2048)
    v = r.values
    assert v["vllm"]["maxModelLen"] == 2048          # flag beats --set beats files beats model
    assert v["replicas"] == 3                        # --set beats -f
    assert v["vllm"]["gpuMemoryUtilization"] == 0.8  # first file, untouched by the second
    assert r.plan.max_model_len == 2048


def test_nodes_from_a_values_file_are_checked_by_the_planner(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("nodes: 1\n")
    with pytest.raises(TooFewNodesError, match="at least 2"):
        resolve(release="llama405b", preset="h100", value_files=(f,))


def test_user_added_nccl_key_is_kept_and_noted() -> None:
    r = resolve(release="llama405b", preset="h100", set_values=("nccl.settings.NCCL_IB_TC=106",))
    assert r.values["nccl"]["settings"]["NCCL_IB_TC"] == 106
    assert r.notes["nccl.settings.NCCL_IB_TC"] == "Set by --set nccl.settings.NCCL_IB_TC=106."


def test_schema_errors_name_the_key_the_expectation_and_the_origin(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("rdma:\n  mode: infiniband\n")
    with pytest.raises(SchemaViolation) as info:
        resolve(release="llama405b", preset="h100", value_files=(f,), set_values=("vllm.bogus=1",))
    text = str(info.value)
    assert f"rdma.mode: 'infiniband' is not one of 'hostNetwork', 'sriov' (from -f {f})" in text
    assert 'vllm.bogus: unknown key "bogus"' in text and "(from --set vllm.bogus=1)" in text


def test_values_file_that_is_not_a_mapping(tmp_path: Path) -> None:
    f = tmp_path / "list.yaml"
    f.write_text("- a\n- b\n")
    with pytest.raises(YamlFileError, match="expected a mapping of values, got list"):
        resolve(release="llama405b", preset="h100", value_files=(f,))


@pytest.mark.parametrize(("argument", "expected"), [
    ("a.b=1", {"a": {"b": 1}}),
    ("a=true,b=x", {"a": True, "b": "x"}),
    ("a.b=null", {"a": {"b": None}}),
    (r"sel.node\.kubernetes\.io/x=y", {"sel": {"node.kubernetes.io/x": "y"}}),
    ("t[1].key=k", {"t": [{}, {"key": "k"}]}),
    ("args={--a,--b}", {"args": ["--a", "--b"]}),
    ("s=", {"s": ""}),
    (r"h==a\,b,c=1", {"h": "=a,b", "c": 1}),
])
def test_set_parses_like_helm(argument: str, expected: dict) -> None:
    assert parse_set(argument) == expected


@pytest.mark.parametrize("argument", ["novalue", "=1", "a..b=1"])
def test_bad_set_says_what_is_expected(argument: str) -> None:
    with pytest.raises(SetSyntaxError, match="expected KEY=VALUE"):
        parse_set(argument)
