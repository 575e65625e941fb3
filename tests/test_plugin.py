"""The Helm plugin on the real helm 3.17.2 and 4.1.4, with isolated helm homes.

Commands that need a cluster (install, upgrade, uninstall) run against a HELM_BIN wrapper that records the exact
command line and, for install and upgrade, renders the chart it was given with the real helm's `template`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import HELM_VERSIONS, REPO, helm_path
from .kmock_cluster import Cluster
from .lockfile import RUNTIME, parse_freeze, pinned_here
from .test_rollout import group

H100_HCA = "=mlx5_0,mlx5_1,mlx5_3,mlx5_4,mlx5_5,mlx5_6,mlx5_7,mlx5_8,mlx5_9,mlx5_10,mlx5_12,mlx5_13,mlx5_14,mlx5_15,mlx5_16,mlx5_17"

RECORDER = """#!/bin/bash
# Stands in for helm where a cluster would be needed; everything else goes to the real helm, with this script as
# argv[0] so that helm hands it to plugins as HELM_BIN.
case "$1" in
  install|upgrade|uninstall|status)
    python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$HELM_CALLS"
    if [ "$1" = install ] || [ "$1" = upgrade ]; then
      [ "$1" = upgrade ] && shift
      "$REAL_HELM" template "$2" "$3" > "$HELM_CALLS.rendered" || exit 1
      echo "NAME: $2"; echo "STATUS: deployed"
    fi
    [ "$1" = uninstall ] && echo "release \\"$2\\" uninstalled"
    exit 0 ;;
  list)
    python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@" >> "$HELM_CALLS"
    printf 'llama405b\nqwen-prod\n'
    exit 0 ;;
esac
exec -a "$0" "$REAL_HELM" "$@"
"""


class Helm:
    """One helm version with its own plugin, cache, config and data homes."""

    def __init__(self, name: str, home: Path) -> None:
        self.name = name
        self.real = helm_path(name)
        self.bin = home / "bin" / "helm"
        self.bin.parent.mkdir(parents=True)
        self.bin.write_text(RECORDER)
        self.bin.chmod(0o755)
        self.calls = home / "calls.jsonl"
        self.cache = home / "cache"
        self.env = {
            "PATH": f"{Path(os.sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "HELM_DATA_HOME": str(home / "data"),
            "HELM_PLUGINS": str(home / "data" / "plugins"),  # helm 4 installs under the data home
            "HELM_CACHE_HOME": str(self.cache),
            "HELM_CONFIG_HOME": str(home / "config"),
            "REAL_HELM": str(self.real),
            "HELM_CALLS": str(self.calls),
        }

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin), *args], capture_output=True, text=True, env={**self.env, **(env or {})},
                              timeout=timeout)

    def recorded(self) -> list[list[str]]:
        return [json.loads(line) for line in self.calls.read_text().splitlines()] if self.calls.exists() else []

    def install_plugin(self, source: str) -> None:
        extra = ["--verify=false"] if self.name == "helm4" and source.startswith("file://") else []
        out = self.run("plugin", "install", source, *extra)
        assert out.returncode == 0, out.stdout + out.stderr


@pytest.fixture(params=sorted(HELM_VERSIONS))
def helm(request: pytest.FixtureRequest, tmp_path: Path) -> Helm:
    h = Helm(request.param, tmp_path)
    h.install_plugin(str(REPO))
    return h


def docs(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_plugin_help_lists_every_command(helm: Helm) -> None:
    out = helm.run("rdma", "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: helm rdma [OPTIONS] COMMAND [ARGS]...")
    for command in ("install", "upgrade", "diff", "template", "generate", "plan", "presets", "status", "uninstall"):
        assert f"\n  {command} " in out.stdout
    out = helm.run("rdma", "upgrade", "--help")
    assert out.stdout.startswith("Usage: helm rdma upgrade [OPTIONS] RELEASE")
    assert "\nExamples:\n" in out.stdout and "\n  helm rdma upgrade llama405b --preset h100" in out.stdout


def test_plugin_template_renders_the_h100_chart(helm: Helm) -> None:
    out = helm.run("rdma", "template", "llama405b", "--preset", "h100")
    assert out.returncode == 0, out.stderr
    assert f'value: "{H100_HCA}"' in out.stdout and "privileged: true" in out.stdout


def test_helm_namespace_flag_reaches_the_manifests(helm: Helm) -> None:
    out = helm.run("-n", "team-a", "rdma", "template", "llama405b", "--preset", "h100")
    assert out.returncode == 0, out.stderr
    namespaces = {d["metadata"].get("namespace") for d in docs(out.stdout)}
    assert namespaces == {"team-a"}


def test_install_dry_run_prints_manifests_without_a_cluster(helm: Helm) -> None:
    out = helm.run("rdma", "install", "x", "--preset", "h100", "--model", "llama405b", "--dry-run")
    assert out.returncode == 0, out.stderr
    kinds = [d["kind"] for d in docs(out.stdout)]
    assert "LeaderWorkerSet" in kinds and "Service" in kinds
    assert helm.recorded() == []
    assert not (helm.cache / "rdma").exists()


def test_a_release_that_names_no_model_needs_model(helm: Helm) -> None:
    out = helm.run("rdma", "install", "chatbot", "--preset", "h100", "--dry-run")
    assert out.returncode == 2
    assert 'release "chatbot" names no catalog model and no --model was given: pass --model' in out.stderr
    assert helm.recorded() == []


def test_failing_command_exit_code_and_message_reach_the_caller(helm: Helm) -> None:
    out = helm.run("rdma", "template", "llama405b", "--preset", "h1000")
    assert out.returncode == 2
    assert 'unknown preset "h1000"; known: a100-v2, b200, gpu4, h100, h200, mi300x' in out.stderr


# These installs are about the plugin's flags: the group's ports are accepted open (tests/test_doctor_cluster.py holds
# install's check of them).
OPEN_PORTS = ("--set", "distributed.allowOpenGroupPorts=true")


def test_install_calls_helm_with_the_global_flags_and_keeps_the_chart(helm: Helm) -> None:
    out = helm.run("-n", "team-a", "--kube-context", "prod", "rdma", "install", "llama405b", "--preset", "h100",
                   *OPEN_PORTS, "--", "--create-namespace")
    assert out.returncode == 0, out.stderr
    kept = helm.cache / "rdma" / "team-a" / "llama405b"
    [call] = helm.recorded()
    assert call[:2] == ["install", "llama405b"]
    assert Path(call[2]).parent.parent == kept.parent  # a staging directory beside the kept chart
    # the timeout comes from the plan (tests/test_values.py holds it against the first start's budget)
    assert call[3:] == ["--namespace", "team-a", "--kube-context", "prod", "--timeout", "153m",
                        "--create-namespace"]  # --wait (helm's, then the groups') is in tests/test_rollout.py
    assert (kept / "Chart.yaml").is_file() and (kept / "values.yaml").is_file()
    assert f"chart kept in {kept}" in out.stderr
    assert "STATUS: deployed" in out.stdout
    assert "kind: LeaderWorkerSet" in (helm.calls.parent / "calls.jsonl.rendered").read_text()


def test_helm4_name_of_atomic_is_accepted_too(helm: Helm, tmp_path: Path) -> None:
    """Either spelling reaches either helm as its own; it also waits for the groups, as --wait does (the undo when
    they do not serve is in tests/test_rollout.py): here a cluster whose one group serves."""
    (tmp_path / "releases.yaml").write_text("[]\n")  # helm's own store of releases, empty: a first upgrade
    with Cluster(group("ready", "ready"), tmp_path / "kubeconfig") as cluster:
        out = helm.run("-n", "ml", "rdma", "upgrade", "llama405b", "--preset", "h100", "--rollback-on-failure",
                       "--timeout", "90m", "--skip-cluster-checks", *OPEN_PORTS,
                       env={"KUBECONFIG": str(cluster.kubeconfig), "HELM_DRIVER": "memory",
                            "HELM_MEMORY_DRIVER_DATA": str(tmp_path / "releases.yaml")})
    assert out.returncode == 0, out.stderr
    [call] = helm.recorded()  # (helm history, which --atomic reads for the revision to go back to, is helm's own)
    atomic = "--atomic" if helm.name == "helm3" else "--rollback-on-failure"
    assert call[:3] == ["upgrade", "--install", "llama405b"]
    assert call[4:] == ["--namespace", "ml", "--kubeconfig", str(cluster.kubeconfig), "--timeout", "90m",
                        "--reset-values", atomic]
    assert "serving: 1/1 group(s) serving" in out.stderr


def test_debug_and_kubeconfig_are_passed_on(helm: Helm, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    out = helm.run("--debug", "--kubeconfig", str(kubeconfig), "rdma", "uninstall", "llama405b")
    assert out.returncode == 0, out.stderr
    [call] = helm.recorded()
    assert call == ["uninstall", "llama405b", "--namespace", "default", "--kubeconfig", str(kubeconfig), "--debug"]


def test_kube_flags_after_dashdash_are_helms_and_the_rest_that_reach_the_plugin_are_refused(helm: Helm) -> None:
    """helm takes -n/--namespace VALUE and the kube flags out of a plugin's arguments wherever they stand, `--`
    or not, and hands them over as HELM_NAMESPACE, HELM_KUBECONTEXT, ... (manuallyProcessArgs: v3.17 cmd/helm/
    load_plugins.go:154-193, v4 pkg/cmd/load_plugins.go:170-209): helm-rdma then checks and installs the same
    target. The spellings helm leaves in place (-nother, a values flag) reach helm-rdma, which refuses them
    (cli/helmargs.py)."""
    out = helm.run("rdma", "install", "llama405b", "--preset", "h100", *OPEN_PORTS, "--", "--kube-context", "prod",
                   "--namespace=team-b")
    assert out.returncode == 0, out.stderr
    [call] = helm.recorded()
    assert call[3:7] == ["--namespace", "team-b", "--kube-context", "prod"]
    assert (helm.cache / "rdma" / "team-b" / "llama405b" / "Chart.yaml").is_file()
    for refused, flag in ((("-nother",), "-n"), (("--set", "rdma.mode=hostNetwork"), "--set")):
        out = helm.run("rdma", "install", "llama405b", "--preset", "h100", *OPEN_PORTS, "--", *refused)
        assert out.returncode == 2, out.stderr
        assert f"with {flag} helm would" in out.stderr
    assert len(helm.recorded()) == 1


def test_a_failed_install_keeps_nothing(helm: Helm) -> None:
    out = helm.run("rdma", "install", "llama405b", "--preset", "h100", "--set", "vllm.pipelineParallelSize=3")
    assert out.returncode == 2
    assert "TP 8 x PP 3 = 24, but a group has 16 GPUs" in out.stderr
    kept = helm.cache / "rdma" / "default"
    assert not kept.exists() or list(kept.iterdir()) == []


# plugin.complete runs the code of this tree, whatever the plugin's venv was installed from.
THIS_TREE = {"PYTHONPATH": str(REPO / "generator")}


def complete(helm: Helm, *words: str, helm_flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    return helm.run(*helm_flags, "__complete", *words, env=THIS_TREE)


def test_completion_offers_commands_presets_and_models(helm: Helm) -> None:
    static = yaml.safe_load((REPO / "completion.yaml").read_text())
    flags = [f for c in static["commands"] for f in c.get("flags", [])]
    assert all(isinstance(f, str) for f in flags), "completion.yaml: quote flags YAML reads as booleans (yes, y)"
    assert completed(complete(helm, "rdma", "up")) == (["upgrade"], ":4")
    assert completed(complete(helm, "rdma", "template", "--preset", "")) == (
        ["a100-v2", "b200", "gpu4", "h100", "h200", "mi300x"], ":4")
    assert completed(complete(helm, "rdma", "install", "llama")) == (["llama405b", "llama405b-fp8", "llama70b"], ":4")
    assert completed(complete(helm, "rdma", "install", "--preset=h2")) == (["--preset=h200"], ":4")
    assert completed(complete(helm, "rdma", "presets", "show", "m")) == (["mi300x"], ":4")


def completed(out: subprocess.CompletedProcess[str]) -> tuple[list[str], str]:
    """Candidates and directive of `helm __complete` (cobra prints `:N` after the candidates)."""
    lines = out.stdout.splitlines()
    directive = next(line for line in lines if line.startswith(":"))
    return lines[:lines.index(directive)], directive


def test_completion_offers_files_choices_flags_and_releases(helm: Helm) -> None:
    assert completed(complete(helm, "rdma", "install", "-f", "")) == ([], ":0")  # the shell's file names
    assert completed(complete(helm, "rdma", "template", "x", "--", "")) == ([], ":0")  # helm's own arguments
    assert completed(complete(helm, "rdma", "install", "--auth", "")) == (
        ["apiKey", "instancePrincipal", "workloadIdentity"], ":4")
    assert completed(complete(helm, "rdma", "plan", "x", "-o", "")) == (["table", "json", "yaml"], ":4")
    assert completed(complete(helm, "rdma", "install", "--set", "")) == ([], ":4")
    # Flag names: helm's cobra lists those of completion.yaml and appends what plugin.complete prints, since helm
    # sets DisableFlagParsing on a plugin's commands (spf13/cobra completions.go@adbc881 lines 441-492, 569-577;
    # helm pkg/cmd/load_plugins.go@v4.1.4 lines 305-312, and 333-400 for the `:N` line plugin.complete ends with),
    # so plugin.complete prints none: each appears once.
    assert completed(complete(helm, "rdma", "verify", "x", "--nc")) == (["--nccl"], ":4")
    assert completed(complete(helm, "rdma", "verify", "x", "--ye")) == (["--yes"], ":4")
    flags, _ = completed(complete(helm, "rdma", "install", "--oke"))
    assert flags == ["--oke-cluster"]
    assert completed(complete(helm, "rdma", "status", "", helm_flags=("-n", "team-a"))) == (["llama405b", "qwen-prod"], ":4")
    assert helm.recorded() == [["list", "--short", "--all", "--namespace", "team-a"]]


FAKE_HELM_DIFF = """#!/bin/sh
python3 -c 'import json, os, sys; print(json.dumps({"argv": sys.argv[1:], "namespace": os.environ["HELM_NAMESPACE"],
    "context": os.environ.get("HELM_KUBECONTEXT"), "chart": os.path.isfile(sys.argv[3] + "/Chart.yaml")}))' "$@" \
  >> "$HELM_CALLS.diff"
echo "team-a, llama405b-vllm-rdma-api, Service (v1) has changed:"
"""


def test_diff_runs_helm_diff_through_helm_with_the_global_flags(helm: Helm, tmp_path: Path) -> None:
    out = helm.run("rdma", "diff", "llama405b", "--preset", "h100")
    assert out.returncode == 1 and "helm plugin install https://github.com/databus23/helm-diff" in out.stderr
    stand_in = tmp_path / "helm-diff"
    stand_in.mkdir()
    (stand_in / "plugin.yaml").write_text('name: "diff"\nversion: "3.15.11"\nusage: "stand-in for helm-diff"\n'
                                          'command: "$HELM_PLUGIN_DIR/diff.sh"\n')
    (stand_in / "diff.sh").write_text(FAKE_HELM_DIFF)
    (stand_in / "diff.sh").chmod(0o755)
    helm.install_plugin(str(stand_in))
    out = helm.run("-n", "team-a", "--kube-context", "prod", "rdma", "diff", "llama405b", "--preset", "h100",
                   "--", "--context", "3")
    assert out.returncode == 0, out.stderr
    assert "Service (v1) has changed:" in out.stdout
    [call] = [json.loads(line) for line in Path(f"{helm.calls}.diff").read_text().splitlines()]
    assert call["argv"][:2] == ["upgrade", "llama405b"] and call["chart"]
    assert call["argv"][3:] == ["--allow-unreleased", "--reset-values", "--context", "3"]  # helm took its global
    # flags ...
    assert (call["namespace"], call["context"]) == ("team-a", "prod")  # ... and handed them over


def snapshot_repo(target: Path) -> str:
    """The working tree (tracked and untracked, not ignored) as a git repository, for a git-URL install."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=target, check=True)
    subprocess.run(["git", "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-qm", "snapshot"], cwd=target, check=True)
    return f"file://{target}"


@pytest.fixture(scope="module")
def wheelhouse() -> Path:
    """The locked wheels for this Python in a local directory (pip's own cache answers after the first download), so
    that the plugin installs below hash-check and install them without an index."""
    target = REPO / ".cache" / "wheelhouse"
    out = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                          "--require-hashes", "--only-binary", ":all:", "-r", str(RUNTIME), "-d", str(target)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        pytest.skip(f"the locked wheels could not be downloaded (no index reachable?): {out.stderr.strip()[-300:]}")
    return target


def venv_freeze(venv: Path) -> dict[str, str]:
    out = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze", "--disable-pip-version-check"],
                         capture_output=True, text=True, check=True)
    return parse_freeze(out.stdout)


def test_git_installs_from_the_lock_are_identical_then_update_follows_the_lock(tmp_path: Path, wheelhouse: Path) -> None:
    source = tmp_path / "src"
    url = snapshot_repo(source)
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheelhouse)}  # hash-checked against the lock all the same
    freezes, installed = [], []
    for name in sorted(HELM_VERSIONS):  # one fresh install per helm: the same lock, two environments
        helm = Helm(name, tmp_path / name)
        out = helm.run("plugin", "install", url, *(["--verify=false"] if name == "helm4" else []), env=offline)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "creating" in out.stdout and "from locks/runtime.txt" in out.stdout
        assert "hash-checked wheels only, nothing built" in out.stdout and "ready: helm-rdma, version" in out.stdout
        [plugin_dir] = list((tmp_path / name / "data" / "plugins").iterdir())
        venv = plugin_dir / ".venv"
        freezes.append(venv_freeze(venv))
        installed.append((helm, plugin_dir, venv))
        out = helm.run("rdma", "template", "llama405b", "--preset", "h100")
        assert out.returncode == 0 and f'value: "{H100_HCA}"' in out.stdout

    # Both environments are exactly what the lock pins for this Python: no build backend, no helm-rdma dist (it runs
    # from the plugin's source tree through a .pth file).
    assert freezes[0] == freezes[1] == pinned_here(RUNTIME)
    helm, plugin_dir, venv = installed[-1]
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import helm_rdma; print(helm_rdma.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).resolve() == (plugin_dir / "generator" / "helm_rdma" / "__init__.py").resolve()

    # The hook run again on the same directory and lock leaves the environment alone.
    out = subprocess.run(["/bin/sh", str(plugin_dir / "scripts" / "plugin-venv"), "update"], capture_output=True,
                         text=True, env={**helm.env, **offline, "HELM_PLUGIN_DIR": str(plugin_dir)})
    assert out.returncode == 0 and "matches locks/runtime.txt; nothing to install" in out.stdout, out.stderr

    # A new commit upstream: update pulls it (helm's git client also cleans every untracked file, the venv included)
    # and the hook makes the environment again from the lock; the new code runs.
    preset = source / "presets" / "h100.yaml"
    preset.write_text(preset.read_text().replace("description: 8x NVIDIA H100 80GB", "description: 8x NVIDIA H100"))
    subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qam", "edit"],
                   cwd=source, check=True)
    out = helm.run("plugin", "update", "rdma", env=offline)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "creating" in out.stdout and "ready: helm-rdma, version" in out.stdout
    assert venv_freeze(venv) == freezes[0]
    out = helm.run("rdma", "presets", "show", "h100")
    assert out.returncode == 0 and "description: 8x NVIDIA H100, 16 x 200 Gb/s" in out.stdout, out.stdout

    out = helm.run("plugin", "uninstall", "rdma")
    assert out.returncode == 0, out.stderr
    assert not plugin_dir.exists()
    assert helm.run("rdma", "--help").returncode != 0


def test_hook_names_what_to_install_without_python(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("sh", "dirname", "cat"):
        found = shutil.which(tool)
        assert found
        (bin_dir / tool).symlink_to(found)
    out = subprocess.run(["/bin/sh", str(REPO / "scripts" / "plugin-venv"), "install"], capture_output=True, text=True,
                         env={"PATH": str(bin_dir), "HELM_PLUGIN_DIR": str(tmp_path)})
    assert out.returncode == 1
    assert "needs Python 3.10 or newer" in out.stderr and "apt-get install python3 python3-venv" in out.stderr


def test_hook_never_clears_an_environment_its_venv_links_to(tmp_path: Path) -> None:
    shared = tmp_path / "shared-venv"
    shared.mkdir()
    (shared / "keep").write_text("another checkout's environment")
    plugin_dir = tmp_path / "plugin"
    (plugin_dir / "locks").mkdir(parents=True)
    shutil.copy(REPO / "locks" / "runtime.txt", plugin_dir / "locks" / "runtime.txt")
    (plugin_dir / ".venv").symlink_to(shared)
    python_dir = Path(sys.executable).resolve().parent
    out = subprocess.run(["/bin/sh", str(REPO / "scripts" / "plugin-venv"), "install"], capture_output=True, text=True,
                         env={"PATH": f"{python_dir}:/usr/bin:/bin", "HELM_PLUGIN_DIR": str(plugin_dir)})
    assert out.returncode == 1 and "is a symbolic link" in out.stderr and "HELM_RDMA_VENV" in out.stderr
    assert sorted(p.name for p in shared.iterdir()) == ["keep"]


def _old_environment(venv: Path) -> None:
    """An environment a previous install left, stamped from another lock: its helm-rdma answers as an older one."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (venv / "bin" / "helm-rdma").write_text("#!/bin/sh\necho 'helm-rdma, version 0.0.1'\n")
    (venv / "bin" / "helm-rdma").chmod(0o755)
    (venv / ".helm-rdma-lock").write_text("the stamp of an earlier lock\n")


def _hook(plugin_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    python_dir = Path(sys.executable).resolve().parent
    return subprocess.run(["/bin/sh", str(REPO / "scripts" / "plugin-venv"), "update"], capture_output=True, text=True,
                          timeout=600, env={"PATH": f"{python_dir}:/usr/bin:/bin", "HOME": str(plugin_dir.parent),
                                            "HELM_PLUGIN_DIR": str(plugin_dir), "PIP_CONFIG_FILE": os.devnull, **env})


def _entry(plugin_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", str(REPO / "scripts" / "helm-rdma"), "--version"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HELM_PLUGIN_DIR": str(plugin_dir)})


@pytest.mark.parametrize("killed_before", [False, True])
def test_an_update_that_cannot_reach_the_index_keeps_the_working_environment_then_one_that_can_replaces_it(
        tmp_path: Path, wheelhouse: Path, killed_before: bool) -> None:
    # A new lock (what `helm plugin update` or a new checkout brings) and no index (an offline bastion, a mirror
    # down): pip fails. The plugin must still run, from the environment it had.
    plugin_dir = tmp_path / "plugin"
    snapshot_repo(plugin_dir)  # a checkout of the plugin, as helm leaves it
    venv = plugin_dir / ".venv"
    if killed_before:  # an earlier run was killed outright mid-build: the old environment aside, a partial new one
        _old_environment(plugin_dir / ".venv.previous")
        (venv / "bin").mkdir(parents=True)
    else:
        _old_environment(venv)
    out = _hook(plugin_dir, PIP_NO_INDEX="1")
    assert out.returncode == 1, out.stdout + out.stderr  # helm reports a failed hook
    assert "pip could not install" in out.stderr
    assert "the plugin still runs the previous environment" in out.stderr and "version 0.0.1" in out.stderr
    assert f"once the cause is fixed, run: HELM_PLUGIN_DIR={plugin_dir} sh {plugin_dir}/scripts/plugin-venv" \
        in out.stderr
    assert _entry(plugin_dir).stdout.strip() == "helm-rdma, version 0.0.1"  # the old environment, at its own path
    assert not (plugin_dir / ".venv.previous").exists()

    # The index is back (the locked wheels, hash-checked as from an index): the same hook replaces the environment.
    out = _hook(plugin_dir, PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ready: helm-rdma, version" in out.stdout
    ran = _entry(plugin_dir)
    assert ran.returncode == 0 and ran.stdout.startswith("helm-rdma, version") and "0.0.1" not in ran.stdout
    assert venv_freeze(venv) == pinned_here(RUNTIME) and not (plugin_dir / ".venv.previous").exists()


def test_an_update_interrupted_while_pip_runs_moves_the_previous_environment_back(tmp_path: Path) -> None:
    # Ctrl-C (SIGINT to the terminal's foreground group: the hook and pip) while pip waits for an index that never
    # answers (a socket on 127.0.0.1 that accepts and says nothing).
    plugin_dir = tmp_path / "plugin"
    snapshot_repo(plugin_dir)
    _old_environment(plugin_dir / ".venv")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        python_dir = Path(sys.executable).resolve().parent
        env = {"PATH": f"{python_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "HELM_PLUGIN_DIR": str(plugin_dir),
               "PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": f"http://127.0.0.1:{silent.getsockname()[1]}/simple",
               "PIP_TIMEOUT": "60", "PIP_RETRIES": "0"}
        hook = subprocess.Popen(["/bin/sh", str(REPO / "scripts" / "plugin-venv"), "update"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
        try:
            assert hook.stdout is not None
            for line in hook.stdout:
                if "installing the locked dependencies" in line:
                    break
            silent.accept()  # pip has connected and waits for an answer
            os.killpg(hook.pid, signal.SIGINT)
            _, stderr = hook.communicate(timeout=60)
        finally:
            if hook.poll() is None:
                os.killpg(hook.pid, signal.SIGKILL)
    assert hook.returncode == 130, stderr
    assert "interrupted" in stderr and "the plugin still runs the previous environment" in stderr
    assert _entry(plugin_dir).stdout.strip() == "helm-rdma, version 0.0.1"
    assert not (plugin_dir / ".venv.previous").exists()


def test_a_second_run_while_one_builds_changes_nothing_and_a_dead_builders_lock_is_taken_over(tmp_path: Path) -> None:
    """The plugin's own message sends the user to the hook while an update builds: two builds at once would remove
    each other's environments, so the second refuses while the first lives (its pid in .venv.building)."""
    plugin_dir = tmp_path / "plugin"
    snapshot_repo(plugin_dir)
    _old_environment(plugin_dir / ".venv")
    lock = plugin_dir / ".venv.building"
    lock.mkdir()
    builder = subprocess.Popen(["sleep", "60"])
    try:
        (lock / "pid").write_text(f"{builder.pid}\n")
        out = _hook(plugin_dir, PIP_NO_INDEX="1")
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"another run (pid {builder.pid}) is building {plugin_dir / '.venv'}; nothing was changed" in out.stderr
        assert _entry(plugin_dir).stderr.startswith("helm rdma: error: the plugin's environment")
    finally:
        builder.kill()
        builder.wait()
    assert (plugin_dir / ".venv" / ".helm-rdma-lock").read_text() == "the stamp of an earlier lock\n"
    # the builder is gone (killed outright): its lock no longer holds, and the next run goes on (here pip fails: no
    # index) and leaves no lock behind
    out = _hook(plugin_dir, PIP_NO_INDEX="1")
    assert "pip could not install" in out.stderr and "the plugin still runs the previous environment" in out.stderr
    assert not lock.exists() and _entry(plugin_dir).stdout.strip() == "helm-rdma, version 0.0.1"


def test_a_build_lock_older_than_any_build_holds_nothing_even_when_its_pid_lives_again(tmp_path: Path) -> None:
    """After a reboot (or in a container) the pid a dead build left may name another live process: a lock older than
    two hours is stale whatever its pid says."""
    plugin_dir = tmp_path / "plugin"
    snapshot_repo(plugin_dir)
    _old_environment(plugin_dir / ".venv")
    lock = plugin_dir / ".venv.building"
    lock.mkdir()
    (lock / "pid").write_text(f"{os.getpid()}\n")  # alive: this test's own process
    hours_ago = time.time() - 3 * 3600
    os.utime(lock, (hours_ago, hours_ago))
    assert _entry(plugin_dir).stdout.strip() == "helm-rdma, version 0.0.1"
    out = _hook(plugin_dir, PIP_NO_INDEX="1")
    assert "another run" not in out.stderr and "pip could not install" in out.stderr
    assert not lock.exists()


def test_entry_script_says_how_to_repair_a_missing_venv(tmp_path: Path) -> None:
    out = subprocess.run(["/bin/sh", str(REPO / "scripts" / "helm-rdma"), "--help"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "HELM_PLUGIN_DIR": str(tmp_path)})
    assert out.returncode == 1
    # helm refuses `helm plugin update` for a plugin installed from a local directory: the hook itself works for all
    assert f"HELM_PLUGIN_DIR={tmp_path} sh {tmp_path}/scripts/plugin-venv" in out.stderr


PROVISION = ["--provision", "--compartment", "ocid1.compartment.oc1..c", "--availability-domain", "AD-1",
             "--subnet", "ocid1.subnet.oc1..s", "--image", "ocid1.image.oc1..i",
             "--set", "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner", *OPEN_PORTS]


def test_install_provision_fills_the_values_and_covers_the_hook_in_the_timeout(helm: Helm) -> None:
    nsgs = ["ocid1.networksecuritygroup.oc1..a", "ocid1.networksecuritygroup.oc1..b"]
    out = helm.run("rdma", "install", "llama405b", "--preset", "h100", *PROVISION, "--auth", "instance_principal",
                   "--nsg", nsgs[0], "--nsg", nsgs[1])
    assert out.returncode == 0, out.stderr
    [call] = helm.recorded()
    assert call[call.index("--timeout") + 1] == "303m"  # 153m first start (tests/test_values.py) + 120m network + 30m nodes
    values = yaml.safe_load((helm.cache / "rdma" / "default" / "llama405b" / "values.yaml").read_text())
    assert values["clusterNetwork"]["provision"] is True
    assert values["clusterNetwork"]["auth"] == "instancePrincipal"
    assert values["clusterNetwork"]["subnetId"] == "ocid1.subnet.oc1..s"
    assert values["clusterNetwork"]["nsgIds"] == nsgs  # what the texts that ask for an NSG tell the user to pass
    assert "name: llama405b-vllm-rdma-provision" in (helm.calls.parent / "calls.jsonl.rendered").read_text()


def test_install_provision_keeps_a_timeout_the_user_set(helm: Helm) -> None:
    out = helm.run("rdma", "install", "llama405b", "--preset", "h100", *PROVISION, "--timeout", "4h")
    assert out.returncode == 0, out.stderr
    [call] = helm.recorded()
    assert call[call.index("--timeout") + 1] == "4h"


def test_install_provision_without_the_network_settings_is_refused(helm: Helm) -> None:
    out = helm.run("rdma", "install", "llama405b", "--preset", "h100", "--provision", "--dry-run",
                   "--set", "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner")
    assert out.returncode == 2
    assert "clusterNetwork.provision: is on" in out.stderr
    assert "these clusterNetwork keys are empty: compartmentId, availabilityDomain, subnetId, imageId" in out.stderr
