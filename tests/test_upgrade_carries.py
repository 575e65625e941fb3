"""An upgrade keeps what names the world outside the chart, or says it would not.

helm-rdma upgrades with `helm upgrade --reset-values` on a chart written from this run's flags and files alone
(commands/deploy.py, _RESET), so a value the install was given and the upgrade leaves out goes back to the chart's
default. For the values that name something outside the chart that is an outage or a bill, not a tuning change: a
new random API key Secret refuses every client's key, an empty token Secret name stops a gated download, a dropped
clusterNetwork.deleteOnUninstall renders no pre-delete hook (templates/job-deprovision.yaml), so uninstall leaves the
bare-metal network running, and another model.name downloads another model. The deployed values are what
`helm get values --all` prints: the chart's values with the user-supplied ones merged (helm pkg/action/
get_values.go, AllValues: chartutil.CoalesceValues(rel.Chart, rel.Config)); here helm's memory driver holds the
deployed revision (HELM_MEMORY_DRIVER_DATA, helm v3.17.4 cmd/helm/helm.go:98-132, v4.2.4 pkg/cmd/root.go:316-350),
and the cluster checks run against kmock. resolve/carried.py names the values this holds for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from helm_rdma.cli import main

from .test_doctor_cluster import clusters, installs, use  # noqa: F401  (fixtures)

INSTALLED = {  # what revision 1 was given, as its chart's values hold them
    "api": {"allowUnauthenticated": False, "keySecret": {"key": "api-key", "name": "vllm-api-key"}},
    "model": {"name": "meta-llama/Llama-3.1-405B-Instruct", "hfTokenSecret": {"key": "token", "name": "hf-token"}},
    "clusterNetwork": {"provision": False, "deleteOnUninstall": False,
                       "oke": {"clusterId": "ocid1.cluster.oc1.iad.aaaa", "nodePackageRepository": "https://old"},
                       "image": {"repository": "old.ocir.io/p/helm-rdma-provisioner", "tag": "0.0.1"}},
    "vllm": {"maxModelLen": 32768},
}
AGAIN = "api.keySecret.name=vllm-api-key,model.hfTokenSecret.name=hf-token,clusterNetwork.oke.clusterId=" \
        "ocid1.cluster.oc1.iad.aaaa"


def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, values: dict[str, Any]) -> None:
    releases = tmp_path / "releases.yaml"
    releases.write_text(yaml.safe_dump([{
        "name": "llama405b", "version": 1, "namespace": "ml", "info": {"status": "deployed"},
        "chart": {"metadata": {"name": "vllm-rdma", "version": "0.1.0"}, "values": values}, "config": {}}]))
    monkeypatch.setenv("HELM_DRIVER", "memory")
    monkeypatch.setenv("HELM_MEMORY_DRIVER_DATA", str(releases))


def upgrade(*args: str) -> Result:
    return CliRunner().invoke(main, ["upgrade", "llama405b", "--preset", "h100", "-n", "ml", *args])


def test_an_upgrade_that_leaves_out_what_the_install_was_given_is_refused_before_helm_runs(
        use: Any, installs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    use("ready")
    deployed(tmp_path, monkeypatch, {**INSTALLED, "model": {**INSTALLED["model"], "name": "org/another-model"},
                                     "clusterNetwork": {**INSTALLED["clusterNetwork"], "deleteOnUninstall": True}})
    out = upgrade("--max-model-len", "65536")
    assert out.exit_code == 2, out.output
    assert 'helm-rdma: error: upgrade of release "llama405b" would drop values its last revision has' in out.stderr
    for line in ('  model.name: "org/another-model" in the last revision, '
                 '"meta-llama/Llama-3.1-405B-Instruct" in this run',
                 '  model.hfTokenSecret.name: "hf-token" in the last revision, "" in this run',
                 '  api.keySecret.name: "vllm-api-key" in the last revision, "llama405b-api-key" in this run',
                 "  clusterNetwork.deleteOnUninstall: true in the last revision, false in this run",
                 '  clusterNetwork.oke.clusterId: "ocid1.cluster.oc1.iad.aaaa" in the last revision, "" in this run'):
        assert line in out.stderr
    assert "fix: pass them again as before (--set KEY=VALUE, the -f file that held them, --model)" in out.stderr
    # defaults that move with the chart's versions, and values that are not about the world outside, may change
    assert "nodePackageRepository" not in out.stderr and "clusterNetwork.image" not in out.stderr
    assert "maxModelLen" not in out.stderr
    assert not installs.exists()  # helm never ran the upgrade; no Secret was made either (kmock holds none new)


def test_an_upgrade_that_passes_them_again_or_changes_them_on_purpose_goes_on(
        use: Any, installs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    use("ready")
    deployed(tmp_path, monkeypatch, INSTALLED)
    again = upgrade("--max-model-len", "65536", "--set", AGAIN)
    assert again.exit_code == 0, again.output
    assert installs.read_text().startswith("upgrade --install llama405b")
    installs.unlink()
    # a new value given explicitly is a change the user asked for: another model by --model, an empty cluster id
    deployed(tmp_path, monkeypatch, {**INSTALLED, "model": {**INSTALLED["model"], "name": "org/another-model"}})
    changed = upgrade("--model", "llama405b", "--set", AGAIN.replace("ocid1.cluster.oc1.iad.aaaa", ""))
    assert changed.exit_code == 0, changed.output
    assert installs.read_text().startswith("upgrade --install llama405b")


def test_a_first_upgrade_reads_no_release_and_skipping_the_cluster_checks_keeps_this_one(
        use: Any, installs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    use("ready")
    deployed(tmp_path, monkeypatch, INSTALLED)
    monkeypatch.setenv("HELM_MEMORY_DRIVER_DATA", str(tmp_path / "none.yaml"))
    (tmp_path / "none.yaml").write_text("[]\n")
    first = upgrade()  # upgrade --install of a release helm does not know: nothing to keep
    assert first.exit_code == 0, first.output
    # not one of the cluster checks: --skip-cluster-checks, which their refusals suggest, leaves it on
    deployed(tmp_path, monkeypatch, INSTALLED)
    skipped = upgrade("--skip-cluster-checks", "--set", "model.hfTokenSecret.name=hf-token")
    assert skipped.exit_code == 2 and "would drop values its last revision has" in skipped.stderr
    assert "model.hfTokenSecret" not in skipped.stderr  # set again, so not among them


def test_what_the_refusal_shows_and_what_counts_as_set(
        use: Any, installs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    use("ready")
    secret_init = "#cloud-config\nwrite_files:\n- path: /etc/token\n  content: S3CRET-TOKEN\n"
    network = {**INSTALLED["clusterNetwork"], "oke": {**INSTALLED["clusterNetwork"]["oke"], "cloudInit": secret_init,
                                                      "nodeLabels": {"pool": "gpu-prod"}}}
    deployed(tmp_path, monkeypatch, {**INSTALLED, "clusterNetwork": network,
                                     "model": {**INSTALLED["model"], "servedName": "gpt"}})
    out = upgrade("--set", AGAIN)
    assert out.exit_code == 2, out.output
    # a value the release ConfigMap withholds (contract.CREDENTIAL_VALUES) is never printed
    assert "S3CRET-TOKEN" not in out.output
    assert f"  clusterNetwork.oke.cloudInit: (set, {len(secret_init)} characters, not shown) in the last " \
           'revision, "" in this run' in out.stderr
    # an entry of a free-form map the new values lack, and the name clients send
    assert '  clusterNetwork.oke.nodeLabels.pool: "gpu-prod" in the last revision, absent in this run' in out.stderr
    assert '  model.servedName: "gpt" in the last revision, "llama405b" in this run' in out.stderr
    # a value decided by one the user sets: turning the API key off names no Secret, and that is asked for
    deployed(tmp_path, monkeypatch, {**INSTALLED, "api": {"allowUnauthenticated": False,
                                                          "keySecret": {"key": "api-key", "name": "llama405b-api-key"}}})
    off = upgrade("--set", AGAIN.replace("api.keySecret.name=vllm-api-key,", "") + ",api.allowUnauthenticated=true")
    assert "would drop values" not in off.output, off.output


def test_the_second_reviews_leaks_and_dead_ends(
        use: Any, installs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    use("ready")
    # a label key holds dots (oci.oraclecloud.com/...): the entry is still found, and its drop refused
    network = {**INSTALLED["clusterNetwork"], "oke": {**INSTALLED["clusterNetwork"]["oke"],
                                                      "nodeLabels": {"oci.oraclecloud.com/pool": "gpu"}}}
    deployed(tmp_path, monkeypatch, {**INSTALLED, "clusterNetwork": network})
    out = upgrade("--set", AGAIN)
    assert out.exit_code == 2 and '  clusterNetwork.oke.nodeLabels.oci.oraclecloud.com/pool: "gpu" in the last ' \
                                  "revision, absent in this run" in out.stderr, out.output
    # the served name does not follow a --set of model.name (it is the catalog alias): clients would get 404
    deployed(tmp_path, monkeypatch, {**INSTALLED, "model": {**INSTALLED["model"], "servedName": "gpt"}})
    out = upgrade("--set", AGAIN + ",model.name=meta-llama/Llama-3.1-405B-Instruct-FP8")
    assert out.exit_code == 2 and '  model.servedName: "gpt" in the last revision' in out.stderr, out.output
    # a deciding value set to what it was decides nothing: the key Secret's name is still dropped
    deployed(tmp_path, monkeypatch, INSTALLED)
    out = upgrade("--set", AGAIN.replace("api.keySecret.name=vllm-api-key,", "") + ",api.allowUnauthenticated=false")
    assert out.exit_code == 2 and '  api.keySecret.name: "vllm-api-key" in the last revision' in out.stderr
    # a key a newer schema dropped (not a free-form map's entry) is no change: nothing could set it again
    gone = {**INSTALLED["clusterNetwork"], "legacyTimeout": 30}
    deployed(tmp_path, monkeypatch, {**INSTALLED, "clusterNetwork": gone})
    out = upgrade("--set", AGAIN)
    assert out.exit_code == 0, out.output


def test_another_model_by_model_says_the_served_name_changes(
        use: Any, installs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    use("ready")
    deployed(tmp_path, monkeypatch, {**INSTALLED, "model": {**INSTALLED["model"], "servedName": "llama405b"}})
    out = upgrade("--model", "llama405b-fp8", "--set", AGAIN)
    assert out.exit_code == 0, out.output
    warned = " ".join(line.removeprefix("warning: ") for line in out.stderr.splitlines())  # wrapped to the width
    assert ('model.servedName: "llama405b" in the last revision, "llama405b-fp8" in this run: clients must send '
            '"model": "llama405b-fp8" from then on') in warned
    same = upgrade("--set", AGAIN)
    assert same.exit_code == 0 and "model.servedName" not in same.stderr
