"""The API key Secret helm-rdma names when the values name none: the plugin's commands name it after the release,
install and upgrade create it with a random key when it is missing (the real `kubernetes` client against kmock) and
never rotate it, nothing renders a key, and plain helm without a key refuses under hostNetwork."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from helm_rdma.cli import main
from helm_rdma.cluster.apikey import ensure_api_key_secret
from helm_rdma.commands.template import template
from helm_rdma.helmenv import HelmEnv
from helm_rdma.resolve.values import resolve

from .conftest import helm_path
from .helm_stand_in import recording_helm
from .kmock_cluster import Cluster
from .rendering import request
from .test_rules import plain_helms, problems

SECRET = "llama405b-api-key"
HELM = """#!/bin/sh
case "$1" in
  install|upgrade) echo "$@" >> "{log}"; echo "NAME: $2"; echo "STATUS: deployed" ;;
  *) exec "%s" "$@" ;;
esac
"""


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml", "labels": {}}}
    with Cluster([ns], tmp_path / "kubeconfig") as found:
        monkeypatch.setenv("KUBECONFIG", str(found.kubeconfig))
        yield found


@pytest.fixture
def installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A helm that renders for real and records install and upgrade instead of running them."""
    return recording_helm(tmp_path, monkeypatch, HELM % helm_path("helm4"))


def key_in(cluster: Cluster, name: str = SECRET) -> str:
    return base64.b64decode(cluster.get("v1/secrets", "ml", name)["data"]["api-key"]).decode()


# These installs are about the API key Secret: the group's ports are accepted open (tests/test_doctor_cluster.py
# holds install's check of them).
OPEN_PORTS = ("--set", "distributed.allowOpenGroupPorts=true")


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [*args, "llama405b", "--preset", "h100", "-n", "ml", *OPEN_PORTS])


def test_install_creates_the_secret_once_and_upgrade_never_rotates_it(cluster: Cluster, installs: Path) -> None:
    first = run("install")
    assert first.exit_code == 0, first.output
    key = key_in(cluster)
    assert len(key) >= 43  # secrets.token_urlsafe(32): 256 random bits
    assert (f"created Secret {SECRET} in namespace ml with a random API key (kept on upgrade and uninstall); read it: "
            f"kubectl -n ml get secret {SECRET} -o jsonpath='{{.data.api-key}}' | base64 -d") in first.stderr
    for _ in range(2):
        again = run("upgrade")
        assert again.exit_code == 0, again.output
        assert key_in(cluster) == key and "created Secret" not in again.stderr
    assert [line.split()[0] for line in installs.read_text().splitlines()] == ["install", "upgrade", "upgrade"]


def test_a_secret_the_user_made_or_named_is_never_touched(cluster: Cluster, installs: Path) -> None:
    cluster.put({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": SECRET, "namespace": "ml"},
                 "data": {"api-key": base64.b64encode(b"chosen").decode()}})
    assert run("install").exit_code == 0
    assert key_in(cluster) == "chosen"
    named = CliRunner().invoke(main, ["install", "other", "--model", "llama405b", "--preset", "h100", "-n", "ml",
                                      "--set", "api.keySecret.name=theirs", *OPEN_PORTS])
    assert named.exit_code == 0, named.output
    opted_out = CliRunner().invoke(main, ["install", "open", "--model", "llama405b", "--preset", "h100", "-n",
                                          "ml", "--set", "api.allowUnauthenticated=true", *OPEN_PORTS])
    assert opted_out.exit_code == 0, opted_out.output
    assert cluster.names("v1/secrets", "ml") == [SECRET]


@pytest.mark.parametrize("cluster_checks", [True, False])
def test_values_a_chart_rule_refuses_create_no_secret(cluster_checks: bool, cluster: Cluster, installs: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's rules are helm's verdict: read from the cluster checks' render, or asked before the Secret is made
    when those do not run (the stand-in helm here would install anything)."""
    if cluster_checks:
        monkeypatch.delenv("HELM_RDMA_SKIP_CLUSTER_CHECKS")
    out = CliRunner().invoke(main, ["install", "llama405b", "--preset", "h100", "-n", "ml",
                                    "--set", "vllm.pipelineParallelSize=3"])
    assert out.exit_code == 2 and "error   vllm.tensorParallelSize: TP 8 x PP 3" in out.output, out.output
    assert cluster.names("v1/secrets", "ml") == [] and not installs.exists()


def test_two_installs_at_once_end_with_one_key(cluster: Cluster) -> None:
    env = HelmEnv(kubeconfig=str(cluster.kubeconfig), namespace="ml")
    made: list[Any] = []
    start = threading.Barrier(2)

    def one() -> None:
        start.wait()
        made.append(ensure_api_key_secret(name=SECRET, key="api-key", release="llama405b", env=env))

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(m.created for m in made) == [False, True]
    assert cluster.names("v1/secrets", "ml") == [SECRET] and key_in(cluster)


def test_doctor_on_the_cluster_says_install_creates_the_missing_secret(cluster: Cluster) -> None:
    out = CliRunner().invoke(main, ["doctor", "llama405b", "--preset", "h100", "-n", "ml", "--cluster"])
    line = next(x for x in out.stdout.splitlines() if x.split()[1:2] == ["secret"] and SECRET in x)
    assert line.startswith(f"ok      secret {SECRET}/api-key: does not exist yet: helm rdma install and upgrade "
                           "create it with a random key")


REF = f'name: "{SECRET}"'


@pytest.mark.parametrize("command", [("template",), ("install", "--dry-run"), ("upgrade", "--dry-run")])
def test_every_plugin_command_names_the_secret_after_the_release(command: tuple[str, ...]) -> None:
    out = CliRunner().invoke(main, [command[0], "llama405b", "--preset", "h100", *command[1:]])
    assert out.exit_code == 0, out.output
    assert REF in out.stdout and "HELM_RDMA_API_KEY" in out.stdout


def test_generate_writes_the_secrets_name_and_doctor_takes_it(tmp_path: Path) -> None:
    out = CliRunner().invoke(main, ["generate", "llama405b", "--preset", "h100", "-o", str(tmp_path / "chart")])
    assert out.exit_code == 0, out.output
    values = yaml.safe_load((tmp_path / "chart" / "values.yaml").read_text())
    assert values["api"]["keySecret"] == {"name": SECRET, "key": "api-key"}
    assert values["api"]["allowUnauthenticated"] is False
    doctor = CliRunner().invoke(main, ["doctor", "llama405b", "--preset", "h100"])
    assert doctor.exit_code == 0 and "api-key" not in doctor.stdout, doctor.output
    # naming no Secret on purpose is the user's choice: doctor then says what plain helm says
    none = CliRunner().invoke(main, ["doctor", "llama405b", "--preset", "h100", "--set", "api.keySecret.name="])
    assert none.exit_code != 0 and "api.keySecret.name: is empty under hostNetwork" in none.stdout, none.output
    assert "api.allowUnauthenticated=true" in none.stdout


def test_the_default_follows_what_the_user_set() -> None:
    assert resolve(request()).values["api"]["keySecret"] == {"name": SECRET, "key": "api-key"}
    assert resolve(request(release="demo", model="llama70b")).values["api"]["keySecret"]["name"] == "demo-api-key"
    assert resolve(request(sets=("api.keySecret.name=mine",))).values["api"]["keySecret"]["name"] == "mine"
    assert resolve(request(sets=("api.allowUnauthenticated=true",))).values["api"]["keySecret"]["name"] == ""
    assert resolve(request(sets=("api.keySecret.name=",))).values["api"]["keySecret"]["name"] == ""


def test_two_renders_of_the_same_values_are_byte_identical() -> None:
    # GitOps renders the chart again on every sync (Argo CD runs `helm template`): a random key would change the
    # manifests each time, and roll the pods.
    first, second = (template(request(), namespace="ml", helm_args=("--kube-version", "1.30.0")).manifests
                     for _ in range(2))
    assert first == second
    assert f"name: \"{SECRET}\"" in first and "kind: Secret" not in first


def test_plain_helm_without_a_key_refuses_under_host_network_naming_the_opt_out(tmp_path: Path) -> None:
    # charts/vllm-rdma is `generate llama405b` output and names llama405b-api-key: a chart that names no key
    f = tmp_path / "values.json"
    f.write_text(json.dumps({"api": {"keySecret": {"name": ""}}}))
    for helm, out in plain_helms("llama405b", f).items():
        assert out.returncode != 0, helm
        [line] = problems(out.stderr)
        assert line.startswith("api.keySecret.name: is empty under hostNetwork") and \
            "api.allowUnauthenticated=true" in line, (helm, line)
    f.write_text(json.dumps({"api": {"keySecret": {"name": ""}, "allowUnauthenticated": True}}))
    assert [out.returncode for out in plain_helms("llama405b", f).values()] == [0, 0]
    f.write_text(json.dumps({"api": {"keySecret": {"name": ""}}, "rdma": {"mode": "sriov"},
                             "nccl": {"settings": {"NCCL_IB_HCA": "mlx5"}}}))
    assert [out.returncode for out in plain_helms("llama405b", f).values()] == [0, 0]
