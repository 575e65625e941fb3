"""Each node fetches only its pipeline stages' shards: the download container's command, arguments and environment as
`helm template` renders them, run against the Hub stand-in (tests/hub_standin.py) with a small Llama-shaped
checkpoint in real safetensors shards (tests/checkpoint.py), one node at a time.

The rules come from vLLM v0.33.0's source (charts/vllm-rdma/files/pipeline_stages.py cites them): the default loader
globs the shards on disk and refuses an index naming one that is not there
(model_executor/model_loader/weight_utils.py:590-616), so the model directory gets a node-local index; a rank skips
the tensors of other stages (models/utils.py, is_pp_missing_parameter); many models build the embeddings, the final
norm and the head on every stage (qwen3_moe.py:468-479, 580-587), so every tensor outside the layers goes to every
stage. vLLM's own weight check (default_loader.py:510-572) exempts the linear, embedding and expert weights of an
unquantized model, so the download's check of the fetched shards' headers is the guard of record. Stages split the
layers as distributed/utils.py get_pp_indices does, or as VLLM_PP_LAYER_PARTITION says. A node runs ranks
k*G .. k*G+G-1 of stages r // TP (vllm serve --node-rank); with Ray beyond two nodes its rank follows Ray's node ids
(v1/executor/ray_utils.py:141-196, get_bundles_sorted_by_node), random per start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helm_rdma.datafiles import chart_dir
from helm_rdma.sizing.hubmodel import pipeline_stages_script

from .checkpoint import INDEX, checkpoint, layer_prefixes, shards_holding
from .hub_standin import Hub, HubServer, Repo
from .rendering import render, serving_pod_specs

REPO = "acme/tiny-llama"
FILES = chart_dir() / "files"
MARKER = ".helm-rdma-download.json"
PARTIAL = ".helm-rdma-partial"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SMALL = {"config.json", "generation_config.json", INDEX, "tokenizer.json", "tokenizer_config.json"}


def download_containers(*sets: str) -> dict[str, dict[str, Any]]:
    """The model's download container of the leader's and the worker's pod, as rendered (helm 4)."""
    documents = render(f"model.name={REPO}", f"model.revision={COMMIT}", *sets)
    found: dict[str, dict[str, Any]] = {}
    for spec in serving_pod_specs(documents):
        for container in spec.get("initContainers", []):
            if container["name"] == "download-model":
                role = "leader" if any(a == "leader" for a in container["args"]) else "worker"
                found.setdefault(role, container)
    assert set(found) == {"leader", "worker"}, found.keys()
    return found


def run_as_pod(container: dict[str, Any], *, url: str, dest: Path, pod: str, worker_index: int | None,
               tmp: Path) -> subprocess.CompletedProcess[str]:
    """The container's command with its rendered arguments and environment, the model directory and the node's
    boot-volume probe, termination log and hold swapped for the test's; the downward API and the LeaderWorkerSet
    controller's variables filled as the kubelet and the controller fill them."""
    assert container["command"] == ["python3", "/opt/helm-rdma/fetch_model.py"]
    assert {"name": "scripts", "mountPath": "/opt/helm-rdma", "readOnly": True} in container["volumeMounts"]
    args = list(container["args"])
    swap = {"--dest": str(dest), "--hold-on-failure": "0", "--termination-log": str(tmp / "termination-log"),
            "--progress-seconds": "0.2"}
    for i, arg in enumerate(args[:-1]):
        if arg in swap:
            args[i + 1] = swap[arg]
    if "--boot-volume-probe" in args:
        i = args.index("--boot-volume-probe")
        del args[i:i + 2]
    env = {"PATH": os.environ["PATH"], "HF_ENDPOINT": url, "HF_HUB_DISABLE_TELEMETRY": "1", "HOME": str(tmp),
           **({} if worker_index is None else {"LWS_WORKER_INDEX": str(worker_index)})}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod
    env["HF_HOME"] = str(tmp / "hf-home")
    return subprocess.run([sys.executable, str(FILES / "fetch_model.py"), *args], env=env, capture_output=True,
                          text=True, timeout=120)


def fetched(hub: Hub) -> set[str]:
    """The files the stand-in sent (GET of a resolve URL), and forget them."""
    names = {path.split("/resolve/", 1)[1].split("/", 1)[1] for _, path, _ in hub.served("GET", f"/{REPO}/")}
    hub.requests.clear()
    return names


def weights(files: dict[str, bytes]) -> set[str]:
    return {n for n in files if n.endswith(".safetensors")}


OUTSIDE_LAYERS = ("model.embed_tokens.", "model.norm.", "lm_head.")


def stage_shards(files: dict[str, bytes], layers: range) -> set[str]:
    """The shards a node running ``layers`` needs: theirs, and those of every tensor outside the layers (many models
    build the embeddings, the norm and the head on every stage: vLLM v0.33.0 qwen3_moe.py:468-479 and 580-587)."""
    return shards_holding(files, (*OUTSIDE_LAYERS, *layer_prefixes(layers)))


def assert_vllm_would_load(dest: Path) -> None:
    """vLLM v0.33.0's default loader globs DEST/*.safetensors (model_executor/model_loader/default_loader.py:228-234)
    and passes them through filter_duplicate_safetensors_files (default_loader.py:250-254), which raises
    FileNotFoundError when the index names a file that is not on disk and drops the files it does not name
    (model_executor/model_loader/weight_utils.py:590-616). So: every shard the local index names is on disk, and every
    shard on disk is named (the node reads no shard of another stage)."""
    named = set(json.loads((dest / INDEX).read_text())["weight_map"].values())
    on_disk = {p.name for p in dest.glob("*.safetensors")}
    assert named == on_disk, (named ^ on_disk)


@pytest.mark.parametrize("kind", ["LeaderWorkerSet", "StatefulSet"])
def test_each_node_fetches_only_the_shards_of_its_stage_and_together_they_hold_the_checkpoint(
        tmp_path: Path, kind: str) -> None:
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2", f"workload.kind={kind}")
    got: dict[str, set[str]] = {}
    with HubServer(hub) as url:
        for role, index, pod in (("leader", 0, "r-leader-0"), ("worker", 1, "r-worker-0")):
            run = run_as_pod(pods[role], url=url, dest=tmp_path / role, pod=pod, worker_index=index, tmp=tmp_path)
            assert run.returncode == 0, run.stderr
            got[role] = fetched(hub)
    # TP 8 x PP 2 on two nodes of 8 GPUs: the leader runs layers 0-3, the worker 4-7, both with the embeddings, the
    # norm and the head; the shard holding layer 3's MLP and layer 4 goes to both.
    assert got["leader"] == SMALL | stage_shards(files, range(0, 4))
    assert got["worker"] == SMALL | stage_shards(files, range(4, 8))
    assert weights(files) - got["leader"] and weights(files) - got["worker"]
    assert (got["leader"] | got["worker"]) >= weights(files)
    for role, stage in (("leader", 0), ("worker", 1)):
        marker = json.loads((tmp_path / role / MARKER).read_text())
        assert marker["split"] == {"stages": [stage], "pipeline_parallel_size": 2, "partition": None,
                                   "hub_index": f"{PARTIAL}/{INDEX}.{COMMIT}.hub"}
        assert set(marker["files"]) == got[role]
        assert {p.name for p in (tmp_path / role).glob("*.safetensors")} == weights(files) & got[role]
        assert_vllm_would_load(tmp_path / role)
        # The Hub's index is kept with the download's bookkeeping, as the Hub lists it.
        assert (tmp_path / role / marker["split"]["hub_index"]).read_bytes() == files[INDEX]


def test_a_whole_checkpoint_keeps_the_hubs_index_untouched(tmp_path: Path) -> None:
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2", "model.storage.type=pvc", "model.storage.claimName=models")
    with HubServer(hub) as url:
        run = run_as_pod(pods["leader"], url=url, dest=tmp_path / "l", pod="l", worker_index=0, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "l" / INDEX).read_bytes() == files[INDEX]
    assert_vllm_would_load(tmp_path / "l")


def test_a_node_that_runs_two_stages_fetches_the_shards_of_both(tmp_path: Path) -> None:
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2", "vllm.tensorParallelSize=4", "vllm.pipelineParallelSize=4")
    with HubServer(hub) as url:
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "w", pod="w", worker_index=1, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        # ranks 8-15 at TP 4: stages 2 and 3, layers 4-7
        assert fetched(hub) == SMALL | stage_shards(files, range(4, 8))
    assert_vllm_would_load(tmp_path / "w")
    assert json.loads((tmp_path / "w" / MARKER).read_text())["split"]["stages"] == [2, 3]


def test_a_node_given_other_stages_fetches_only_what_it_lacks_and_then_holds_both(tmp_path: Path) -> None:
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2")
    dest = tmp_path / "node"
    with HubServer(hub) as url:
        assert run_as_pod(pods["leader"], url=url, dest=dest, pod="l", worker_index=0, tmp=tmp_path).returncode == 0
        first = fetched(hub)
        assert_vllm_would_load(dest)
        # The group is recreated with this node as the worker: only the last stage's shards it does not hold yet,
        # and the local index now names both stages' shards.
        run = run_as_pod(pods["worker"], url=url, dest=dest, pod="w", worker_index=1, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert fetched(hub) == stage_shards(files, range(4, 8)) - first
        marker = json.loads((dest / MARKER).read_text())
        assert marker["split"]["stages"] == [0, 1]
        assert set(marker["files"]) == SMALL | weights(files)
        assert_vllm_would_load(dest)
        assert set(json.loads((dest / INDEX).read_text())["weight_map"].values()) == weights(files)
        # Back to the first stage: the marker covers it, the Hub is not asked at all.
        run = run_as_pod(pods["leader"], url=url, dest=dest, pod="l", worker_index=0, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "not contacting the Hub" in run.stderr
        assert hub.requests == []


def test_a_split_download_stopped_before_its_marker_resumes_without_fetching_again(tmp_path: Path) -> None:
    """Killed after the local index was written but before the marker: the next run takes the kept Hub index and the
    shards on disk as they are (sha256 checked) and fetches nothing."""
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2")
    dest = tmp_path / "node"
    with HubServer(hub) as url:
        assert run_as_pod(pods["worker"], url=url, dest=dest, pod="w", worker_index=1, tmp=tmp_path).returncode == 0
        local = (dest / INDEX).read_bytes()
        fetched(hub)
        (dest / MARKER).unlink()
        run = run_as_pod(pods["worker"], url=url, dest=dest, pod="w", worker_index=1, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert fetched(hub) == set()
    assert (dest / INDEX).read_bytes() == local
    assert_vllm_would_load(dest)


def test_a_split_directory_asked_for_the_whole_checkpoint_gets_the_hubs_index_and_every_shard(tmp_path: Path) -> None:
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    dest = tmp_path / "node"
    with HubServer(hub) as url:
        pods = download_containers("nodes=2")
        assert run_as_pod(pods["worker"], url=url, dest=dest, pod="w", worker_index=1, tmp=tmp_path).returncode == 0
        held = fetched(hub)
        # Speculative decoding turned on: the draft may need any stage's tensors.
        pods = download_containers("nodes=2", 'vllm.extraArgs[0]=--speculative-config={"method":"ngram"}')
        run = run_as_pod(pods["worker"], url=url, dest=dest, pod="w", worker_index=1, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert fetched(hub) == {INDEX} | (weights(files) - held)
    assert (dest / INDEX).read_bytes() == files[INDEX]
    assert "split" not in json.loads((dest / MARKER).read_text())
    assert_vllm_would_load(dest)


def test_the_layer_partition_the_user_sets_decides_the_shards(tmp_path: Path) -> None:
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2", "vllm.extraEnv[0].name=VLLM_PP_LAYER_PARTITION",
                               "vllm.extraEnv[0].value=6\\,2")
    with HubServer(hub) as url:
        for role, index, layers in (("leader", 0, range(0, 6)), ("worker", 1, range(6, 8))):
            run = run_as_pod(pods[role], url=url, dest=tmp_path / role, pod=role, worker_index=index, tmp=tmp_path)
            assert run.returncode == 0, run.stderr
            assert fetched(hub) == SMALL | stage_shards(files, layers)
            assert_vllm_would_load(tmp_path / role)
    assert json.loads((tmp_path / "worker" / MARKER).read_text())["split"]["partition"] == "6,2"


@pytest.mark.parametrize("tie", [False, True])
def test_every_stage_fetches_the_embeddings_the_norm_and_the_head(tmp_path: Path, tie: bool) -> None:
    files = checkpoint(layers=8, tie=tie)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2")
    with HubServer(hub) as url:
        for role, index in (("leader", 0), ("worker", 1)):
            run = run_as_pod(pods[role], url=url, dest=tmp_path / role, pod=role, worker_index=index, tmp=tmp_path)
            assert run.returncode == 0, run.stderr
            assert shards_holding(files, OUTSIDE_LAYERS) <= fetched(hub)
            assert_vllm_would_load(tmp_path / role)


def test_layers_past_num_hidden_layers_are_fetched_by_no_stage() -> None:
    """DeepSeek's multi-token-prediction layer (model.layers.61 of 61 layers) is loaded only with speculative
    decoding (deepseek_v2.py skips it through get_spec_layer_idx_from_weight_name), which fetches the whole
    checkpoint: the split fetches it nowhere."""
    ps = pipeline_stages_script()
    weight_map = {"model.embed_tokens.weight": "a", "model.layers.0.mlp.weight": "a", "model.layers.1.mlp.weight": "b",
                  "model.layers.2.eh_proj.weight": "c", "model.norm.weight": "b", "lm_head.weight": "b"}
    got = [ps.needed_tensors(weight_map, layers=2, stages=(s,), pp=2, partition=None) for s in (0, 1)]
    assert got[0] == {"model.embed_tokens.weight", "model.layers.0.mlp.weight", "model.norm.weight", "lm_head.weight"}
    assert got[1] == {"model.embed_tokens.weight", "model.layers.1.mlp.weight", "model.norm.weight", "lm_head.weight"}


@pytest.mark.parametrize(("sets", "why"), [
    (("model.storage.type=pvc", "model.storage.claimName=models"), "pvc storage"),
    (("nodes=3", "vllm.pipelineParallelSize=3", "distributed.backend=ray", "image.tag=v0.17.1",
      "distributed.ray.authTokenSecret.name=ray-token"), "Ray with 3 nodes"),
    (('vllm.extraArgs[0]=--speculative-config={"method":"ngram"}',), "speculative decoding"),
    # vLLM's FlexibleArgumentParser reads "_" as "-" and dotted sub-keys (utils/argparse_utils.py).
    (('vllm.extraArgs[0]=--speculative_config={"method":"ngram"}',), "speculative decoding"),
    (("vllm.extraArgs[0]=--speculative-config.method=ngram",), "speculative decoding"),
])
def test_shared_storage_ray_beyond_two_nodes_and_speculative_decoding_fetch_the_whole_checkpoint(
        tmp_path: Path, sets: tuple[str, ...], why: str) -> None:
    files = checkpoint(layers=9)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers(*sets)
    with HubServer(hub) as url:
        run = run_as_pod(pods["leader"], url=url, dest=tmp_path / "l", pod="l", worker_index=0, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert fetched(hub) == SMALL | weights(files)
    assert f"the whole checkpoint: {why}" in run.stderr
    assert "split" not in json.loads((tmp_path / "l" / MARKER).read_text())


def test_a_quantized_checkpoint_is_fetched_whole_unless_vllm_tracks_its_weights(tmp_path: Path) -> None:
    files = checkpoint(layers=8, quantized=True)
    hub = Hub(repos={REPO: Repo(files=files)})
    with HubServer(hub) as url:
        pods = download_containers("nodes=2")
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "a", pod="w", worker_index=1, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "the whole checkpoint: a quantized model" in run.stderr
        assert fetched(hub) == SMALL | weights(files)
        # With vLLM's check of every loaded weight on (default_loader.py, enable_weights_track), the split applies.
        pods = download_containers("nodes=2",
                                   'vllm.extraArgs[0]=--model-loader-extra-config={"enable_weights_track":true}')
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "b", pod="w", worker_index=1, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert fetched(hub) == SMALL | stage_shards(files, range(4, 8))


def test_a_checkpoint_quantized_by_hf_quant_config_is_fetched_whole(tmp_path: Path) -> None:
    """ModelOpt's hf_quant_config.json makes vLLM load the model as quantized (transformers_utils/config.py)."""
    files = checkpoint(layers=8)
    files["hf_quant_config.json"] = json.dumps({"quantization": {"quant_algo": "FP8"}}).encode()
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2")
    with HubServer(hub) as url:
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "w", pod="w", worker_index=1, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert "the whole checkpoint: a quantized model" in run.stderr
        assert fetched(hub) == SMALL | {"hf_quant_config.json"} | weights(files)


def test_a_leaderworkerset_pod_without_lws_worker_index_fails_and_fetches_nothing(tmp_path: Path) -> None:
    """LeaderWorkerSet sets LWS_WORKER_INDEX from v0.6.0 on (kubernetes-sigs/lws PR #416); with an older controller
    every node would otherwise take rank 0 and fetch the first stage."""
    hub = Hub(repos={REPO: Repo(files=checkpoint(layers=8))})
    pods = download_containers("nodes=2")
    with HubServer(hub) as url:
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "w", pod="w", worker_index=None, tmp=tmp_path)
    assert run.returncode == 1
    assert "LWS_WORKER_INDEX is not set: LeaderWorkerSet v0.6.0 or later sets it; upgrade the LWS controller" \
        in run.stderr
    assert hub.requests == [] and not (tmp_path / "w").exists()


def test_an_index_that_names_a_tensor_in_the_wrong_shard_fails_the_download(tmp_path: Path) -> None:
    files = checkpoint(layers=8)
    index = json.loads(files[INDEX])
    index["weight_map"]["lm_head.weight"] = index["weight_map"]["model.norm.weight"]  # the head is not in there
    files[INDEX] = json.dumps(index).encode()
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2")
    with HubServer(hub) as url:
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "w", pod="w", worker_index=1, tmp=tmp_path)
    assert run.returncode == 1
    assert "lm_head.weight" in run.stderr and "the index does not match the shards" in run.stderr
    assert not (tmp_path / "w" / MARKER).exists()


def test_stages_split_the_layers_as_vllms_get_pp_indices() -> None:
    """distributed/utils.py get_pp_indices: layers // PP each, the remainder one each on the stages before the last,
    from the second-to-last backwards; VLLM_PP_LAYER_PARTITION overrides it and must add up."""
    ps = pipeline_stages_script()
    assert ps.stage_ranges(126, 2, None) == [(0, 63), (63, 126)]
    assert ps.stage_ranges(126, 4, None) == [(0, 31), (31, 63), (63, 95), (95, 126)]
    assert ps.stage_ranges(10, 4, None) == [(0, 2), (2, 5), (5, 8), (8, 10)]
    assert ps.stage_ranges(8, 2, "6,2") == [(0, 6), (6, 8)]
    with pytest.raises(ps.StageError, match="VLLM_PP_LAYER_PARTITION=5,2 is not 2 counts adding up to 8"):
        ps.stage_ranges(8, 2, "5,2")


def test_a_node_runs_the_stages_of_its_ranks_tensor_parallel_innermost() -> None:
    ps = pipeline_stages_script()
    layout = ps.Layout(tensor_parallel_size=8, pipeline_parallel_size=2, gpus_per_node=8, nodes=2)
    assert [layout.node_stages(k) for k in range(2)] == [(0,), (1,)]
    layout = ps.Layout(tensor_parallel_size=4, pipeline_parallel_size=4, gpus_per_node=8, nodes=2)
    assert [layout.node_stages(k) for k in range(2)] == [(0, 1), (2, 3)]
    layout = ps.Layout(tensor_parallel_size=16, pipeline_parallel_size=2, gpus_per_node=8, nodes=4)
    assert [layout.node_stages(k) for k in range(4)] == [(0,), (0,), (1,), (1,)]
    # Ray with two nodes: the driver's (leader's) node is ranked first (v1/executor/ray_utils.py:190-196,
    # get_bundles_sorted_by_node), so the split holds.
    assert ps.whole_reason(backend="ray", nodes=2, storage="hostPath") is None
    assert ps.whole_reason(backend="native", nodes=4, storage="emptyDir") is None


def test_with_the_revision_pinned_to_a_commit_every_stage_fetches_that_commit(tmp_path: Path) -> None:
    """model.revision holds the commit (helm rdma generate pins a Hub model's): the repository moved on since, and
    both stages still fetch the pinned commit's shards, so they fit together."""
    pinned = "0123456789abcdef0123456789abcdef01234567"
    old, new = checkpoint(layers=8, seed=1), checkpoint(layers=8, seed=2)
    hub = Hub(repos={REPO: Repo(files=new, sha="fedcba9876543210fedcba9876543210fedcba98", commits={pinned: old})})
    pods = download_containers("nodes=2")
    assert pods["leader"]["args"][pods["leader"]["args"].index("--revision") + 1] == pinned
    with HubServer(hub) as url:
        for role, index in (("leader", 0), ("worker", 1)):
            run = run_as_pod(pods[role], url=url, dest=tmp_path / role, pod=role, worker_index=index, tmp=tmp_path)
            assert run.returncode == 0, run.stderr
            assert "is not a commit" not in run.stderr
            marker = json.loads((tmp_path / role / MARKER).read_text())
            assert marker["commit"] == pinned
            for name in marker["files"]:
                kept = marker["split"]["hub_index"] if name == INDEX else name  # the Hub's, beside the local one
                assert (tmp_path / role / kept).read_bytes() == old[name]


def test_an_unpinned_revision_is_named_in_the_log(tmp_path: Path) -> None:
    files = checkpoint(layers=8)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=2", "model.revision=main")
    with HubServer(hub) as url:
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "w", pod="w", worker_index=1, tmp=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "the revision main is not a commit" in run.stderr and "pin model.revision to 0123456789abcdef" in run.stderr


def test_a_statefulset_worker_of_the_second_group_reads_its_rank_from_its_ordinal(tmp_path: Path) -> None:
    """Three nodes a group, two groups: worker ordinal 3 is node rank 2 of group 1 (entrypoint.sh, locate:
    ordinal % (nodes - 1) + 1), so it runs the last of three stages."""
    files = checkpoint(layers=9)
    hub = Hub(repos={REPO: Repo(files=files)})
    pods = download_containers("nodes=3", "vllm.pipelineParallelSize=3", "workload.kind=StatefulSet", "replicas=2")
    with HubServer(hub) as url:
        run = run_as_pod(pods["worker"], url=url, dest=tmp_path / "w", pod="llama405b-vllm-rdma-worker-3",
                         worker_index=0, tmp=tmp_path)
        assert run.returncode == 0, run.stderr
        assert fetched(hub) == SMALL | stage_shards(files, range(6, 9))
    assert json.loads((tmp_path / "w" / MARKER).read_text())["split"]["stages"] == [2]


def test_a_split_that_left_the_hubs_whole_index_in_place_is_fetched_again() -> None:
    # A split marker without the Hub's index kept aside (written before the node-local index existed) means the
    # model directory still holds the Hub's whole index, which vLLM 0.33.0 refuses while shards are missing
    # (model_loader/weight_utils.py:590-616, filter_duplicate_safetensors_files): such a marker covers nothing.
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_model", chart_dir() / "files" / "fetch_model.py")
    assert spec is not None and spec.loader is not None
    fm = importlib.util.module_from_spec(spec)
    sys.modules["fetch_model"] = fm  # its dataclasses look their module up
    sys.path.insert(0, str(chart_dir() / "files"))  # it imports pipeline_stages beside it, as the pod does
    try:
        spec.loader.exec_module(fm)
    finally:
        sys.path.remove(str(chart_dir() / "files"))
        del sys.modules["fetch_model"]
    want = fm.Stages(stages=(0,), pp=2)
    old = {"split": {"stages": [0], "pipeline_parallel_size": 2, "partition": None}}
    assert not fm.covers(old, want)
    assert fm.covers({"split": {**old["split"], "hub_index": "model.safetensors.index.json.c.hub"}}, want)
    assert fm.covers({}, want)  # the whole checkpoint covers every stage
