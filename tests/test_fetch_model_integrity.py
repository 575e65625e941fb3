"""The model download (charts/vllm-rdma/files/fetch_model.py) as sequences on one model directory, against the Hub
stand-in (tests/hub_standin.py) with the real huggingface_hub client: two writers at once, a kill that left a partial
behind (corrupt, complete but not moved, or of another commit), a hostile listing, a disk too small or the node's
boot volume, and a repository with two formats of the same weights.

The sha256 every shard is checked against is the listing's `lfs.sha256`: huggingface_hub's `model_info(...,
files_metadata=True)` fills `RepoSibling.lfs` as `BlobLfsInfo(size, sha256, pointer_size)` from the Hub's
`siblings[].lfs` (huggingface/huggingface_hub src/huggingface_hub/hf_api.py, class BlobLfsInfo at line 466,
ModelInfo's siblings at line 1090, commit ee0a4510f4bc15e26cb722be2efc2bdb01383ca0).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .hub_standin import Hub, HubServer, Repo
from .test_fetch_model import MB, SCRIPT, WANTED, env_for, fetch, repo_files

SHA = Repo(files={}).sha
BIG = "model-00001-of-00002.safetensors"
SMALL = "model-00002-of-00002.safetensors"


def gets(hub: Hub, name: str) -> list[str]:
    """The Range header of every GET of one file of meta-llama/Tiny ("" for a whole-file request)."""
    return [r for _, path, r in hub.served("GET", "/meta-llama/Tiny/resolve/") if path.endswith("/" + name)]


def start(url: str, tmp: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(SCRIPT), "--repo", "meta-llama/Tiny", "--dest", str(tmp / "m"),
                             "--progress-seconds", "0.2", *args], env=env_for(url, tmp), stderr=subprocess.PIPE,
                            text=True)


def test_two_downloaders_at_once_end_with_the_same_verified_files_each_fetched_once(tmp_path: Path) -> None:
    # Two leaders on one claim (model.storage.type=pvc with replicas > 1): each file is fetched under an advisory
    # lock, so one writes it and the other waits, then finds it complete and checked.
    files = repo_files(big=12 * MB)
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)}, throttle=16 * MB)
    with HubServer(hub) as url:
        first, second = start(url, tmp_path, "--workers", "2"), start(url, tmp_path, "--workers", "2")
        errs = [p.communicate(timeout=120)[1] for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, errs
    model = tmp_path / "m"
    for name in WANTED:
        assert (model / name).read_bytes() == files[name]
        # One writer fetched it, the other found it complete; the index is read by each that starts before it is in
        # place (it chooses the files).
        assert len(gets(hub, name)) in ((1,) if name != "model.safetensors.index.json" else (1, 2)), name
    marker = json.loads((model / ".helm-rdma-download.json").read_text())
    repo = hub.repos["meta-llama/Tiny"]
    assert marker["sha256"] == {n: repo.etag(n) for n in WANTED if repo.is_lfs(n)}
    assert marker["sha256"][BIG] == hashlib.sha256((model / BIG).read_bytes()).hexdigest()
    assert any("another downloader is fetching it; waiting" in err for err in errs)
    assert not list(model.glob("*.part")) and not list((model / ".helm-rdma-partial").glob("*.part"))


def test_a_corrupt_partial_and_a_corrupt_shard_are_found_and_fetched_again(tmp_path: Path) -> None:
    files = repo_files()
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)})
    model = tmp_path / "m"
    (model / ".helm-rdma-partial").mkdir(parents=True)
    (model / ".helm-rdma-partial" / f"{BIG}.{SHA}.part").write_bytes(os.urandom(len(files[BIG])))  # complete size
    (model / SMALL).write_bytes(os.urandom(len(files[SMALL])))  # in place, right size, wrong bytes
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (model / BIG).read_bytes() == files[BIG] and (model / SMALL).read_bytes() == files[SMALL]
    assert gets(hub, BIG) == [""] and gets(hub, SMALL) == [""]  # fetched whole, once each
    assert f"{BIG}: sha256 " in run.stderr and "fetching it again" in run.stderr
    assert f"{SMALL}: on disk with another size or sha256 than the Hub lists" in run.stderr


def test_a_complete_partial_never_moved_into_place_is_finished_without_a_request(tmp_path: Path) -> None:
    # A kill between the last write and the rename: asking for `bytes=SIZE-` would get HTTP 416 on every restart.
    files = repo_files()
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)})
    model = tmp_path / "m"
    (model / ".helm-rdma-partial").mkdir(parents=True)
    (model / ".helm-rdma-partial" / f"{BIG}.{SHA}.part").write_bytes(files[BIG])
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 0, run.stderr
    assert (model / BIG).read_bytes() == files[BIG]
    assert gets(hub, BIG) == []  # zero requests for it


def test_a_partial_of_another_commit_is_never_completed_with_this_commits_bytes(tmp_path: Path) -> None:
    files = repo_files()
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)})
    model = tmp_path / "m"
    old = model / ".helm-rdma-partial" / f"{BIG}.{'f' * 40}.part"
    old.parent.mkdir(parents=True)
    old.write_bytes(files[BIG][: MB])  # the first half of what an older commit had: resuming would mix commits
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 0, run.stderr
    assert gets(hub, BIG) == [""] and not old.exists()
    assert (model / BIG).read_bytes() == files[BIG]


@pytest.mark.parametrize("name", ["../escape.json", "sub/../../escape.json", "/tmp/escape.json"])
def test_a_listed_name_outside_the_model_directory_is_refused_and_nothing_is_written(tmp_path: Path,
                                                                                       name: str) -> None:
    hub = Hub(repos={"meta-llama/Tiny": Repo(files={**repo_files(), name: b'{"owned": true}'})})
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and f'names "{name}", which is outside the model directory' in errors[0]
    assert not (tmp_path / "escape.json").exists() and not (tmp_path / "m").exists()
    assert hub.served("GET", "/meta-llama/Tiny/resolve/") == []


def test_a_target_without_room_fails_before_any_byte_naming_both_figures(tmp_path: Path) -> None:
    # The free space is the target's own (os.statvfs of it, as the pod sees its volume): a listing larger than what
    # tmp_path has free, served from a sparse file that takes no room.
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    huge = tmp_path / "huge.safetensors"
    with huge.open("wb") as f:
        f.truncate(free + (1 << 40))
    hub = Hub(repos={"meta-llama/Tiny": Repo(files={"config.json": b"{}"}, disk={"model.safetensors": huge},
                                             stated_sha256={"model.safetensors": "0" * 64})})
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 1
    [error] = [line for line in run.stderr.splitlines() if "error" in line]
    assert "free" in error and "remain to be fetched" in error and "point model.storage at a larger one" in error
    needed, _ = error.split("(", 2)[2].split(" bytes)", 1)
    assert int(needed) == free + (1 << 40) + 2
    assert hub.served("GET", "/meta-llama/Tiny/resolve/") == [] and not (tmp_path / "m").exists()


def test_the_nodes_boot_volume_is_refused_before_the_hub_is_asked_unless_allowed(tmp_path: Path) -> None:
    # The chart mounts a file of the node's root filesystem as the probe: the same device as the target means the
    # weights would land on the boot volume (the NVMe RAID not mounted). The check needs no listing, so a refused
    # start (which LeaderWorkerSet repeats with every group it recreates) never calls the Hub's model_info.
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=repo_files())})
    probe = tmp_path / "node-root"
    probe.write_text("node")
    with HubServer(hub) as url:
        refused = fetch(url, tmp_path, "--boot-volume-probe", str(probe))
        assert hub.requests == []
        elsewhere = fetch(url, tmp_path, "--boot-volume-probe", "/proc/version")  # another filesystem
        assert elsewhere.returncode == 0, elsewhere.stderr
        (tmp_path / "m" / ".helm-rdma-download.json").unlink()
        (tmp_path / "m" / BIG).unlink()
        allowed = fetch(url, tmp_path, "--boot-volume-probe", str(probe), "--allow-boot-volume")
    assert refused.returncode == 1
    [error] = [line for line in refused.stderr.splitlines() if "error" in line]
    assert "is on the node's boot volume" in error and "free" in error
    assert "model.storage.allowBootVolume=true" in error
    assert allowed.returncode == 0, allowed.stderr


def test_only_the_shards_the_index_names_are_fetched(tmp_path: Path) -> None:
    # vLLM's default loader keeps only the *.safetensors the index's weight_map names (vllm-project/vllm
    # vllm/model_executor/model_loader/weight_utils.py, filter_duplicate_safetensors_files: "For models like
    # Mistral-7B-v0.3, there are both sharded safetensors files and a consolidated safetensors file"), so the
    # Mistral-format consolidated.safetensors beside the HF shards is not fetched.
    files = {**repo_files(), "consolidated.safetensors": os.urandom(3 * MB), "params.json": b"{}"}
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)})
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 0, run.stderr
    assert gets(hub, "consolidated.safetensors") == [] and not (tmp_path / "m" / "consolidated.safetensors").exists()
    assert (tmp_path / "m" / BIG).read_bytes() == files[BIG]


def test_an_index_naming_a_shard_the_repository_lacks_fails_before_fetching(tmp_path: Path) -> None:
    files = repo_files()
    index = json.loads(files["model.safetensors.index.json"])
    index["weight_map"]["lm_head.weight"] = "model-00003-of-00003.safetensors"
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    hub = Hub(repos={"meta-llama/Tiny": Repo(files=files)})
    with HubServer(hub) as url:
        run = fetch(url, tmp_path)
    assert run.returncode == 1
    assert "names model-00003-of-00003.safetensors, which the repository does not have" in run.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(("sets", "probe", "allow"), [
    ((), True, False),
    (("model.storage.allowBootVolume=true",), True, True),
    (("model.storage.type=pvc", "model.storage.claimName=models"), False, False),
    (("model.storage.type=emptyDir",), False, False),
])
def test_hostpath_downloads_check_the_nodes_boot_volume_unless_allowed(sets: tuple[str, ...], probe: bool,
                                                                       allow: bool) -> None:
    # The probe is the node's /etc/hostname, a file of its root filesystem (oracle-quickstart/oci-hpc-oke
    # files/oke-nvme-raid.sh moves only /var/lib/kubelet, /var/lib/containers and /var/log/pods to the RAID): a
    # hostPath model directory on the same device is on the boot volume. A claim never is; an emptyDir is the
    # kubelet's directory by definition.
    from .rendering import render, serving_pod_specs

    for spec in serving_pod_specs(render(*sets)):
        init = {c["name"]: c for c in spec["initContainers"]}["download-model"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["name"]: m for m in init["volumeMounts"]}
        assert ("--boot-volume-probe" in init["args"]) is probe
        assert ("--allow-boot-volume" in init["args"]) is allow
        assert ("node-root-probe" in volumes) is probe and ("node-root-probe" in mounts) is probe
        if probe:
            assert volumes["node-root-probe"]["hostPath"] == {"path": "/etc/hostname", "type": "File"}
            assert init["args"][init["args"].index("--boot-volume-probe") + 1] == mounts["node-root-probe"]["mountPath"]
            assert mounts["node-root-probe"]["readOnly"] is True
