from __future__ import annotations

from pathlib import Path

import pytest

from helm_rdma.errors import SchemaViolation, SetSyntaxError, TooFewNodesError, YamlFileError
from helm_rdma.resolve.values import resolve
from helm_rdma.resolve.valuesources import ValueSources

from .rendering import render, request


def test_preset_and_model_fill_the_values() -> None:
    r = resolve(request())
    v = r.values
    assert v["preset"]["shape"] == "BM.GPU.H100.8"
    assert v["model"]["name"] == "meta-llama/Llama-3.1-405B-Instruct"
    assert (v["nodes"], v["vllm"]["tensorParallelSize"], v["vllm"]["pipelineParallelSize"]) == (2, 8, 2)
    assert v["nccl"]["settings"]["NCCL_IB_GID_INDEX"] == "3"
    assert "NCCL_TIMEOUT" not in v["nccl"]["settings"]
    assert v["placement"]["clusterNetworkLabel"] == {"enabled": None, "key": "helm-rdma.io/cluster-network", "value": ""}


def test_release_name_that_is_not_an_alias_needs_model() -> None:
    r = resolve(request(release="prod", model="llama70b"))
    assert r.values["model"]["servedName"] == "llama70b" and r.values["nodes"] == 1


def test_precedence_preset_model_files_set_flags(tmp_path: Path) -> None:
    first = tmp_path / "a.yaml"
    first.write_text("vllm:\n  maxModelLen: 16384\n  gpuMemoryUtilization: 0.8\nreplicas: 2\n")
    second = tmp_path / "b.yaml"
    second.write_text("vllm:\n  maxModelLen: 8192\n")
    r = resolve(request(max_model_len=2048, files=(first, second), sets=("replicas=3", "vllm.maxModelLen=4096")))
    v = r.values
    assert v["vllm"]["maxModelLen"] == 2048          # flag beats --set beats files beats model
    assert v["replicas"] == 3                        # --set beats -f
    assert v["vllm"]["gpuMemoryUtilization"] == 0.8  # first file, untouched by the second
    assert r.plan.max_model_len == 2048


@pytest.mark.parametrize(("text", "error", "match"), [
    pytest.param("nodes: 1\n", TooFewNodesError, "at least 2", id="nodes-are-checked-by-the-planner"),
    pytest.param("- a\n- b\n", YamlFileError, "expected a mapping of values, got a list", id="not-a-mapping"),
])
def test_a_values_file_is_refused(text: str, error: type[Exception], match: str, tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text(text)
    with pytest.raises(error, match=match):
        resolve(request(files=(f,)))


def test_user_added_nccl_key_is_kept_and_noted() -> None:
    r = resolve(request(sets=("nccl.settings.NCCL_IB_TC=106",)))
    assert r.values["nccl"]["settings"]["NCCL_IB_TC"] == 106
    assert r.notes["nccl.settings.NCCL_IB_TC"] == "Set by --set nccl.settings.NCCL_IB_TC=106."


def test_schema_errors_name_the_key_the_expectation_and_the_origin(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("rdma:\n  mode: infiniband\n")
    with pytest.raises(SchemaViolation) as info:
        resolve(request(files=(f,), sets=("vllm.bogus=1",)))
    text = str(info.value)
    assert f"rdma.mode: 'infiniband' is not one of 'hostNetwork', 'sriov' (from -f {f})" in text
    assert 'vllm.bogus: unknown key "bogus"' in text and "(from --set vllm.bogus=1)" in text


def test_set_types_only_integers_booleans_and_null_like_helm() -> None:
    r = resolve(request(sets=("image.tag=1.10", "podLabels.team=no", "podLabels.code=007", "replicas=2")))
    assert r.values["image"]["tag"] == "1.10"
    assert r.values["podLabels"] == {"team": "no", "code": "007"}
    assert r.values["replicas"] == 2


def test_set_family_applies_in_helms_order(tmp_path: Path) -> None:
    f = tmp_path / "v.yaml"
    f.write_text("podLabels: {a: file, b: file, c: file, d: file}\n")
    sources = ValueSources(files=(f,), set=("podLabels.b=set,podLabels.c=set",), set_json=('podLabels.a="json"',),
                           set_string=("podLabels.c=string",))
    r = resolve(request(sources=sources))
    assert r.values["podLabels"] == {"a": "json", "b": "set", "c": "string", "d": "file"}
    assert r.origins["podLabels.c"] == "--set-string podLabels.c=string"


def test_null_removes_a_default_and_the_schema_names_the_key() -> None:
    with pytest.raises(SchemaViolation, match=r"model.hfTokenSecret: is required .*\(from --set model.hfTokenSecret=null\)"):
        resolve(request(sets=("model.hfTokenSecret=null",)))
    r = resolve(request(sets=("nccl.settings.NCCL_IB_TC=null",)))
    assert "NCCL_IB_TC" not in r.values["nccl"]["settings"]


@pytest.mark.parametrize("argument", ["novalue", "a..b=1", "a[x]=1", "a={1"])
def test_bad_set_says_what_is_expected(argument: str) -> None:
    with pytest.raises(SetSyntaxError, match="expected KEY=VALUE"):
        resolve(request(sets=(argument,)))


def test_the_barrier_and_vllms_timeout_come_from_the_plan_unless_set() -> None:
    resolved = resolve(request())
    assert resolved.values["distributed"]["barrierMinutes"] == resolved.plan.download_minutes
    assert resolved.values["distributed"]["timeoutSeconds"] == resolved.plan.distributed_timeout_seconds
    assert resolved.notes["distributed.barrierMinutes"].startswith("From the plan: 10 min fixed + 2 x ")
    mine = resolve(request(sets=("distributed.barrierMinutes=90", "distributed.timeoutSeconds=900")))
    assert (mine.values["distributed"]["barrierMinutes"], mine.values["distributed"]["timeoutSeconds"]) == (90, 900)


def test_install_waits_for_llama405b_on_h100_as_long_as_its_plan_says_a_first_start_takes() -> None:
    """helm's --timeout bounds `install --wait` (commands/deploy.py): it must cover the image pull, each node's
    download and the group's barrier, the preflight and the leader's start-up budget, all from the plan; the old
    fixed 60 minutes was shorter than the start-up budget alone."""
    from helm_rdma.commands.deploy import IMAGE_PULL_MINUTES, default_timeout

    resolved = resolve(request(preset="h100", model="llama405b"))
    plan, values = resolved.plan, resolved.values
    minutes = int(default_timeout(values).removesuffix("m"))
    preflight = values["verify"]["preflight"]["timeoutMinutes"]
    assert minutes == IMAGE_PULL_MINUTES + plan.download_minutes + preflight + plan.startup_minutes
    assert minutes > 60 and plan.startup_minutes + plan.download_minutes > 60
    # the chart reckons a first start the same way (its VllmRdmaGroupNotReady alert waits that long)
    [rule] = [d for d in render("monitoring.rules.enabled=true") if d["kind"] == "PrometheusRule"]
    assert rule["spec"]["groups"][0]["rules"][0]["for"] == f"{minutes - IMAGE_PULL_MINUTES}m"
    provisioned = resolve(request(preset="h100", model="llama405b", sets=("clusterNetwork.provision=true",)))
    cn = provisioned.values["clusterNetwork"]
    assert default_timeout(provisioned.values) == f"{minutes + cn['timeoutMinutes'] + cn['nodeTimeoutMinutes']}m"
