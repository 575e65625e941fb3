"""Facts written once: the provisioning defaults live in schemas/values.schema.json and the "OCI hooks run" condition
in the chart's helper vllm-rdma.ociHooks (templates/_facts.tpl), which Python mirrors once (checks/facts.py, held to
the helper by tests/test_rules.py); everything else derives from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from helm_rdma.checks.facts import oci_hooks
from helm_rdma.cli import main
from helm_rdma.commands.provision import ProvisionFlags, ProvisionPlan, plan_from_values
from helm_rdma.oci.clients import OciAuth
from helm_rdma.oci.network import NetworkSpec

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schemas" / "values.schema.json").read_text())
NETWORK = SCHEMA["properties"]["clusterNetwork"]["properties"]
TIMEOUT, NODE_TIMEOUT = NETWORK["timeoutMinutes"]["default"], NETWORK["nodeTimeoutMinutes"]["default"]
SOURCES = [*(ROOT / "generator").rglob("*.py"), *(ROOT / "charts" / "vllm-rdma" / "templates").glob("*")]


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("key", ["timeoutMinutes", "nodeTimeoutMinutes", "bootVolumeSizeGBs", "waitForNodes",
                                 "nvmeRaidLevel", "auth", "apiKeyProfile", "oke.maxPods"])
def test_no_source_restates_a_provisioning_default_as_a_fallback(key: str) -> None:
    leaf = key.rpartition(".")[2]
    fallback = re.compile(rf"""\.get\(\s*["']{leaf}["']\s*,""")  # cn.get("timeoutMinutes", 120)
    assert not [p.name for p in SOURCES if fallback.search(_text(p))]


def test_no_source_writes_the_provisioning_timeouts_in_seconds_or_as_a_duration() -> None:
    literals = {str(TIMEOUT * 60), str(NODE_TIMEOUT * 60), f'"{TIMEOUT // 60}h"', f'"{NODE_TIMEOUT}m"'}
    found = {(p.name, lit) for p in SOURCES for lit in literals if re.search(rf"(?<![\w.=]){lit}(?![\w.])", _text(p))}
    assert not found


def test_the_flags_and_the_records_default_to_the_charts_values() -> None:
    assert ProvisionFlags().timeout_seconds == TIMEOUT * 60
    assert ProvisionFlags().node_timeout_seconds == NODE_TIMEOUT * 60
    assert ProvisionFlags().boot_volume_gbs == NETWORK["bootVolumeSizeGBs"]["default"]
    assert ProvisionFlags().max_pods == NETWORK["oke"]["properties"]["maxPods"]["default"]
    plan = ProvisionPlan(spec=NetworkSpec(name="n", compartment_id="c", availability_domain="a", subnet_id="s",
                                          image_id="i", shape="BM.GPU.H100.8", size=2, release="r", namespace="d"),
                         auth=OciAuth(mode="apiKey", config_file="", profile="DEFAULT", endpoint=None))
    assert (plan.timeout_seconds, plan.node_timeout_seconds) == (TIMEOUT * 60, NODE_TIMEOUT * 60)
    help_text = CliRunner().invoke(main, ["provision", "--help"], terminal_width=200).output
    assert f"[default: {TIMEOUT // 60}h]" in help_text and f"[default: {NODE_TIMEOUT}m]" in help_text


def test_values_without_the_waits_get_the_charts_defaults(tmp_path: Path) -> None:
    values = {"preset": {"shape": "BM.GPU.H100.8"}, "nodes": 2,
              "clusterNetwork": {"name": "n", "compartmentId": "ocid1.compartment.oc1..c", "availabilityDomain": "AD-1",
                                 "subnetId": "ocid1.subnet.oc1..s", "imageId": "ocid1.image.oc1..i"}}
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    plan = plan_from_values(path, release="r", namespace="d")
    assert (plan.timeout_seconds, plan.node_timeout_seconds) == (TIMEOUT * 60, NODE_TIMEOUT * 60)
    assert plan.wait_nodes is NETWORK["waitForNodes"]["default"]
    assert plan.spec.boot_volume_gbs == NETWORK["bootVolumeSizeGBs"]["default"]
    assert plan.auth.mode == NETWORK["auth"]["default"] and plan.auth.profile == NETWORK["apiKeyProfile"]["default"]


def test_the_oci_hooks_condition_is_written_once_as_a_fact() -> None:
    both = re.compile(r"provision\W+(\$v\.|\.Values\.)?(clusterNetwork\.)?deleteOnUninstall|"
                      r"deleteOnUninstall\W+(\$v\.|\.Values\.)?(clusterNetwork\.)?provision\b|"
                      r"provision\W+or\W+network\.get\W+deleteOnUninstall")
    helper = ROOT / "charts" / "vllm-rdma" / "templates" / "_facts.tpl"  # the fact's own helper
    mirror = ROOT / "generator" / "helm_rdma" / "checks" / "facts.py"  # Python's one mirror of it
    in_code = [p.name for p in SOURCES if p not in (helper, mirror) and both.search(_text(p).replace('"', ""))]
    assert not in_code
    assert _text(helper).count(".Values.clusterNetwork.provision .Values.clusterNetwork.deleteOnUninstall") == 1
    assert len(both.findall(_text(mirror))) == 1


@pytest.mark.parametrize(("provision", "delete", "hooks"),
                         [(False, False, False), (True, False, True), (False, True, True), (True, True, True)])
def test_the_oci_hooks_fact_holds_when_a_hook_provisions_or_deprovisions(provision: bool, delete: bool,
                                                                        hooks: bool) -> None:
    assert oci_hooks({"clusterNetwork": {"provision": provision, "deleteOnUninstall": delete}}) is hooks
