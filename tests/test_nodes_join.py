"""GPU nodes that join OKE by themselves: the cloud-init and instance metadata the provisioner builds from the
cluster (read from the fake Container Engine API with the real SDK), checked with Debian's `cloud-init schema` and
shellcheck; VCN-native pod networking; the hook reading its apiKey Secret as uid 65532; doctor's provisioning checks.

Rules of the consumers:
- Oracle's OKE stack (oracle-quickstart/oci-hpc-oke terraform/oke-workers.tf, files/oke-ubuntu-cloud-init.sh): the
  API server host in /etc/oke/oke-apiserver, the CA (base64) in /etc/kubernetes/ca.crt, then `oke bootstrap` on
  Ubuntu images or /etc/oke/oke-install.sh --apiserver-endpoint --kubelet-ca-cert on Oracle Linux ones.
- Self-managed nodes on VCN-native clusters need oke-native-pod-networking, pod-subnets (and optionally pod-nsgids)
  and oke-max-pods in their metadata (oracle-terraform-modules/terraform-oci-oke modules/workers/instanceconfig.tf;
  OCI docs "Creating a Self-Managed Node").
- The kubelet writes a Secret volume's files owned by root, group root, mode defaultMode; with a pod fsGroup the
  files' group is the fsGroup and group read is added (Kubernetes docs "Configure a Security Context for a Pod or
  Container": fsGroup; API reference SecretVolumeSource.defaultMode, "might be in conflict with ... fsGroup, and the
  result can be other mode bits set"; kubernetes/kubernetes pkg/volume/volume_linux.go, roMask 0440). The container's
  processes carry runAsUser, runAsGroup, and fsGroup and supplementalGroups as supplementary groups.
"""
# ruff: noqa: F811  (the fixtures imported from ocitest are redefined as test parameters)

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.cli import main

from .conftest import helm_path
from .fake_oci import CA_B64, FakeOci, write_config
from .ocitest import COMPARTMENT, config, fake, key, run  # noqa: F401  (fixtures)
from .rendering import hooks, render

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "values.schema.json").read_text())
REPOSITORY = SCHEMA["properties"]["clusterNetwork"]["properties"]["oke"]["properties"]["nodePackageRepository"][
    "default"]
TOOLS_MISSING = "is not installed (make test installs it with apt-get as root; see scripts/test-tools)"


def launch_metadata(fake: FakeOci) -> dict[str, str]:
    [item] = fake.instance_configurations.values()
    return item["instanceDetails"]["launchDetails"]["metadata"]


def user_data(fake: FakeOci) -> str:
    return base64.b64decode(launch_metadata(fake)["user_data"]).decode()


def test_the_cloud_init_holds_the_endpoint_the_ca_and_the_bootstrap(config: Path, fake: FakeOci) -> None:
    cluster = fake.add_cluster(cni="FLANNEL_OVERLAY", private_endpoint="10.0.0.10:6443", version="v1.31.1")
    result = run(config, fake, "--oke-cluster", cluster)
    assert result.exit_code == 0, result.output
    metadata = launch_metadata(fake)
    assert metadata["apiserver_host"] == "10.0.0.10" and metadata["cluster_ca_cert"] == CA_B64
    assert metadata["oke-k8version"] == "v1.31.1"
    assert metadata["oke-tenancy-id"].startswith("ocid1.tenancy.")
    assert metadata["oke-initial-node-labels"] == "helm-rdma.io/cluster-network=llama"
    assert "oke-native-pod-networking" not in metadata  # a flannel cluster
    text = user_data(fake)
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    files = {f["path"]: f for f in doc["write_files"]}
    assert files["/etc/oke/oke-apiserver"]["content"].strip() == "10.0.0.10"
    assert files["/etc/kubernetes/ca.crt"] == {**files["/etc/kubernetes/ca.crt"], "encoding": "b64",
                                               "content": CA_B64}
    assert 'default_ulimits = [\n    "memlock=-1:-1"\n]' in files["/etc/crio/crio.conf.d/90-helm-rdma-memlock.conf"][
        "content"]
    # oci-hpc-oke terraform/oke-workers.tf: networkd must leave the RDMA interfaces' routes and rules alone.
    assert files["/etc/systemd/networkd.conf.d/90-helm-rdma.conf"]["content"] == (
        "[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n")
    join = files["/usr/local/sbin/helm-rdma-oke-join"]["content"]
    assert "retry oke bootstrap" in join and "oci-oke-node-all-" in join
    assert 'retry bash "$root/etc/oke/oke-install.sh" --apiserver-endpoint "$apiserver" --kubelet-ca-cert "$ca_b64"' \
        in join
    raid = files["/usr/local/sbin/helm-rdma-nvme-raid"]["content"]
    assert "mdadm --create" in raid and "mount_point=/mnt/nvme" in raid
    raid_cmd, join_cmd, networkd_cmd = doc["runcmd"]
    assert raid_cmd.startswith("/usr/local/sbin/helm-rdma-nvme-raid 10 || ")  # Oracle's default level
    assert join_cmd == ["/usr/local/sbin/helm-rdma-oke-join", "v1.31.1", REPOSITORY]
    assert networkd_cmd.startswith('if . /etc/os-release && [ "$ID" = ubuntu ]; then systemctl restart systemd-networkd')
    # The cluster is read once, only because an instance configuration is made: a second run reads nothing.
    reads = sum(1 for _, path in fake.calls if "/20180222/" in path)
    assert reads == 2 and run(config, fake, "--oke-cluster", cluster).exit_code == 0
    assert sum(1 for _, path in fake.calls if "/20180222/" in path) == reads


@pytest.mark.parametrize(("version", "disabled"), [("v1.31.1", False), ("v1.33.9", False), ("v1.34.0", True),
                                                    ("v1.35.2", True), ("v2.0.0", True)])
def test_crio_short_names_are_turned_off_from_kubernetes_1_34_only(config: Path, fake: FakeOci, version: str,
                                                                    disabled: bool) -> None:
    """oci-hpc-oke files/oke-ubuntu-cloud-init.sh (commit 61d210ac) configure_crio_defaults: for Kubernetes >= v1.34
    `[crio.image] short_name_mode = "disabled"` in a CRI-O drop-in; older CRI-O has no such setting."""
    assert run(config, fake, "--oke-cluster", fake.add_cluster(version=version)).exit_code == 0
    files = {f["path"]: f["content"] for f in yaml.safe_load(user_data(fake))["write_files"]}
    crio = {p: c for p, c in files.items() if p.startswith("/etc/crio/crio.conf.d/")}
    if disabled:
        assert crio["/etc/crio/crio.conf.d/91-helm-rdma-short-names.conf"] == (
            '[crio.image]\nshort_name_mode = "disabled"\n')
    else:
        assert list(crio) == ["/etc/crio/crio.conf.d/90-helm-rdma-memlock.conf"]


def test_the_raid_level_and_the_package_repository_come_from_the_flags(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "--oke-cluster", fake.add_cluster(version="v1.34.1"), "--nvme-raid-level", "0",
                 "--node-package-repository", "https://mirror.example/ubuntu-{codename}/k8s-{kubernetes}")
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(user_data(fake))
    assert doc["runcmd"][0].startswith("/usr/local/sbin/helm-rdma-nvme-raid 0 || ")
    assert doc["runcmd"][1] == ["/usr/local/sbin/helm-rdma-oke-join", "v1.34.1",
                                "https://mirror.example/ubuntu-{codename}/k8s-{kubernetes}"]


@pytest.fixture
def cloud_config(config: Path, fake: FakeOci, tmp_path: Path) -> Path:
    assert run(config, fake, "--oke-cluster", fake.add_cluster()).exit_code == 0
    path = tmp_path / "user-data.yaml"
    path.write_text(user_data(fake))
    return path


def test_the_generated_cloud_config_passes_cloud_inits_schema(cloud_config: Path) -> None:
    if shutil.which("cloud-init") is None:
        pytest.skip(f"cloud-init {TOOLS_MISSING}")
    out = subprocess.run(["cloud-init", "schema", "--config-file", str(cloud_config)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Valid cloud-config" in out.stdout + out.stderr


def test_the_nodes_scripts_pass_shellcheck(cloud_config: Path, tmp_path: Path) -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip(f"shellcheck {TOOLS_MISSING}")
    scripts = []
    for item in yaml.safe_load(cloud_config.read_text())["write_files"]:
        if item["content"].startswith("#!"):
            scripts.append(tmp_path / Path(item["path"]).name)
            scripts[-1].write_text(item["content"])
    assert len(scripts) == 2
    out = subprocess.run(["shellcheck", "--severity=style", *map(str, scripts)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_a_vcn_native_cluster_without_a_pod_subnet_is_refused_before_anything_is_made(config: Path,
                                                                                     fake: FakeOci) -> None:
    cluster = fake.add_cluster(cni="OCI_VCN_IP_NATIVE")
    result = run(config, fake, "--oke-cluster", cluster)
    assert result.exit_code == 2
    assert f"OKE cluster {cluster} uses VCN-native pod networking (OCI_VCN_IP_NATIVE)" in result.output
    assert "set clusterNetwork.oke.podSubnetId (--pod-subnet)" in result.output
    assert fake.instance_configurations == {} and fake.cluster_networks == {}


def test_with_a_pod_subnet_the_metadata_carries_the_pod_network(config: Path, fake: FakeOci) -> None:
    cluster = fake.add_cluster(cni="OCI_VCN_IP_NATIVE")
    result = run(config, fake, "--oke-cluster", cluster, "--pod-subnet", "ocid1.subnet.oc1..pods",
                 "--pod-nsg", "ocid1.networksecuritygroup.oc1..a", "--pod-nsg", "ocid1.networksecuritygroup.oc1..b")
    assert result.exit_code == 0, result.output
    metadata = launch_metadata(fake)
    assert metadata["oke-native-pod-networking"] == "true" and metadata["oke-max-pods"] == "64"
    assert metadata["pod-subnets"] == "ocid1.subnet.oc1..pods"
    assert metadata["pod-nsgids"] == "ocid1.networksecuritygroup.oc1..a,ocid1.networksecuritygroup.oc1..b"


def test_a_users_own_cloud_init_wins(config: Path, fake: FakeOci, tmp_path: Path) -> None:
    mine = tmp_path / "cloud-init.yaml"
    mine.write_text("#cloud-config\nruncmd: [echo mine]\n")
    result = run(config, fake, "--oke-cluster", fake.add_cluster(), "--cloud-init-file", str(mine))
    assert result.exit_code == 0, result.output
    assert user_data(fake) == mine.read_text().strip()
    assert launch_metadata(fake)["apiserver_host"] == "10.0.0.10"


def test_a_basic_cluster_is_refused(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "--oke-cluster", fake.add_cluster(kind="BASIC_CLUSTER"))
    assert result.exit_code == 2
    assert "is a basic cluster, and only enhanced clusters accept self-managed nodes" in result.output


def test_an_unknown_cluster_names_the_key_and_the_policy(config: Path, fake: FakeOci) -> None:
    result = run(config, fake, "--oke-cluster", "ocid1.cluster.oc1..nope")
    assert result.exit_code == 1
    assert "OCI get_cluster failed: 404 NotAuthorizedOrNotFound" in result.output
    assert "check clusterNetwork.oke.clusterId (--oke-cluster), the region, and that a policy lets auth mode apiKey " \
           "use clusters (GetCluster, CreateKubeconfig)" in result.output
    assert "Traceback" not in result.output


def kubelet_secret_file(pod: dict[str, Any], volume: dict[str, Any]) -> tuple[int, int, int]:
    """Owner, group and mode of a Secret volume's files as the kubelet writes them (see the module docstring)."""
    mode = volume["secret"].get("defaultMode", 0o644)
    fs_group = pod.get("securityContext", {}).get("fsGroup")
    return (0, 0, mode) if fs_group is None else (0, fs_group, mode | 0o440)


def process_ids(pod: dict[str, Any]) -> tuple[int, set[int]]:
    context = pod.get("securityContext", {})
    groups = {context.get("runAsGroup", 0), *context.get("supplementalGroups", [])}
    if "fsGroup" in context:
        groups.add(context["fsGroup"])
    return context.get("runAsUser", 0), groups


@pytest.fixture
def mounted_secret(key: tuple[Path, Any, str]) -> Iterator[tuple[Path, Path, dict[str, Any]]]:
    """The apiKey Secret's two files, written with the owner, group and mode the kubelet gives them for the chart's
    provisioner pod, in a directory every user may enter (like the volume's mount point)."""
    docs = render("clusterNetwork.provision=true", "clusterNetwork.compartmentId=ocid1.compartment.oc1..c",
                  "clusterNetwork.availabilityDomain=AD-1", "clusterNetwork.subnetId=ocid1.subnet.oc1..s",
                  "clusterNetwork.imageId=ocid1.image.oc1..i", "clusterNetwork.auth=apiKey",
                  "clusterNetwork.apiKeySecret=oci-api-key",
                  "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner")
    pod = hooks(docs)["llama405b-vllm-rdma-provision"]["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if (v.get("secret") or {}).get("secretName") == "oci-api-key"]
    directory = Path(tempfile.mkdtemp(prefix="helm-rdma-secret-"))
    directory.chmod(0o755)
    try:
        key_file = directory / "oci_api_key.pem"
        shutil.copy(key[0], key_file)
        config = write_config(directory, key_file, key[2])
        yield config, key_file, pod
    finally:
        shutil.rmtree(directory)


def test_the_hooks_uid_can_read_the_api_key_secret_as_the_chart_mounts_it(
        mounted_secret: tuple[Path, Path, dict[str, Any]]) -> None:
    config, key_file, pod = mounted_secret
    [volume] = [v for v in pod["volumes"] if (v.get("secret") or {}).get("secretName") == "oci-api-key"]
    owner, group, mode = kubelet_secret_file(pod, volume)
    uid, groups = process_ids(pod)
    assert uid == 65532 and group in groups and mode & 0o040, (owner, group, oct(mode))
    if os.geteuid() != 0:
        pytest.skip("reading the files as uid 65532 needs root to set their owner and to switch user")
    for path in (config, key_file):
        os.chown(path, owner, group)
        path.chmod(mode)
    assert read_as(65532, 65532, config) == "ok"


def test_an_unreadable_key_is_permission_denied_not_missing(mounted_secret: tuple[Path, Path, dict[str, Any]]) -> None:
    if os.geteuid() != 0:
        pytest.skip("reading the files as uid 65532 needs root to set their owner and to switch user")
    config, key_file, _ = mounted_secret
    config.chmod(0o444)
    key_file.chmod(0o000)  # as without fsGroup: root's, and uid 65532 is neither owner nor in the group
    out = read_as(65532, 65532, config)
    assert f"key_file {key_file}: permission denied (owner uid 0, gid 0, mode 0000; this process runs as uid " \
           "65532, gid 65532)" in out
    config.chmod(0o000)
    assert f"--oci-config {config}, profile [DEFAULT]: permission denied" in read_as(65532, 65532, config)
    config.unlink()
    assert "profile [DEFAULT]: no such file" in read_as(65532, 65532, config)


def read_as(uid: int, gid: int, config: Path) -> str:
    """Build the OCI clients for ``config`` in a process running as ``uid``: "ok", or our error's message. Python and
    the SDK are imported first (the interpreter's files may sit where that user cannot read); only the config and key
    are opened as ``uid``."""
    code = ("import os, sys, oci\n"
            "from helm_rdma.errors import HelmRdmaError\n"
            "from helm_rdma.oci.clients import DEFAULT_PATIENCE, OciAuth, make_clients\n"
            f"os.setgroups([{gid}]); os.setgid({gid}); os.setuid({uid})\n"
            "try:\n"
            "    make_clients(OciAuth(config_file=sys.argv[1]), patience=DEFAULT_PATIENCE, retry_strategy=None)\n"
            "    print('ok')\n"
            "except HelmRdmaError as exc:\n"
            "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def doctor(*sets: str) -> tuple[int, str]:
    args = ["doctor", "llama405b", "--preset", "h100", "--set", "model.hfTokenSecret.name=hf-token",
            "--set", "api.keySecret.name=vllm-api-key"]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


NETWORK = ("clusterNetwork.provision=true", "clusterNetwork.compartmentId=ocid1.compartment.oc1..c",
           "clusterNetwork.availabilityDomain=AD-1", "clusterNetwork.subnetId=ocid1.subnet.oc1..s",
           "clusterNetwork.imageId=ocid1.image.oc1..i")


def test_doctor_says_how_to_build_and_push_the_provisioner_image() -> None:
    code, out = doctor(*NETWORK, "clusterNetwork.oke.clusterId=ocid1.cluster.oc1..k")
    assert code == 1
    [line] = [line for line in out.splitlines() if "clusterNetwork.image.repository" in line]
    assert line.startswith("error") and "no public registry holds the provisioner image" in line
    assert "`make provisioner-image` prints the docker build, login and push commands for OCIR" in line


def test_doctor_warns_when_the_nodes_would_never_join() -> None:
    repo = "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner"
    code, out = doctor(*NETWORK, repo)
    assert code == 0, out
    assert any(line.startswith("warning clusterNetwork.oke.clusterId: is empty and no cloudInit is given")
               for line in out.splitlines()), out
    nsg = "clusterNetwork.nsgIds[0]=ocid1.networksecuritygroup.oc1..g"  # (without one doctor warns of its own)
    code, out = doctor(*NETWORK, repo, nsg, "clusterNetwork.oke.clusterId=ocid1.cluster.oc1..k")
    assert (code, out) == (0, "0 error(s), 0 warning(s)\n")


def test_plain_helm_requires_the_provisioner_image_only_when_a_hook_runs(tmp_path: Path) -> None:
    schema = json.loads((Path(__file__).parents[1] / "schemas" / "values.schema.json").read_text())
    assert schema["properties"]["clusterNetwork"]["properties"]["image"]["properties"]["repository"]["default"] == ""
    assert doctor()[0] == 0  # no provisioning: nothing required
    chart = Path(__file__).parents[1] / "charts" / "vllm-rdma"
    args = ["template", "x", str(chart), "--set", ",".join(NETWORK)]
    out = subprocess.run([str(helm_path("helm4")), *args], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "  - clusterNetwork.image.repository: is empty, and no public registry" in out.stderr
    repo = "clusterNetwork.image.repository=iad.ocir.io/example/helm-rdma-provisioner"
    out = subprocess.run([str(helm_path("helm4")), *args, "--set", repo], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
