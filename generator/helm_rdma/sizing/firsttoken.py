"""Time to first token on paper: the bytes each node downloads and reads, and how long they take at stated rates.

The ways compared, per node (with the chart's default hostPath storage every node fetches its own copy):
- helm-rdma: what the chart's download fetches onto the local NVMe RAID, then vLLM reads from it: the shards of the
  pipeline stages the node runs and the small files (configs, tokenizer; never original/), or, where that split does
  not apply, every shard (the reason is given: pvc storage, Ray beyond 2 nodes, a quantized model whose loaded
  weights vLLM does not check; charts/vllm-rdma/files/pipeline_stages.py holds these rules, from vLLM's source);
- whole checkpoint (shown when the split applies): every shard on every node, as the chart fetched before;
- the seed guide's: the whole repository (original/'s consolidated checkpoints included) onto the boot volume, then
  vLLM reads the weights from there.
A download runs at the slower of the network and the disk it writes to. vLLM reads every shard in the model
directory on every node (its default safetensors loader opens each shard on every rank and drops the tensors of
other pipeline stages after reading them: ``safetensors_weights_iterator``, vllm/model_executor/model_loader/
weight_utils.py; a node's ranks share the page cache), so a node holding only its stages' shards reads only those.
A node's share of the weights is its stages' share of the layers (vLLM's get_pp_indices); the embeddings and the
head are not counted apart, so the figure is about right for models whose layers hold most of the weights. Not
estimated: the engine's own start (NCCL, CUDA graphs, compilation), which the start-up budget covers with its fixed
part.

Rates: the network and NVMe rates are stated assumptions (``--network-gbs``, ``--nvme-gbs``; measure yours: the
download logs its rate, and `make bench` measures the download path); the boot volume's is OCI's Balanced
performance level, the default for boot volumes: 480 KB/s per GB of volume, at most 480 MB/s per volume
(docs.oracle.com, Block Volume "Balanced Performance"), for a volume large enough to hold the repository.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from helm_rdma.sizing.hubmodel import pipeline_stages_script
from helm_rdma.sizing.modelspec import ModelSpec

GB = 1000**3
DEFAULT_NETWORK_GBS = 1.0  # one node's download from the Hub or object storage: an assumption, state yours
DEFAULT_NVME_GBS = 2.0  # the RAID of a GPU shape's local NVMe drives, sequential: a conservative assumption
BOOT_MB_PER_S_PER_GB = 0.48  # OCI Balanced: 480 KB/s per GB
BOOT_MAX_MB_PER_S = 480.0


class Rates(NamedTuple):
    """The rates an estimate is made at, in GB/s (10^9 bytes)."""

    network_gbs: float = DEFAULT_NETWORK_GBS
    nvme_gbs: float = DEFAULT_NVME_GBS


@dataclass(frozen=True)
class Way:
    """One way from nothing to loaded weights on one node."""

    name: str
    storage: str
    download_bytes: int
    read_bytes: int
    download_seconds: float
    read_seconds: float
    note: str = ""

    @property
    def seconds(self) -> float:
        return self.download_seconds + self.read_seconds


@dataclass(frozen=True)
class Group:
    """How one group runs the model, as the chart's download reads it to choose each node's shards.

    Attributes:
        backend: distributed.backend (native or ray).
        storage: model.storage.type (hostPath, emptyDir, pvc).
        partition: VLLM_PP_LAYER_PARTITION from vllm.extraEnv, if set.
        loader_config: vLLM's --model-loader-extra-config from vllm.extraArgs, if set.
        quantize_flag: vllm.extraArgs quantizes the weights (--quantization).
        speculative: vllm.extraArgs turns speculative decoding on (--speculative-config).
    """

    nodes: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpus_per_node: int
    backend: str = "native"
    storage: str = "hostPath"
    partition: str | None = None
    loader_config: dict[str, Any] = field(default_factory=dict)
    quantize_flag: bool = False
    speculative: bool = False


@dataclass(frozen=True)
class Share:
    """The largest share of the weights one node fetches and reads: 1.0 with the reason when it is every shard."""

    fraction: float
    stages: str = ""
    why_whole: str = ""


QUANTIZED_NOT = ("bf16", "fp16", "fp32")


def node_share(model: ModelSpec, group: Group | None) -> Share:
    """The largest share of the weights a node of ``group`` holds with the stage split, or why every node holds all
    of them (the rules of the chart's download, charts/vllm-rdma/files/pipeline_stages.py)."""
    if group is None:
        return Share(fraction=1.0)
    if group.nodes == 1:  # the chart passes no stage arguments to a one-node group's download
        return Share(fraction=1.0, why_whole="one node runs every stage")
    ps = pipeline_stages_script()
    why = ps.whole_reason(backend=group.backend, nodes=group.nodes, storage=group.storage,
                          speculative=group.speculative)
    config = {} if model.dtype in QUANTIZED_NOT else {"quantization_config": {"quant_method": model.dtype}}
    why = why or ps.tracking_reason(config=config, loader_config=group.loader_config,
                                    quantize_flag=group.quantize_flag)
    if why:
        return Share(fraction=1.0, why_whole=why)
    if not model.layers:
        return Share(fraction=1.0, why_whole="the model's layers are not known here (the download reads them)")
    layout = ps.Layout(tensor_parallel_size=group.tensor_parallel_size,
                       pipeline_parallel_size=group.pipeline_parallel_size, gpus_per_node=group.gpus_per_node,
                       nodes=group.nodes, partition=group.partition)
    try:
        ranges = ps.stage_ranges(model.layers, group.pipeline_parallel_size, group.partition)
        per_node = [layout.node_stages(k) for k in range(group.nodes)]
    except ps.StageError as exc:
        return Share(fraction=1.0, why_whole=str(exc))
    layers = [sum(ranges[s][1] - ranges[s][0] for s in stages) for stages in per_node]
    if max(layers) >= model.layers:
        return Share(fraction=1.0, why_whole="every node runs every pipeline stage")
    # The share of the layers: the tensors outside them (embeddings, norm, head), fetched on every stage, and the
    # shards straddling two stages are a few GB per node more, not counted here (the model's size is all it knows).
    return Share(fraction=max(layers) / model.layers,
                 stages=f"{max(layers)} of {model.layers} layers on the busiest node")


@dataclass(frozen=True)
class FirstToken:
    """The estimate: our way, the whole checkpoint where our way is the stage split, and the guide's when the whole
    repository's size is known."""

    rates: Rates
    ways: tuple[Way, ...]
    basis: str
    share: Share = Share(fraction=1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"rates": self.rates._asdict(), "basis": self.basis, "stage_split": asdict(self.share),
                "ways": [{**asdict(w), "seconds": round(w.seconds, 1),
                          "download_seconds": round(w.download_seconds, 1),
                          "read_seconds": round(w.read_seconds, 1)} for w in self.ways]}


def boot_volume_gbs(size_gb: float) -> float:
    """Throughput of an OCI boot volume of ``size_gb`` at the Balanced level, in GB/s."""
    return min(size_gb * BOOT_MB_PER_S_PER_GB, BOOT_MAX_MB_PER_S) / 1000


def first_token(model: ModelSpec, *, rates: Rates, boot_volume_gb: int, group: Group | None = None) -> FirstToken:
    """Bytes and seconds to download and read ``model``'s weights on one node: our way (the node's pipeline stages
    when ``group`` allows the split), the whole checkpoint, and the guide's."""
    weights = model.weight_bytes
    download = model.download_bytes if model.download_bytes is not None else weights
    ours_rate = min(rates.network_gbs, rates.nvme_gbs)
    share = node_share(model, group)
    whole = Way(name="helm-rdma" if share.fraction == 1.0 else "whole checkpoint",
                storage="local NVMe RAID, " + ("only what vLLM loads" if share.fraction == 1.0 else "every shard"),
                download_bytes=download, read_bytes=weights,
                download_seconds=download / (ours_rate * GB), read_seconds=weights / (rates.nvme_gbs * GB),
                note="" if share.fraction < 1.0 else share.why_whole)
    ways = [whole]
    if share.fraction < 1.0:
        mine = int(weights * share.fraction)
        split = max(download - weights, 0) + mine
        ways.insert(0, Way(name="helm-rdma", storage="local NVMe RAID, the node's pipeline stages",
                           download_bytes=split, read_bytes=mine, download_seconds=split / (ours_rate * GB),
                           read_seconds=mine / (rates.nvme_gbs * GB), note=share.stages))
    if model.repo_bytes is not None:
        size = max(boot_volume_gb, -(-model.repo_bytes // GB) + 1)
        boot = boot_volume_gbs(size)
        note = (f"the default {boot_volume_gb} GB boot volume cannot hold it: a {size} GB one" if size > boot_volume_gb
                else f"a {size} GB boot volume")
        ways.append(Way(name="whole repository", storage="boot volume (OCI Balanced)",
                        download_bytes=model.repo_bytes, read_bytes=weights,
                        download_seconds=model.repo_bytes / (min(rates.network_gbs, boot) * GB),
                        read_seconds=weights / (boot * GB), note=f"{note} at {boot:.2f} GB/s"))
    if model.download_bytes is not None:
        basis = "download: the files the chart fetches, from the Hub's file list"
    elif model.from_hub:
        basis = "download: the weights alone (the files besides them are small; the Hub's file list was not read)"
    else:
        basis = "download: the catalog's weights (the files besides them are small)"
    if model.repo_bytes is None:
        basis += ("; whole repository: its size is unknown (" + ("the Hub's file list was not read)" if model.from_hub
                                                                else "the catalog does not give it)"))
    return FirstToken(rates=rates, ways=tuple(ways), basis=basis, share=share)


def duration(seconds: float) -> str:
    """``1h07m``, ``13m20s`` or ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
