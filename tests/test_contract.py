"""The chart's contract with the Python side (generator/helm_rdma/contract.py), held against what the chart renders
and what its scripts print: a template renamed without the contract, or the other way round, fails here."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from helm_rdma import contract
from helm_rdma.datafiles import chart_dir

from .rendering import of_kind, render

PACKAGE = Path(contract.__file__).parent


def lws_templates(docs: list[dict]) -> dict[str, dict]:
    [lws] = of_kind(docs, "LeaderWorkerSet")
    return {role: lws["spec"]["leaderWorkerTemplate"][f"{role}Template"] for role in ("leader", "worker")}


def test_serving_pods_carry_the_contracts_labels_and_containers() -> None:
    docs = render("api.keySecret.name=vllm-api-key")
    for role, template in lws_templates(docs).items():
        labels = template["metadata"]["labels"]
        assert labels[contract.INSTANCE_LABEL] == "llama405b"
        assert labels[contract.COMPONENT_LABEL] == {"leader": contract.LEADER, "worker": contract.WORKER}[role]
        spec = template["spec"]
        assert [c["name"] for c in spec["initContainers"]] == [
            contract.PORT_GUARD_CONTAINER, contract.DOWNLOAD_CONTAINER, contract.PREFLIGHT_CONTAINER,
            contract.PREFLIGHT_VERDICT_CONTAINER]
        assert spec["containers"][0]["name"] == contract.SERVING_CONTAINER
        env = {e["name"]: e.get("valueFrom") for e in spec["containers"][0]["env"]}
        assert env["HELM_RDMA_GROUP"]["fieldRef"]["fieldPath"] == f"metadata.labels['{contract.LWS_GROUP_LABEL}']"
    leader = lws_templates(docs)["leader"]["spec"]
    assert [c["name"] for c in leader["containers"]] == [contract.SERVING_CONTAINER]
    for template in lws_templates(render("verify.preflight.enabled=false")).values():
        assert [c["name"] for c in template["spec"]["initContainers"]] == [
            contract.PORT_GUARD_CONTAINER, contract.DOWNLOAD_CONTAINER, contract.BARRIER_CONTAINER]
    for d in of_kind(render(*("workload.kind=StatefulSet",)), "StatefulSet"):
        assert d["spec"]["template"]["metadata"]["labels"][contract.COMPONENT_LABEL] in contract.SERVING_COMPONENTS


def test_the_release_configmap_carries_the_test_templates_the_contract_names() -> None:
    [cm] = [d for d in of_kind(render(), "ConfigMap")
            if d["metadata"]["labels"].get(contract.COMPONENT_LABEL) == contract.RELEASE_COMPONENT]
    assert set(contract.TEST_TEMPLATES) <= set(cm["data"])
    for name in contract.TEST_TEMPLATES:
        assert (chart_dir() / "templates" / name).is_file()


def test_the_preflight_prints_the_contracts_result_line() -> None:
    spec = importlib.util.spec_from_file_location("nccl_allreduce", chart_dir() / "files" / "nccl_allreduce.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.RESULT_PREFIX == contract.PREFLIGHT_RESULT_PREFIX


def test_no_python_outside_the_contract_restates_its_names() -> None:
    # Names that only the chart could mean (plain words such as "leader" or "preflight" also name other things).
    literals = {v for k, v in vars(contract).items()
                if k.isupper() and isinstance(v, str) and any(c in v for c in "/-.:")}
    literals |= set(contract.TEST_TEMPLATES)
    for path in PACKAGE.rglob("*.py"):
        if path.name == "contract.py":
            continue
        text = path.read_text()
        for value in literals:
            assert not re.search(re.escape(f'"{value}"'), text), f"{path.name} restates {value!r}: use contract"
