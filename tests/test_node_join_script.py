"""The nodes' join script (oci/nodeinit/oke-join.sh, as the generated cloud-init carries it) run with bash against a
directory standing for the node's root and fake `apt-get`, `oke` and `curl` commands: which source the OKE node
package comes from, and what a node says when it cannot join.

Rules of the consumers:
- Oracle's GPU and RDMA images carry the OKE node package uninstalled: a node without the `oke` command installs
  `oci-oke-node-all-<version without v>` from the image's repository
  `/opt/oke-node-client-packages/ubuntu-<codename>/kubernetes-<major.minor>` (an apt source `file://...` with
  `Trusted: yes`, used when its `dists` exists), else from Oracle's remote repository, then runs `oke bootstrap` with
  retries (oracle-quickstart/oci-hpc-oke files/oke-ubuntu-cloud-init.sh at commit 61d210ac, lines 171-226).
- Oracle Linux: `oke bootstrap` when present, else the metadata's oke_init_script (same file, lines 228-261); Oracle
  Linux OKE images for self-managed nodes carry /etc/oke/oke-install.sh (OCI docs "Creating a Self-Managed Node").
- An apt source in deb822 form: `URIs` may list several URIs separated by spaces (sources.list(5)).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest

from helm_rdma.oci.nodejoin import SCRIPTS

REMOTE = "https://a.example/ubuntu-{codename}/kubernetes-{kubernetes} https://b.example/{codename}/{kubernetes}"
FAKE_APT = """#!/usr/bin/env bash
echo "apt-get $*" >> "$LOG"
if [ "${*: -2:1}" = install ]; then
    sources=$(cat "$HELM_RDMA_NODE_ROOT/etc/apt/sources.list.d/oke-node-client.sources")
    echo "$sources" >> "$LOG"
    case "$sources" in *"${BROKEN:-nothing-is-broken}"*) exit 100 ;; esac
    printf '#!/usr/bin/env bash\\necho "oke $*" >> "$LOG"\\n' > "$BIN/oke"
    chmod +x "$BIN/oke"
fi
"""
FAKE_OKE = '#!/usr/bin/env bash\necho "oke $*" >> "$LOG"\n[ ! -e "$BIN/oke-fails-once" ] || { rm "$BIN/oke-fails-once"; exit 1; }\n'
FAKE_CURL = '#!/usr/bin/env bash\necho "curl $*" >> "$LOG"\nexit 22\n'


class Node(NamedTuple):
    root: Path
    bin: Path
    log: Path


def make_node(tmp_path: Path, *, os_id: str = "ubuntu", codename: str = "jammy", oke: bool = False,
              local_repository: str | None = None, oke_install: bool = False) -> Node:
    root, bin_dir = tmp_path / "root", tmp_path / "bin"
    for d in ("etc/oke", "etc/kubernetes", "var/run"):
        (root / d).mkdir(parents=True)
    bin_dir.mkdir()
    (root / "etc/os-release").write_text(f'ID={os_id}\nVERSION_CODENAME={codename}\nPRETTY_NAME="{os_id} test"\n')
    (root / "etc/oke/oke-apiserver").write_text("10.0.0.10\n")
    (root / "etc/kubernetes/ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    if local_repository:
        (root / "opt/oke-node-client-packages" / local_repository / "dists").mkdir(parents=True)
    if oke_install:
        (root / "etc/oke/oke-install.sh").write_text('echo "oke-install $*" >> "$LOG"\n')
    for name, text in (("apt-get", FAKE_APT), ("curl", FAKE_CURL)) + ((("oke", FAKE_OKE),) if oke else ()):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return Node(root=root, bin=bin_dir, log=tmp_path / "log")


def join(node: Node, *args: str, broken: str = "") -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{node.bin}:{os.environ['PATH']}", "HELM_RDMA_NODE_ROOT": str(node.root), "LOG": str(node.log),
           "BIN": str(node.bin), "BROKEN": broken, "HELM_RDMA_JOIN_PAUSE": "0", "HELM_RDMA_JOIN_ATTEMPTS": "3"}
    return subprocess.run(["bash", str(SCRIPTS / "oke-join.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=60)


def log(node: Node) -> list[str]:
    return node.log.read_text().splitlines() if node.log.exists() else []


def test_an_image_without_oke_installs_the_package_from_its_own_repository_then_bootstraps(tmp_path: Path) -> None:
    node = make_node(tmp_path, local_repository="ubuntu-jammy/kubernetes-1.34")
    out = join(node, "v1.34.1", REMOTE)
    assert out.returncode == 0, out.stderr
    lines = log(node)
    local = f"file://{node.root}/opt/oke-node-client-packages/ubuntu-jammy/kubernetes-1.34"
    assert f"URIs: {local}" in lines and "Trusted: yes" in lines
    assert "apt-get -o DPkg::Lock::Timeout=600 -y install oci-oke-node-all-1.34.1" in lines
    assert lines[-1] == "oke bootstrap"
    assert not [line for line in lines if "a.example" in line]  # the remote repository was not needed


def test_a_failing_local_repository_falls_back_to_the_remote_one(tmp_path: Path) -> None:
    node = make_node(tmp_path, codename="noble", local_repository="ubuntu-noble/kubernetes-1.33")
    out = join(node, "v1.33.4", REMOTE, broken="file://")
    assert out.returncode == 0, out.stderr
    assert "URIs: https://a.example/ubuntu-noble/kubernetes-1.33 https://b.example/noble/1.33" in log(node)
    assert log(node)[-1] == "oke bootstrap"
    assert "installing oci-oke-node-all-1.33.4 from https://a.example/ubuntu-noble/kubernetes-1.33 " \
           "https://b.example/noble/1.33 (clusterNetwork.oke.nodePackageRepository)" in out.stderr


def test_when_no_repository_has_the_package_the_failure_names_each_source(tmp_path: Path) -> None:
    node = make_node(tmp_path)  # no local repository on this image
    out = join(node, "v1.34.1", REMOTE, broken="example")
    assert out.returncode == 1
    local = f"file://{node.root}/opt/oke-node-client-packages/ubuntu-jammy/kubernetes-1.34"
    assert (f"helm-rdma: could not install oci-oke-node-all-1.34.1 from the image's repository {local} (absent) "
            "https://a.example/ubuntu-jammy/kubernetes-1.34 https://b.example/jammy/1.34 "
            "(clusterNetwork.oke.nodePackageRepository):") in out.stderr
    assert "set clusterNetwork.oke.nodePackageRepository to a mirror" in out.stderr
    assert not [line for line in log(node) if line.startswith("oke ")]


def test_an_image_with_oke_only_bootstraps_retrying_a_failure(tmp_path: Path) -> None:
    node = make_node(tmp_path, oke=True)
    (node.bin / "oke-fails-once").touch()
    out = join(node, "v1.34.1", REMOTE)
    assert out.returncode == 0, out.stderr
    assert log(node) == ["oke bootstrap", "oke bootstrap"]  # no apt-get at all
    assert "'oke bootstrap' failed (attempt 1 of 3)" in out.stderr


def test_oracle_linux_joins_with_oke_install_and_never_uses_apt(tmp_path: Path) -> None:
    node = make_node(tmp_path, os_id="ol", oke_install=True)
    out = join(node, "v1.34.1", REMOTE)
    assert out.returncode == 0, out.stderr
    [line] = log(node)
    assert line == "oke-install --apiserver-endpoint 10.0.0.10 --kubelet-ca-cert LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="


def test_oracle_linux_sets_selinux_permissive_before_it_joins_as_oracle_does(tmp_path: Path) -> None:
    # oci-hpc-oke files/oke-ubuntu-cloud-init.sh, its `ol` branch: setenforce 0 and SELINUX=permissive; enforcing,
    # CRI-O keeps the unprivileged download container from writing the unlabelled hostPath of the weights
    node = make_node(tmp_path, os_id="ol", oke_install=True)
    (node.root / "etc/selinux").mkdir(parents=True)
    (node.root / "etc/selinux/config").write_text("SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    (node.bin / "setenforce").write_text('#!/usr/bin/env bash\necho "setenforce $*" >> "$LOG"\n')
    (node.bin / "setenforce").chmod(0o755)
    out = join(node, "v1.34.1", REMOTE)
    assert out.returncode == 0, out.stderr
    assert log(node)[0] == "setenforce 0" and log(node)[1].startswith("oke-install ")
    assert (node.root / "etc/selinux/config").read_text() == "SELINUX=permissive\nSELINUXTYPE=targeted\n"
    ubuntu = make_node(tmp_path / "u", local_repository="ubuntu-jammy/kubernetes-1.34", oke=True)
    (ubuntu.bin / "setenforce").write_text('#!/usr/bin/env bash\necho "setenforce $*" >> "$LOG"\n')
    (ubuntu.bin / "setenforce").chmod(0o755)
    assert join(ubuntu, "v1.34.1", REMOTE).returncode == 0
    assert not [line for line in log(ubuntu) if line.startswith("setenforce")]


def test_an_image_with_no_way_to_join_says_what_it_lacks(tmp_path: Path) -> None:
    node = make_node(tmp_path, os_id="ol")
    out = join(node, "v1.34.1", REMOTE)
    assert out.returncode == 1
    assert "this ol test image has no oke command, no /etc/oke/oke-install.sh and no oke_init_script" in out.stderr
    assert any(line.startswith("curl ") and "oke_init_script" in line for line in log(node))


def test_without_the_clusters_version_a_node_without_oke_cannot_choose_the_package(tmp_path: Path) -> None:
    node = make_node(tmp_path, local_repository="ubuntu-jammy/kubernetes-1.34")
    out = join(node, "", REMOTE)
    assert out.returncode == 1
    assert "the cluster's Kubernetes version is unknown" in out.stderr
    assert "set clusterNetwork.oke.clusterId (--oke-cluster)" in out.stderr


@pytest.mark.parametrize("level", ["5", "1", "raid10"])
def test_the_raid_script_refuses_a_level_other_than_10_or_0(level: str) -> None:
    out = subprocess.run(["bash", str(SCRIPTS / "nvme-raid.sh"), level], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and f"RAID level {level}: expected 10 or 0" in out.stderr
