"""The chart's cross-field rules (charts/vllm-rdma/templates/_rules.tpl) are the one verdict on values that do not fit
together: every rule's example (tests/fixtures/rules.yaml) is refused by plain helm 3 and 4 and reported by doctor,
which renders the chart, in the same words; doctor's own doubts (checks/doctor.py) are reported and plain helm renders
them; and the defaults pass both."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma import contract
from helm_rdma.checks import lookalikes
from helm_rdma.checks.doctor import value_findings
from helm_rdma.checks.facts import group_watch, oci_hooks, port_guard
from helm_rdma.checks.finding import Finding
from helm_rdma.cli import main
from helm_rdma.commands.doctor import UNCHECKED, UNCHECKED_FIX, doctor, with_chart_verdict
from helm_rdma.contract import VALIDATE_MARKER
from helm_rdma.datafiles import chart_dir
from helm_rdma.resolve.values import resolve
from helm_rdma.resolve.valuesources import ValueSources

from .conftest import helm_path
from .helm_stand_in import recording_helm
from .rendering import request
from .test_bad_input import values_file
from .test_golden import CASES, EXTRAS

FIXTURE = yaml.safe_load((Path(__file__).parent / "fixtures" / "rules.yaml").read_text())
RULES_TPL = (chart_dir() / "templates" / "_rules.tpl").read_text()
DEFAULTS = yaml.safe_load((chart_dir() / "values.yaml").read_text())
RELEASE = "llama405b"


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


@pytest.mark.parametrize("rule", FIXTURE, ids=[r["id"] for r in FIXTURE])
def test_each_rules_example_is_refused_by_plain_helm_and_doctor_in_the_same_words(
        rule: dict[str, Any], tmp_path: Path) -> None:
    release, severity = rule.get("release", RELEASE), rule.get("severity", "error")
    f = values_file(tmp_path, rule["example"])
    line = f"{rule['key']}: {rule['message']}; fix: {rule['fix']}"
    for helm, out in plain_helms(release, f).items():
        if severity == "error":  # this rule's line and no other
            assert out.returncode != 0 and problems(out.stderr) == [line], (helm, out.stderr)
        else:  # a doubt: doctor's only
            assert out.returncode == 0, (helm, out.stderr)
    # what doctor reports (the release as the chart sees it: helm-rdma refuses a name the chart's Services cannot carry
    # before it renders anything)
    resolved = resolve(request(release=RELEASE, sources=ValueSources(files=(f,))))._replace(release=release)
    found = with_chart_verdict(value_findings(resolved), resolved)
    assert Finding(severity, rule["key"], rule["message"], rule["fix"]) in found, [x.line() for x in found]
    assert f"{severity:<7} {line}" in [x.line() for x in found]


RAY = {"distributed.backend": "ray", "distributed.ray.authTokenSecret.name": "ray-token"}
SCRATCH = [{"name": "tmp", "mountPath": "/scratch"}]
RAY_DROPPED = ("distributed.backend: is ray, but the stock image docker.io/vllm/vllm-openai:v0.18.0 ships no Ray (stock "
               "vLLM images dropped it from v0.18); fix: set image.tag=v0.17.1, use an image with Ray, or set "
               "distributed.backend=native")
UNKNOWN_VOLUME = ("extraVolumeMounts: a mount here or in a container's volumeMounts names a volume the pods do not have "
                  "({}); fix: add it to extraVolumes")
HOST_DEVICE_PATH = ("model.storage.mountPath: /dev/infiniband, rdma.devicePath (/dev/infiniband) and the chart's own "
                    "mounts (/dev/shm, /opt/helm-rdma, /tmp and nccl.configFile, /etc/nccl.conf) repeat a path; fix: "
                    "choose another path")


@pytest.mark.parametrize(("values", "lines"), [
    # Go's semverCompare parses each part into 64 bits: a longer number is no version on either side, not a crash.
    ({**RAY, "image.tag": "v99999999999999999999.0.0"}, []),
    ({**RAY, "image.tag": "v0.18.0"}, [RAY_DROPPED]),
    ({**RAY, "image.tag": "0.17.1-cu128"}, []),
    # The pod has a tmp volume only where the preflight is an init container (LeaderWorkerSet, more than one node),
    # and infiniband only where the node's devices are mounted.
    ({"extraVolumeMounts": SCRATCH}, []),
    ({"workload.kind": "StatefulSet", "extraVolumeMounts": SCRATCH}, [UNKNOWN_VOLUME.format("tmp")]),
    ({"rdma.mode": "sriov", "extraVolumeMounts": [{"name": "infiniband", "mountPath": "/ib"}]},
     [UNKNOWN_VOLUME.format("infiniband")]),
    # With a device plugin, the chart does not mount rdma.devicePath: the path is free.
    ({"rdma.devicePluginResource": "rdma/hca", "model.storage.mountPath": "/dev/infiniband"}, []),
    ({"model.storage.mountPath": "/dev/infiniband"}, [HOST_DEVICE_PATH]),
], ids=["huge-version", "ray-dropped", "ray-kept", "lws-tmp", "sts-tmp", "sriov-infiniband", "plugin-device-path",
        "host-device-path"])
def test_at_the_rules_edges_plain_helm_3_and_4_agree(values: dict[str, Any], lines: list[str], tmp_path: Path) -> None:
    f = values_file(tmp_path, values)
    for helm, out in plain_helms(RELEASE, f).items():
        assert (problems(out.stderr) if out.returncode else []) == lines, (helm, out.stderr)


def test_the_default_values_break_no_rule_in_doctor_or_plain_helm(tmp_path: Path) -> None:
    f = tmp_path / "values.json"
    f.write_text("{}")
    assert [out.returncode for out in plain_helms(RELEASE, f).values()] == [0, 0]
    found = doctor(request(release=RELEASE)).findings
    assert not [x for x in found if x.severity == "error"], [x.line() for x in found]


def test_doctor_reports_the_charts_rules_and_its_own_together(tmp_path: Path) -> None:
    f = values_file(tmp_path, {"vllm.pipelineParallelSize": 3, "vllm.port": 10250, "image.repository": "vllm/x"})
    found = {(x.severity, x.key) for x in doctor(request(sources=ValueSources(files=(f,)))).findings}
    assert {("error", "vllm.tensorParallelSize"), ("error", "vllm.port"), ("warning", "image.repository")} <= found


def test_doctor_without_helm_says_the_charts_rules_were_not_checked(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELM_BIN", str(tmp_path / "no-helm"))
    f = values_file(tmp_path, {"vllm.port": 10250, "nccl.settings.NCCL_TIMEOUT": "1"})
    found = doctor(request(sources=ValueSources(files=(f,)))).findings
    assert Finding("warning", "chart", UNCHECKED, UNCHECKED_FIX) in found
    # doctor's own checks still run, the look-alikes among them
    assert {"vllm.port", "nccl.settings.NCCL_TIMEOUT"} <= {x.key for x in found if x.severity == "error"}


def _defines(prefix: str) -> list[str]:
    """The defines of every template file (a feature's rules may sit beside it, as _router.tpl's do)."""
    texts = "".join(p.read_text() for p in sorted((chart_dir() / "templates").glob("*.tpl")))
    return re.findall(r'define "vllm-rdma\.' + re.escape(prefix) + r'([a-z0-9-]+)"', texts)


def test_every_rule_of_the_chart_has_one_example_and_validate_values_includes_it() -> None:
    errors = [r["id"] for r in FIXTURE if r.get("severity", "error") == "error"]
    assert sorted(_defines("rule.")) == sorted(errors)  # doubts are doctor's, not the chart's
    [listed] = re.findall(r"range \$rule := list (.*?) \}\}", RULES_TPL, re.S)
    assert listed.split() == [json.dumps(i) for i in errors]  # in the fixture's order, each once
    assert f'"\\n\\n{VALIDATE_MARKER}\\n' in RULES_TPL


def test_rule_ids_are_unique_and_every_key_is_a_chart_value() -> None:
    ids = [r["id"] for r in FIXTURE]
    assert len(ids) == len(set(ids))
    for rule in FIXTURE:
        node: Any = DEFAULTS
        for part in rule["key"].split("."):
            assert isinstance(node, dict) and (part in node or node == {}), (rule["id"], rule["key"])
            node = node.get(part, {})


def test_the_rules_know_the_charts_containers_by_the_contracts_names() -> None:
    [names] = re.findall(r'define "vllm-rdma.chartContainerNames" -}}\n\{\{- \$names := list ([^}]*) }}', RULES_TPL)
    assert names.split() == [json.dumps(n) for n in (contract.SERVING_CONTAINER, contract.PREFLIGHT_CONTAINER,
                                                      contract.PREFLIGHT_VERDICT_CONTAINER, contract.BARRIER_CONTAINER,
                                                      contract.DOWNLOAD_CONTAINER)]


# The chart's helpers that Python mirrors (checks/facts.py), by name.
MIRRORS = {"groupWatch": group_watch, "ociHooks": oci_hooks, "portGuard": port_guard}
FACT_PROBE = """{{- range $i, $values := .Values.probeCases }}
{{ $i }}: "{{ include "vllm-rdma.groupWatch" (dict "Values" $values) }},{{ include "vllm-rdma.ociHooks" (dict "Values" $values) }},{{ include "vllm-rdma.portGuard" (dict "Values" $values) }}"
{{- end }}
"""


def test_the_python_facts_are_the_charts_helpers_across_the_render_matrix(tmp_path: Path) -> None:
    """One helm render asks the chart's own helpers about every case of the matrix and the optional parts."""
    cases: list[tuple[str, tuple[str, ...], dict[str, Any]]] = [("h100", ("workload.kind=StatefulSet",),
                                                                  {"model": "llama70b", "nodes": 1})]
    cases += [(p, (f"distributed.backend={b}", f"workload.kind={k}", f"rdma.mode={m}"), {}) for p, b, k, m in CASES]
    cases += [("h100", sets, {}) for sets in EXTRAS.values()]
    values = [resolve(request(preset=p, sets=sets, **fields)).values for p, sets, fields in cases]
    chart = tmp_path / "chart"
    shutil.copytree(chart_dir(), chart)
    (chart / "values.schema.json").unlink()  # the probe's own key
    (chart / "templates" / "probe.yaml").write_text(FACT_PROBE)
    f = tmp_path / "values.json"
    f.write_text(json.dumps({"probeCases": values}))
    out = subprocess.run([str(helm_path("helm4")), "template", RELEASE, str(chart), "-f", str(f),
                          "--show-only", "templates/probe.yaml"], capture_output=True, text=True, timeout=60,
                         check=True)
    answers = {i: tuple(a == "true" for a in text.split(",")) for i, text in yaml.safe_load(out.stdout).items()}
    for i, v in enumerate(values):
        assert answers[i] == tuple(f(v) for f in MIRRORS.values()), cases[i]
    for fact in range(len(MIRRORS)):  # both sides of each fact
        assert {a[fact] for a in answers.values()} == {True, False}, list(MIRRORS)[fact]


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


def test_the_charts_lookalikes_template_is_what_the_schema_says() -> None:
    assert (chart_dir() / lookalikes.TEMPLATE).read_text() == lookalikes.go_template(), "run `make chart`"


# -- the commands read the chart's verdict from the helm run they make ---------------------------------------------

def helm_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Real helm 4 behind a stand-in that logs each call's arguments; returns the log."""
    return recording_helm(tmp_path, monkeypatch, f'#!/bin/sh\necho "$@" >> {{log}}\nexec {helm_path("helm4")} "$@"\n')


def test_generate_and_doctor_run_helm_once_on_the_chart(runner: CliRunner, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    log = helm_runs(tmp_path, monkeypatch)
    out = runner.invoke(main, ["generate", RELEASE, "--preset", "h100", "--output-dir", str(tmp_path / "chart")])
    assert out.exit_code == 0, out.output
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["template"]
    log.unlink()
    out = runner.invoke(main, ["doctor", RELEASE, "--preset", "h100"])
    assert [line.split()[0] for line in log.read_text().splitlines()] == ["template"]


def test_generate_lists_the_charts_rules_and_its_own_errors_together_and_writes_nothing(
        runner: CliRunner, tmp_path: Path) -> None:
    out = runner.invoke(main, ["generate", RELEASE, "--preset", "h100", "--output-dir", str(tmp_path / "chart"),
                               "--set", "vllm.pipelineParallelSize=3", "--set", "vllm.port=10250"])
    assert out.exit_code == 2, out.output
    assert "error   vllm.tensorParallelSize: TP 8 x PP 3 = 24" in out.output  # the chart's rule
    assert "error   vllm.port: port 10250 is taken on the node by the kubelet" in out.output  # doctor's own
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["generate", "--output-dir", "OUT"], ["install", "--dry-run"],
                                     ["upgrade", "--dry-run"]])
def test_a_chart_rule_stops_a_command_in_doctors_words(command: list[str], runner: CliRunner,
                                                      tmp_path: Path) -> None:
    rule = FIXTURE[0]
    args = [command[0], RELEASE, "--preset", "h100", *[a.replace("OUT", str(tmp_path / "c")) for a in command[1:]]]
    out = runner.invoke(main, [*args, "--set", "vllm.pipelineParallelSize=3"])
    assert out.exit_code == 2, out.output
    assert f"error   {rule['key']}: {rule['message']}; fix: {rule['fix']}" in out.output
    assert "helm-rdma's checks" in out.output and list(tmp_path.iterdir()) == []
