"""The rule table (schemas/rules.yaml) drives both `helm-rdma doctor` and the chart's validateValues: every rule's
example is refused by plain helm 3 and 4 and reported by doctor, in the same words, and the defaults pass both."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from helm_rdma.checks import lookalikes, rules
from helm_rdma.checks.doctor import value_findings
from helm_rdma.checks.finding import Finding
from helm_rdma.checks.rulestemplate import go_template
from helm_rdma.contract import VALIDATE_MARKER
from helm_rdma.datafiles import chart_dir
from helm_rdma.resolve.values import resolve
from helm_rdma.resolve.valuesources import ValueSources

from .conftest import helm_path
from .rendering import request
from .test_bad_input import values_file

TABLE = rules.load()
DEFAULTS = yaml.safe_load((chart_dir() / "values.yaml").read_text())
RELEASE = "llama405b"


def merged(base: Any, over: Any) -> Any:
    """``over`` on ``base`` as helm merges a values file into the chart's: maps key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        return {**base, **{k: merged(base.get(k), v) for k, v in over.items()}}
    return over


def plain_helm(helm: str, release: str, values: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path(helm)), "template", release, str(chart_dir()), "-f", str(values)],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})


def plain_helms(release: str, values: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """helm 3 and helm 4 rendering charts/vllm-rdma with ``values``, side by side."""
    with ThreadPoolExecutor(2) as pool:
        runs = {helm: pool.submit(plain_helm, helm, release, values) for helm in ("helm3", "helm4")}
        return {helm: run.result() for helm, run in runs.items()}


def problems(stderr: str) -> list[str]:
    """The lines validateValues listed."""
    assert VALIDATE_MARKER in stderr, stderr
    tail = stderr.split(VALIDATE_MARKER, 1)[1]
    return [line.strip()[2:] for line in tail.splitlines() if line.startswith("  - ")]


@pytest.mark.parametrize("rule", TABLE.rules, ids=[r.id for r in TABLE.rules])
def test_each_rules_example_is_refused_by_plain_helm_and_doctor_in_the_tables_words(rule: rules.Rule,
                                                                                    tmp_path: Path) -> None:
    release = rule.release or RELEASE
    f = values_file(tmp_path, rule.example)
    overrides = json.loads(f.read_text())
    # the example breaks this rule and no other
    [broken] = rules.check(merged(DEFAULTS, overrides), release=release)
    assert broken.rule == rule
    line = f"{rule.key}: {broken.message}; fix: {broken.fix}"
    for helm, out in plain_helms(release, f).items():
        if rule.severity == "error":
            assert out.returncode != 0 and problems(out.stderr) == [line], (helm, out.stderr)
        else:  # a doubt: doctor's only
            assert out.returncode == 0, (helm, out.stderr)
    resolved = resolve(request(release=RELEASE, sources=ValueSources(files=(f,))))
    found = value_findings(resolved._replace(release=release))
    assert Finding(rule.severity, rule.key, broken.message, broken.fix) in found, [x.line() for x in found]
    assert f"{rule.severity:<7} {line}" in [x.line() for x in found]


RAY = {"distributed.backend": "ray", "distributed.ray.authTokenSecret.name": "ray-token"}
SCRATCH = [{"name": "tmp", "mountPath": "/scratch"}]


@pytest.mark.parametrize(("values", "broken"), [
    # Go's semverCompare parses each part into 64 bits: a longer number is no version on either side, not a crash.
    ({**RAY, "image.tag": "v99999999999999999999.0.0"}, []),
    ({**RAY, "image.tag": "v0.18.0"}, ["ray-image"]),
    ({**RAY, "image.tag": "0.17.1-cu128"}, []),
    # The pod has a tmp volume only where the preflight is an init container (LeaderWorkerSet, more than one node),
    # and infiniband only where the node's devices are mounted.
    ({"extraVolumeMounts": SCRATCH}, []),
    ({"workload.kind": "StatefulSet", "extraVolumeMounts": SCRATCH}, ["unknown-volume"]),
    ({"rdma.mode": "sriov", "extraVolumeMounts": [{"name": "infiniband", "mountPath": "/ib"}]}, ["unknown-volume"]),
    # With a device plugin, the chart does not mount rdma.devicePath: the path is free.
    ({"rdma.devicePluginResource": "rdma/hca", "model.storage.mountPath": "/dev/infiniband"}, []),
    ({"model.storage.mountPath": "/dev/infiniband"}, ["mount-paths"]),
], ids=["huge-version", "ray-dropped", "ray-kept", "lws-tmp", "sts-tmp", "sriov-infiniband", "plugin-device-path",
        "host-device-path"])
def test_at_the_rules_edges_plain_helm_and_doctor_agree(values: dict[str, Any], broken: list[str],
                                                        tmp_path: Path) -> None:
    f = values_file(tmp_path, values)
    found = rules.check(merged(DEFAULTS, json.loads(f.read_text())), release=RELEASE)
    assert [b.rule.id for b in found] == broken
    lines = [f"{b.rule.key}: {b.message}; fix: {b.fix}" for b in found]
    for helm, out in plain_helms(RELEASE, f).items():
        assert (problems(out.stderr) if out.returncode else []) == lines, (helm, out.stderr)


def test_the_default_values_break_no_rule_in_doctor_or_plain_helm(tmp_path: Path) -> None:
    assert rules.check(DEFAULTS, release=RELEASE) == []
    resolved = resolve(request(release=RELEASE))
    assert rules.check(resolved.values, release=RELEASE) == []
    f = tmp_path / "values.json"
    f.write_text("{}")
    assert [out.returncode for out in plain_helms(RELEASE, f).values()] == [0, 0]


def test_the_charts_rules_template_is_what_the_table_compiles_to() -> None:
    assert (chart_dir() / rules.TEMPLATE).read_text() == go_template(), "run `make chart`"


def test_validate_values_includes_every_rule_and_begins_with_the_contracts_marker() -> None:
    text = (chart_dir() / rules.TEMPLATE).read_text()
    assert f'"\\n\\n{VALIDATE_MARKER}\\n' in text
    for rule in TABLE.rules:  # its define, and validateValues' include when the chart refuses it
        assert text.count(f'"vllm-rdma.rule.{rule.id}"') == (2 if rule.severity == "error" else 1)


def test_rule_ids_are_unique_and_every_key_is_a_chart_value() -> None:
    ids = [r.id for r in TABLE.rules]
    assert len(ids) == len(set(ids))
    for rule in TABLE.rules:
        for key in rule.keys:
            node: Any = DEFAULTS
            for part in key.split("."):
                assert isinstance(node, dict) and (part in node or node == {}), (rule.id, key)
                node = node.get(part, {})


@pytest.mark.parametrize(("text", "problem"), [
    ("eq(a)", "eq takes 2"),
    ("nope(a, b)", "unknown function nope"),
    ("and(a, b", r"no closing \)"),
    ("select(a, b)", "select reads"),
    ("a b", "unexpected"),
    ("eq(a, 'b')", "cannot read"),
])
def test_a_broken_expression_is_refused_with_where_it_breaks(text: str, problem: str) -> None:
    with pytest.raises(rules.RuleTableError, match=problem):
        rules.parse(text)


@pytest.mark.parametrize(("release", "overrides"), [
    ("llama405b", {}), ("demo", {}), ("demo", {"nameOverride": "x"}), ("x" * 53, {}),
    ("demo", {"fullnameOverride": "served-" + "y" * 30}), ("vllm-rdma-a", {}),
])
def test_the_python_fullname_is_the_charts(release: str, overrides: dict[str, Any], tmp_path: Path) -> None:
    f = tmp_path / "values.json"
    f.write_text(json.dumps(overrides))
    out = plain_helm("helm4", release, f)
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(out.stdout) if d}
    assert rules.fullname(merged(DEFAULTS, overrides), release) in names  # the LeaderWorkerSet's, the headless Service's


LOOKALIKES = lookalikes.lookalikes()


@pytest.mark.parametrize("name", LOOKALIKES)
def test_an_nccl_lookalike_is_refused_by_plain_helm_and_doctor_in_the_same_words(name: str, tmp_path: Path) -> None:
    """As a key of nccl.settings and as the name of a vllm.extraEnv entry; the values schema holds the words
    (checks/lookalikes.py), so the editor shows them too (tests/test_editor.py)."""
    extra_env = [{"name": "TORCH_NCCL_BLOCKING_WAIT", "value": "1"}, {"name": name, "value": "1"}]
    f = values_file(tmp_path, {f"nccl.settings.{name}": "1", "vllm.extraEnv": extra_env})
    resolved = resolve(request(release=RELEASE, sources=ValueSources(files=(f,))))
    found = [x for x in value_findings(resolved) if x in lookalikes.findings(resolved.values)]
    assert [(x.severity, x.key) for x in found] == [("error", f"nccl.settings.{name}"),
                                                    ("error", "vllm.extraEnv[1].name")]
    assert found[0].message.startswith(f"{name} ") and found[0].fix
    for helm, out in plain_helms(RELEASE, f).items():
        assert out.returncode != 0 and problems(out.stderr) == [f"{x.key}: {x.message}; fix: {x.fix}" for x in found], \
            (helm, out.stderr)


@pytest.mark.parametrize("helm", ["helm3", "helm4"])
def test_plain_helm_template_with_set_nccl_timeout_fails_naming_the_key(helm: str) -> None:
    """The way Argo CD and Flux pass a parameter: `--set` on the generated chart, without the plugin."""
    out = subprocess.run([str(helm_path(helm)), "template", RELEASE, str(chart_dir()), "--set",
                          "nccl.settings.NCCL_TIMEOUT=1800"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert out.returncode != 0
    assert problems(out.stderr) == ["nccl.settings.NCCL_TIMEOUT: NCCL_TIMEOUT is not an NCCL variable: NCCL's verbs "
                                    "timeout is NCCL_IB_TIMEOUT (the preset sets it), and collective timeouts belong "
                                    "to PyTorch and vLLM; fix: remove it"]


def test_the_lookalikes_are_one_exact_name_each_and_nccls_own_names_are_none_of_them() -> None:
    assert set(LOOKALIKES) == {"NCCL_TIMEOUT", "NCCL_ASYNC_ERROR_HANDLING", "NCCL_BLOCKING_WAIT",
                               "NCCL_SHM_USE_CUDA_MEMCPY"}
    assert not set(LOOKALIKES) & set(DEFAULTS["nccl"]["settings"])
