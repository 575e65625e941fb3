"""`helm-rdma doctor` and the same checks run by install, upgrade and generate."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from helm_rdma.checks.doctor import value_findings
from helm_rdma.cli import main
from helm_rdma.resolve.values import resolve
from helm_rdma.sizing.presets import preset_names

from .rendering import request

TOKEN = "model.hfTokenSecret.name=hf-token,api.keySecret.name=vllm-api-key"


def doctor(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["doctor", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("preset", [p for p in preset_names() if p != "mi300x"])
def test_a_clean_presets_values_pass_with_no_warnings(preset: str) -> None:
    code, out = doctor("llama405b", "--preset", preset, "--set", TOKEN)
    assert (code, out) == (0, "0 error(s), 0 warning(s)\n")


def test_the_modes_whose_image_is_unverified_are_experimental() -> None:
    """Neither the MI300X preset's tag (docker.io/vllm/vllm-openai-rocm:v0.33.0) nor the Ray version of an image
    with Ray could be checked against a registry manifest: v0.30.0 and v0.31.0 of the ROCm image are in documented
    use, and the wheel metadata of vllm 0.17.1 (the last stock image with Ray; PyPI, Requires-Dist) asks only
    ray[cgraph]>=2.48.0, while token authentication needs Ray 2.52. Doctor says so, and a pinned digest quiets the
    image's warning."""
    code, out = doctor("llama405b", "--preset", "mi300x", "--set", TOKEN)
    assert code == 0 and out.endswith("0 error(s), 1 warning(s)\n")
    assert "warning image.tag: is v0.33.0 of docker.io/vllm/vllm-openai-rocm, the mi300x preset's, which is " \
           "experimental" in out
    assert doctor("llama405b", "--preset", "mi300x", "--set", TOKEN, "--set", "image.digest=sha256:" + "a" * 64) == (
        0, "0 error(s), 0 warning(s)\n")
    code, out = doctor("llama405b", "--preset", "h100", "--set", TOKEN, "--set", "distributed.backend=ray",
                       "--set", "image.tag=v0.17.1", "--set", "distributed.ray.authTokenSecret.name=ray-token")
    assert code == 0 and "warning distributed.backend: is ray, which is experimental" in out
    assert "fix: check with `ray --version` in the image (2.52 or newer), or set distributed.backend=native" in out


def test_nccl_timeout_in_a_values_file_is_an_error(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text('nccl:\n  settings:\n    NCCL_TIMEOUT: "1800"\n')
    code, out = doctor("--preset", "h100", "-f", str(values), "--set", TOKEN)
    assert code == 1
    assert "error   nccl.settings.NCCL_TIMEOUT: NCCL_TIMEOUT is not an NCCL variable" in out
    assert "NCCL's verbs timeout is NCCL_IB_TIMEOUT" in out and "fix: remove it" in out


@pytest.mark.parametrize(("setting", "message", "fix"), [
    ("vllm.extraEnv[0].name=NCCL_ASYNC_ERROR_HANDLING,vllm.extraEnv[0].value=x",
     "vllm.extraEnv[0].name: NCCL_ASYNC_ERROR_HANDLING is PyTorch's old name", "TORCH_NCCL_ASYNC_ERROR_HANDLING"),
    ("nccl.settings.NCCL_BLOCKING_WAIT=1", "nccl.settings.NCCL_BLOCKING_WAIT: NCCL_BLOCKING_WAIT is PyTorch's old name",
     "TORCH_NCCL_BLOCKING_WAIT"),
    ("nccl.settings.NCCL_SHM_USE_CUDA_MEMCPY=1", "was removed in NCCL 2.30.7", "remove it"),
    ("nccl.settings.NCCL_IB_HCA==mlx5_0\\,mlx5_2", "selects front-end NIC(s) mlx5_2 of BM.GPU.H100.8",
     "=mlx5_0,mlx5_1,mlx5_3"),
    ("vllm.pipelineParallelSize=3", "TP 8 x PP 3 = 24, but a group has 16 GPUs", "vllm.pipelineParallelSize=2"),
    ("distributed.backend=ray", "the stock image docker.io/vllm/vllm-openai:v0.33.0 ships no Ray", "image.tag=v0.17.1"),
    ("vllm.port=29500", "vllm.port: under hostNetwork every port binds on the node", "make them distinct"),
    ("distributed.masterPort=10250", "port 10250 is taken on the node by the kubelet", "choose another port"),
    ("model.storage.type=emptyDir", "is gated and no Hugging Face token Secret is named", "model.hfTokenSecret.name"),
    ("model.storage.type=emptyDir,model.storage.sizeLimit=500Gi", "500Gi is less than the 812 GB of weights",
     "raise it above 812G"),
])
def test_each_bad_setting_is_an_error_with_its_fix(setting: str, message: str, fix: str) -> None:
    args = ["--preset", "h100", "--set", setting]
    if "hfTokenSecret" not in fix:
        args += ["--set", TOKEN]
    code, out = doctor(*args)
    assert code == 1, out
    line = next(line for line in out.splitlines() if message in line)
    assert line.startswith("error") and fix in line.split("; fix: ", 1)[1]


@pytest.mark.parametrize(("setting", "message"), [
    ("nccl.settings.NCCL_IB_HCA==mlx5_0\\,mlx5_1", "differs from the h100 preset's RDMA NICs (missing mlx5_3"),
    ("nccl.settings.NCCL_IB_HCA=^mlx5_2", "excludes devices (^)"),
    ("nccl.debug=WARN", "NCCL will not log which transport it uses"),
    ("model.storage.type=hostPath,model.hfTokenSecret.name=", "unless the weights are already in the model directory"),
])
def test_doubtful_settings_are_warnings_and_exit_0(setting: str, message: str) -> None:
    args = ["--preset", "h100", "--set", setting]
    if "hfTokenSecret" not in setting:
        args += ["--set", TOKEN]
    code, out = doctor(*args)
    assert code == 0, out
    assert any(line.startswith("warning") and message in line for line in out.splitlines()), out


def test_a_hca_list_without_equals_matches_front_end_nics_by_prefix() -> None:
    code, out = doctor("--preset", "h100", "--set", "nccl.settings.NCCL_IB_HCA=mlx5_1", "--set", TOKEN)
    assert code == 1
    assert "NCCL treats each name as a prefix (mlx5_10, mlx5_11" in out
    assert "selects front-end NIC(s) mlx5_11" in out


def test_schema_problems_and_too_few_nodes_are_reported_as_errors() -> None:
    code, out = doctor("--preset", "h100", "--set", "rdma.mode=ib")
    assert code == 1 and "error   rdma.mode: 'ib' is not one of 'hostNetwork', 'sriov'" in out
    code, out = doctor("--preset", "h100", "--nodes", "1")
    assert code == 1 and "needs at least 2 node(s)" in out


@pytest.mark.parametrize("path", ["replicas", "vllm", "workload.kind", "vllm.pipelineParallelSize"])
def test_a_removed_key_is_a_doctor_error_like_any_schema_problem(path: str) -> None:
    # a null that removes a key the planner or the chart reads is judged before them, and still reported, not raised
    code, out = doctor("--preset", "h100", "--set", f"{path}=null")
    assert code == 1 and f"error   {path}: is required" in out, out


def test_generate_stops_on_errors_and_prints_warnings(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--set", "nccl.settings.NCCL_TIMEOUT=60",
                               "--output-dir", str(tmp_path / "a")])
    assert bad.exit_code == 2 and "NCCL_TIMEOUT is not an NCCL variable" in bad.output
    assert not (tmp_path / "a").exists()
    ok = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "b")])
    assert ok.exit_code == 0 and "warning model.hfTokenSecret.name" in ok.stderr


def test_sriov_mode_does_not_judge_the_host_device_list() -> None:
    resolved = resolve(request(sets=("rdma.mode=sriov", "nccl.settings.NCCL_IB_HCA=mlx5", TOKEN)))
    assert value_findings(resolved) == []


# Values the chart's validateValues refuses (so `helm template` fails on them, with or without the plugin) and the
# doctor error that names the same problem (doctor renders the chart and reports its rules as findings).
REFUSED = [
    # kubelet/runc: a hostPath /dev/infiniband grants no device access (FACTS.md, "How a pod gets RDMA on OKE")
    (("rdma.privileged=false",), "rdma.privileged: is false in hostNetwork mode", "rdma.privileged"),
    # hostNetwork ports listen on the node's VCN address; Ray without a token runs anyone's code (docs.ray.io token-auth)
    (("distributed.backend=ray", "image.tag=v0.17.1"), "distributed.ray.authTokenSecret.name: is empty with",
     "distributed.ray.authTokenSecret.name"),
    (("workload.kind=StatefulSet", "distributed.groupWatchPort=8000"), "repeat one (8000, 29500, 8000", "vllm.port"),
]


@pytest.mark.parametrize(("sets", "chart_message", "key"), REFUSED, ids=[r[2] for r in REFUSED])
def test_every_combination_the_chart_refuses_is_a_doctor_error(sets: tuple[str, ...], chart_message: str,
                                                              key: str, tmp_path: Path) -> None:
    runner = CliRunner()
    args = [a for s in (*sets, TOKEN) for a in ("--set", s)]
    code, out = doctor("llama405b", "--preset", "h100", *args)
    assert code == 1
    assert any(line.startswith(f"error   {key}:") for line in out.splitlines()), out
    # and plain helm refuses the same values in the chart itself
    generated = runner.invoke(main, ["generate", "llama405b", "--preset", "h100", "--output-dir", str(tmp_path / "chart"),
                                     "--set", TOKEN, "--set", "rdma.mode=sriov"])
    assert generated.exit_code == 0, generated.output
    import subprocess

    from .conftest import helm_path

    helm = subprocess.run([str(helm_path("helm4")), "template", "x", str(tmp_path / "chart"), "--set",
                           "rdma.mode=hostNetwork", *args], capture_output=True, text=True)
    assert helm.returncode == 1 and chart_message in helm.stderr, helm.stderr


@pytest.mark.parametrize(("setting", "message", "fix"), [
    ("rdma.mode=sriov,rdma.sriov.networkName=rdma-vf", "looks for it in the release's namespace",
     "rdma.sriov.networkName=default/rdma-vf"),
    ("api.keySecret.name=,api.allowUnauthenticated=true", "answers anyone who reaches it", "api.keySecret.name"),
    ("placement.clusterNetworkLabel.enabled=true", "this release does not provision (so does not label) them",
     "kubectl label node NODE helm-rdma.io/cluster-network=VALUE"),
])
def test_what_would_leave_the_group_unreachable_or_open_is_a_warning(setting: str, message: str, fix: str) -> None:
    code, out = doctor("--preset", "h100", "--set", TOKEN, "--set", setting)
    assert code == 0, out
    line = next(line for line in out.splitlines() if message in line)
    assert line.startswith("warning") and fix in line.split("; fix: ", 1)[1]


# NetworkPolicy behaviour for hostNetwork pods is undefined (kubernetes.io/docs/concepts/services-networking/
# network-policies, "NetworkPolicy and hostNetwork pods"; many CNIs ignore them): their ports are on the node's VCN
# address, where an OCI network security group on the VNIC filters them (docs.oracle.com, Networking, "Network
# Security Groups"). The torch store, vLLM's ZMQ sockets, NCCL's bootstrap and the group watch take no credentials.
PROVISION = ("clusterNetwork.provision=true,clusterNetwork.compartmentId=ocid1.compartment.oc1..c,"
             "clusterNetwork.availabilityDomain=AD-1,clusterNetwork.subnetId=ocid1.subnet.oc1..s,"
             "clusterNetwork.imageId=ocid1.image.oc1..i,clusterNetwork.image.repository=iad.ocir.io/ns/p,"
             "clusterNetwork.oke.clusterId=ocid1.cluster.oc1..k")


@pytest.mark.parametrize(("setting", "warned"), [
    ("", True),
    ("clusterNetwork.nsgIds={ocid1.networksecuritygroup.oc1..n}", False),
    ("rdma.mode=sriov,rdma.sriov.networkName=default/rdma-vf", False),  # pod network: the chart's NetworkPolicy
])
def test_provisioned_nodes_without_an_nsg_leave_the_group_ports_open_on_the_vcn(setting: str, warned: bool) -> None:
    code, out = doctor("--preset", "h100", "--set", TOKEN, "--set", PROVISION, *(("--set", setting) if setting else ()))
    assert code == 0, out
    found = [line for line in out.splitlines() if line.startswith("warning clusterNetwork.nsgIds:")]
    if not warned:
        assert found == []
        return
    [line] = found
    assert "the torch store's 29500" in line and "with no authentication" in line
    # OCI admits the union of the subnet's security lists and the VNIC's NSGs ("Comparison of Security Lists and
    # Network Security Groups", docs.oracle.com/iaas/Content/Network/Concepts/securityrules.htm): no NSG leaves the
    # subnet's lists alone to admit the group's ports, to everyone in their source range.
    assert "only where the subnet's security lists admit them" in line
    assert "keep the group's ports out of the subnet's security lists" in line
    assert "group watch" not in line  # LeaderWorkerSet: the watch runs only in StatefulSet mode (vllm-rdma.groupWatch)
    watched = doctor("--preset", "h100", "--set", TOKEN, "--set", PROVISION, "--set", "workload.kind=StatefulSet")[1]
    assert "the torch store's 29500, the group watch's 29510, vLLM's ZMQ sockets" in watched
    assert "examples/nsg-rules.json" in line and "clusterNetwork.nsgIds=[OCID]" in line and "--nsg" in line
    assert "0 error(s)" in out
    # nodes provisioned elsewhere are someone else's network: no warning without clusterNetwork.provision
    assert "clusterNetwork.nsgIds" not in doctor("--preset", "h100", "--set", TOKEN)[1]


def test_weights_larger_than_the_boot_volume_off_nvme_are_a_warning() -> None:
    # llama405b's 812 GB on a 512 GB boot volume (oracle-quickstart/oci-hpc-oke: worker_rdma_boot_volume_size = 512)
    code, out = doctor("--preset", "h100", "--set", TOKEN, "--set", "model.storage.hostPath=/mnt/models")
    assert code == 0
    assert ("warning model.storage.hostPath: /mnt/models is not under /mnt/nvme, so the 812 GB of llama405b's "
            "weights go to the boot volume, which holds 512 GB") in out
    code, out = doctor("llama70b", "--preset", "h100", "--set", TOKEN, "--set", "model.storage.hostPath=/mnt/models")
    assert "model.storage.hostPath" not in out  # 141 GB fits
    assert doctor("llama405b", "--preset", "h100", "--set", TOKEN) == (0, "0 error(s), 0 warning(s)\n")  # the default: NVMe
