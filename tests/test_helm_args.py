"""Arguments after `--` go to helm, except those that would make helm use values, manifests or a cluster or
namespace that helm-rdma never checked (generator/helm_rdma/cli/helmargs.py holds the list and its sources).

The rules these tests hold, from upstream:
- helm takes the last value of a repeated flag and merges every values flag over the chart's values.yaml (helm
  pkg/cli/values/options.go MergeValues); helm-rdma's own flags come first, so what follows `--` wins.
- pflag reads `--flag=value`, `--flag value`, and a run of shorthand letters in which a letter that takes a value
  takes the rest of the run (`-nfoo`, `-n=foo`) or else the next argument (spf13/pflag v1.0.10 flag.go,
  parseLongArg 980-1010, parseSingleShortArg 1040-1100); a boolean letter lets the next letter be read as a flag
  (`-gnfoo`: --generate-name, then -n foo).
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml
from click.testing import CliRunner, Result

from helm_rdma.cli import main
from helm_rdma.cli.helmargs import REFUSED, VALUE_SHORTHANDS

from .helm_stand_in import stand_in_helm
from .test_doctor_cluster import install, installs, oci_cluster  # noqa: F401  (fixtures)

# A helm that records every call, `helm version` included, and answers as helm 4 with the helm-diff plugin.
RECORDER = """#!/bin/sh
python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$CALLS"
case "$1" in
  version) echo "v4.1.4+gstandin" ;;
  plugin) printf 'NAME\\tVERSION\\tDESCRIPTION\\ndiff\\t3.15.11\\tPreview helm upgrade changes as a diff\\n' ;;
  *) echo "STATUS: deployed" ;;
esac
"""
OPEN_PORTS_AND_SECRETS = ("--set", "distributed.allowOpenGroupPorts=true,model.hfTokenSecret.name=hf-token,"
                                  "api.keySecret.name=vllm-api-key")
CHART_COMMANDS = {  # the commands with a chart, each with what it needs before `--`
    "install": ("--preset", "h100", "--skip-cluster-checks", *OPEN_PORTS_AND_SECRETS),
    "upgrade": ("--preset", "h100", "--skip-cluster-checks", *OPEN_PORTS_AND_SECRETS),
    "template": ("--preset", "h100"),
    "diff": ("--preset", "h100", *OPEN_PORTS_AND_SECRETS),
}
COMMANDS = {**CHART_COMMANDS, "uninstall": ()}


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the recording helm appends its calls to (absent until helm is called), with helm's cache (where the
    kept charts go) and the kubeconfig under tmp_path: no cluster answers."""
    stand_in_helm(tmp_path, monkeypatch, RECORDER, answers_version=False)
    log = tmp_path / "calls"
    monkeypatch.setenv("CALLS", str(log))
    monkeypatch.setenv("HELM_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    for name in ("HELM_NAMESPACE", "HELM_KUBECONTEXT", "HELM_RDMA_SKIP_CLUSTER_CHECKS"):
        monkeypatch.delenv(name, raising=False)
    return log


def run(command: str, *helm_args: str) -> Result:
    return CliRunner().invoke(main, [command, "llama405b", *COMMANDS[command], "-n", "ml", "--", *helm_args])


def recorded(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


# Each spelling helm (pflag) reads as a refused flag, and the flag the refusal names.
SPELLINGS = [
    (("--set=rdma.mode=hostNetwork",), "--set"),
    (("--set", "rdma.mode=hostNetwork"), "--set"),
    (("--set-string", "rdma.mode=hostNetwork"), "--set-string"),
    (("--set-string=rdma.mode=hostNetwork",), "--set-string"),
    (("--set-file", "vllm.chatTemplate=open.jinja"), "--set-file"),
    (("--set-json", 'rdma={"mode":"hostNetwork"}'), "--set-json"),
    (("--set-json={}",), "--set-json"),
    (("--set-literal", "rdma.mode=hostNetwork"), "--set-literal"),
    (("-fopen.yaml",), "-f"),
    (("-f", "open.yaml"), "-f"),
    (("-f=open.yaml",), "-f"),
    (("--values=open.yaml",), "--values"),
    (("--values", "open.yaml"), "--values"),
    (("--reuse-values",), "--reuse-values"),
    (("--reset-then-reuse-values",), "--reset-then-reuse-values"),
    (("--post-renderer", "./open-ports.sh"), "--post-renderer"),
    (("--post-renderer=./open-ports.sh",), "--post-renderer"),
    (("--post-renderer-args", "hostNetwork"), "--post-renderer-args"),
    (("--kube-context", "prod"), "--kube-context"),
    (("--kube-context=prod",), "--kube-context"),
    (("--kubeconfig", "/tmp/other"), "--kubeconfig"),
    (("--kubeconfig=/tmp/other",), "--kubeconfig"),
    (("--kube-apiserver", "https://10.0.0.1:6443"), "--kube-apiserver"),
    (("-n", "other"), "-n"),
    (("-nother",), "-n"),
    (("-n=other",), "-n"),
    (("--namespace", "other"), "--namespace"),
    (("--namespace=other",), "--namespace"),
    (("--labels", "team=nlp", "--set", "nodes=2"), "--set"),  # after an allowed flag and its value
    (("--debug", "--", "--kube-context", "prod"), "--kube-context"),  # helm takes kube flags from a plugin's anywhere
    (("--description", "--set"), "--set"),  # helm would read "--set" as the description: refused all the same
]


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("helm_args", "flag"), SPELLINGS, ids=[" ".join(s) for s, _ in SPELLINGS])
def test_a_refused_helm_argument_exits_2_naming_it_before_anything_runs(command: str, helm_args: tuple[str, ...],
                                                                         flag: str, calls: Path,
                                                                         tmp_path: Path) -> None:
    out = run(command, *helm_args)
    assert out.exit_code == 2, out.output
    shown = next(a for a in helm_args if a.startswith(flag))
    assert f"helm-rdma: error: {command} -- {shown}: the arguments after -- go to helm as they are, and with {flag} " \
           "helm would " in out.output
    assert "nothing was run; fix: " in out.output
    assert not calls.exists()  # helm never ran, not even `helm version`
    assert not (tmp_path / "cache").exists()  # no chart written or kept


@pytest.mark.parametrize(("command", "argument", "flag"), [
    ("install", "-gnother", "-n"),  # -g (--generate-name) takes no value: n is the next flag
    ("template", "-gfopen.yaml", "-f"),
    ("upgrade", "-inother", "-n"),  # -i (--install)
    ("diff", "-qfopen.yaml", "-f"),  # helm-diff's -q (--suppress-secrets)
    ("diff", "-xnother", "-n"),  # a letter helm-diff skips under HELM_DIFF_IGNORE_UNKNOWN_FLAGS=true
])
def test_a_refused_letter_after_boolean_letters_is_refused(command: str, argument: str, flag: str,
                                                           calls: Path) -> None:
    out = run(command, argument)
    assert out.exit_code == 2, out.output
    assert f"error: {command} -- {argument}: the arguments after -- go to helm as they are, and with {flag} helm " \
           "would" in out.output
    assert not calls.exists()


def test_each_refusal_names_what_the_command_offers_instead(calls: Path) -> None:
    assert "fix: pass --set before -- instead: helm-rdma merges its own --set into the values it checks" \
        in run("install", "--set", "nodes=2").output
    assert "fix: pass -f before -- instead" in run("template", "-fopen.yaml").output
    assert "fix: pass -n NAMESPACE before -- instead: helm-rdma checks that namespace and hands it to helm" \
        in run("diff", "--namespace=other").output
    assert "fix: drop it: uninstall takes no values" in run("uninstall", "--set", "a=b").output
    assert "fix: set HELM_KUBECONTEXT=CONTEXT instead (helm sets it for a plugin from `helm --kube-context CONTEXT " \
           "rdma ...`): helm-rdma's checks and the helm it runs both read it" \
        in run("upgrade", "--kube-context", "prod").output
    assert "fix: set KUBECONFIG=PATH instead" in run("install", "--kubeconfig", "/tmp/x").output
    assert "fix: drop it; to post-render, write the chart with `helm rdma generate`" \
        in run("install", "--post-renderer", "x").output
    assert "fix: drop it and pass the release's values files and --set values again, before --" \
        in run("upgrade", "--reuse-values").output
    assert not calls.exists()


# Flags that change neither the values, the manifests, nor the cluster or namespace (see cli/helmargs.py), and
# letters that take a value, so that what follows is theirs (-o json, -l team=n, -s templates/...).
ALLOWED = {
    "install": ("--atomic", "--wait", "--debug", "--create-namespace", "--description", "x",
                "-ojson", "-lteam=nlp", "--kube-token", "t", "--kube-as-user", "u", "--kube-as-group", "g",
                "--kube-ca-file", "ca.pem", "--kube-tls-server-name", "k", "--kube-insecure-skip-tls-verify",
                "--repo", "https://example.com", "--version", "1.0.0", "--no-hooks"),
    "upgrade": ("--reset-values", "--wait=watcher", "-o", "yaml", "--history-max", "3"),
    "template": ("-stemplates/service.yaml", "-a", "x/v1", "--kube-version", "1.31.0", "--is-upgrade"),
    "diff": ("--context", "3", "-C3", "--suppress-secrets", "-D0.5", "--three-way-merge"),
    "uninstall": ("--keep-history", "--wait", "--cascade", "foreground", "--description", "bye", "--timeout", "9m"),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_allowed_helm_arguments_reach_helm_unchanged_after_the_plugins_own(command: str, calls: Path) -> None:
    out = run(command, *ALLOWED[command])
    assert out.exit_code == 0, out.output
    [call] = [c for c in recorded(calls) if c[0] not in ("version", "plugin")]
    head = {"diff": ["diff", "upgrade"], "upgrade": ["upgrade", "--install"]}.get(command, [command])
    assert call[:len(head) + 1] == [*head, "llama405b"]
    assert call[-len(ALLOWED[command]):] == list(ALLOWED[command])
    assert "ml" in call[:-len(ALLOWED[command])]  # the namespace helm-rdma checked, given before them


@pytest.mark.parametrize("command", ["install", "upgrade"])
@pytest.mark.parametrize("timeout", [("--timeout", "5m"), ("--timeout=5m",)])
def test_a_second_timeout_after_the_dashes_is_refused_where_the_command_has_its_own(
        command: str, timeout: tuple[str, ...], calls: Path) -> None:
    """install's and upgrade's --timeout is the plan's start-up budget, which helm-rdma's own wait keeps too; helm
    takes the last of a repeated flag, so one after `--` would cut helm's wait (and the provisioning hook) alone.
    uninstall reads one given after `--` (test above); template and diff have none of their own."""
    out = run(command, *timeout)
    assert out.exit_code == 2, out.output
    assert f"{command} -- {timeout[0]}: the arguments after -- go to helm as they are, and with --timeout helm " \
           "would wait by its own timeout" in out.output
    assert "fix: pass --timeout before -- instead" in out.output and not calls.exists()


@pytest.mark.parametrize("command", ["install", "upgrade"])
@pytest.mark.parametrize("dry", ["--dry-run", "--dry-run=server", "--dry-run=client"])
def test_a_dry_run_after_the_dashes_is_refused_where_helm_rdma_would_not_know_of_it(command: str, dry: str,
                                                                                     calls: Path) -> None:
    """helm would only render or simulate, while helm-rdma, told of no dry run, would create the API key Secret and
    replace the kept chart: the dry run belongs before `--`, where helm-rdma writes and creates nothing."""
    out = run(command, dry)
    assert out.exit_code == 2, out.output
    assert f"{command} -- {dry}: the arguments after -- go to helm as they are, and with --dry-run helm would " \
           "render or simulate only" in out.output
    assert "fix: pass --dry-run (or --dry-run=server) before -- instead" in out.output and not calls.exists()


def test_the_reviews_reproduction_is_refused_before_oci_or_helm(oci_cluster: tuple[Any, Path],  # noqa: F811
                                                                installs: Path) -> None:  # noqa: F811
    """Outside review (group ports), BLOCKER 1: the values say SR-IOV, so the group-ports gate has nothing to judge,
    and helm would have installed hostNetwork from the argument after `--`."""
    fake, config = oci_cluster
    sriov = ("-n", "ml", "--oci-config", str(config), "--skip-cluster-checks",
             "--set", "rdma.mode=sriov,rdma.sriov.networkName=default/rdma-vf")
    out = install(*sriov, "--", "--set", "rdma.mode=hostNetwork", accept_open_ports=False)
    assert out.exit_code == 2, out.output
    assert "install -- --set: the arguments after -- go to helm as they are, and with --set helm would merge " \
           "these values over the ones helm-rdma resolved" in out.output
    assert not installs.exists() and not fake.calls
    for route in (("--nodes", "1", "--", "--set", "nodes=2,vllm.pipelineParallelSize=2"),
                  ("--", "-f", "open.yaml"), ("--", "--kube-context", "prod")):
        out = install("-n", "ml", "--oci-config", str(config), *route, accept_open_ports=False)
        assert out.exit_code == 2, (route, out.output)
    assert not installs.exists() and not fake.calls
    # the same install without the argument after -- goes on (SR-IOV: the group's ports are not on the node network)
    out = install(*sriov, accept_open_ports=False)
    assert out.exit_code == 0, out.output
    assert installs.read_text().startswith("install llama405b")


HELP_FLAG = re.compile(r"^\s+(?:-(\w), )?--([\w-]+)(?: (\w+))?\s", re.MULTILINE)  # "  -l, --labels stringToString"


def helm_flags(helm: Path, command: str) -> dict[str, tuple[str, bool]]:
    """The flags `helm COMMAND --help` lists: long name -> (shorthand or "", whether it takes a value)."""
    text = subprocess.run([str(helm), command, "--help"], capture_output=True, text=True, check=True).stdout
    return {name: (short, bool(kind)) for short, name, kind in HELP_FLAG.findall(text)}


def test_the_refused_flags_and_the_value_letters_are_helms_own(helm_bin: Path) -> None:
    """Each refused flag (but helm-diff's, which helm has too) is one that helm 3 and 4 list for install, upgrade or
    template, with the same shorthand; every shorthand letter that takes a value in a helm command is listed in
    VALUE_SHORTHANDS for it (or refused), and no boolean one is: a misspelt entry would refuse nothing, a missing
    letter would let `-ojson`'s kin be scanned as flags, a boolean one listed would hide the flags after it."""
    flags = {command: helm_flags(helm_bin, command) for command in ("install", "upgrade", "template", "uninstall")}
    for rule in REFUSED:
        [long], short = [f for f in rule.flags if f.startswith("--")], [f for f in rule.flags if not f.startswith("--")]
        listed = [table[long[2:]] for table in flags.values() if long[2:] in table]
        assert listed, long
        assert {f"-{letter}" for letter, _ in listed if letter} == set(short), long
    for command, table in flags.items():
        takes_value = {letter for letter, value in table.values() if letter and value} - {"f", "n"}
        boolean = {letter for letter, value in table.values() if letter and not value} - {"h"}
        assert takes_value <= set(VALUE_SHORTHANDS[command]), command
        assert not boolean & set(VALUE_SHORTHANDS[command]), command


def test_the_flags_let_through_for_capabilities_leave_the_manifests_as_they_are(helm_bin: Path) -> None:
    """--api-versions, --kube-version, --is-upgrade and --enable-dns pass because the chart reads neither
    .Capabilities nor .Release.IsUpgrade nor DNS: the same manifests with and without them, on helm 3 and 4."""
    plain = CliRunner().invoke(main, ["template", "llama405b", "--preset", "h100"])
    assert plain.exit_code == 0, plain.output
    told = CliRunner().invoke(main, ["template", "llama405b", "--preset", "h100", "--", "--api-versions",
                                     "leaderworkerset.x-k8s.io/v1", "--kube-version", "1.29.0", "--is-upgrade",
                                     "--enable-dns"])
    assert told.exit_code == 0, told.output
    assert told.output == plain.output


# --- upgrade takes no values from the last release ---------------------------------------------------------------
class _Discovery(BaseHTTPRequestHandler):
    """The three discovery answers helm asks before an upgrade (the Kubernetes version for the chart's kubeVersion,
    no API groups); with HELM_DRIVER=memory the release store and the kube client are helm's own fakes."""

    ANSWERS: ClassVar[dict[str, Any]] = {
        "/version": {"major": "1", "minor": "31", "gitVersion": "v1.31.0"},
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    }

    def do_GET(self) -> None:  # noqa: N802  (http.server's name)
        body = self.ANSWERS.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(json.dumps(body or {"kind": "Status", "code": 404}).encode())

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def last_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """helm's memory release store holding revision 1 of llama405b in ml, installed with values of its own
    (`rdma.mode=hostNetwork`, as `-- --set rdma.mode=hostNetwork` gave it before it was refused), and a kubeconfig
    whose server answers helm's discovery. helm loads HELM_MEMORY_DRIVER_DATA into the memory driver and swaps in a
    kube client that creates nothing (helm v3.17.4 cmd/helm/helm.go:98-132, v4.2.4 pkg/cmd/root.go:316-350)."""
    releases = tmp_path / "releases.yaml"
    releases.write_text(yaml.safe_dump([{
        "name": "llama405b", "version": 1, "namespace": "ml", "info": {"status": "deployed"},
        "chart": {"metadata": {"name": "vllm-rdma", "version": "0.1.0"}},
        "config": {"rdma": {"mode": "hostNetwork"}}}]))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Discovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
        "users": [{"name": "u", "user": {}}], "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    for name, value in (("HELM_DRIVER", "memory"), ("HELM_MEMORY_DRIVER_DATA", str(releases)),
                        ("KUBECONFIG", str(kubeconfig)), ("HELM_CACHE_HOME", str(tmp_path / "cache"))):
        monkeypatch.setenv(name, value)
    for name in ("HELM_NAMESPACE", "HELM_KUBECONTEXT", "HELM_RDMA_SKIP_CLUSTER_CHECKS"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield tmp_path
    finally:
        server.shutdown()


def test_upgrade_drops_the_values_the_last_release_got_from_helm_directly(helm_bin: Path, last_release: Path) -> None:
    """helm upgrade given no values merges the last release's own values over the chart's (helm pkg/action/
    upgrade.go reuseValues: v3.17.4 line 585, v4.2.4 line 642); helm-rdma's values are all in its chart, so upgrade
    passes --reset-values and helm installs what helm-rdma checked: SR-IOV, not the hostNetwork of revision 1."""
    sriov = ("--set", "rdma.mode=sriov,rdma.sriov.networkName=default/rdma-vf,model.hfTokenSecret.name=hf-token,"
                      "api.keySecret.name=vllm-api-key")
    out = CliRunner().invoke(main, ["upgrade", "llama405b", "--preset", "h100", "-n", "ml", "--skip-cluster-checks",
                                    *sriov, "--", "-o", "json"])
    assert out.exit_code == 0, out.output
    revision = json.loads(out.stdout)
    assert revision["version"] == 2 and not revision.get("config")
    assert "hostNetwork: true" not in revision["manifest"]
    # the rule itself: the same chart by helm without --reset-values takes revision 1's hostNetwork
    kept = last_release / "cache" / "rdma" / "ml" / "llama405b"
    plain = subprocess.run([str(helm_bin), "upgrade", "llama405b", str(kept), "-n", "ml", "-o", "json"],
                           capture_output=True, text=True, check=True)
    assert json.loads(plain.stdout)["config"] == {"rdma": {"mode": "hostNetwork"}}
    assert "hostNetwork: true" in json.loads(plain.stdout)["manifest"]
