"""Time to first token on paper: the bytes each node downloads and reads, and how long they take at stated rates.

Two ways are compared, per node (with the chart's default hostPath storage every node fetches its own copy):
- ours: the files the chart's download fetches (safetensors, configs, tokenizer; never original/) onto the local NVMe
  RAID, then vLLM reads the weights from it;
- the seed guide's: the whole repository (original/'s consolidated checkpoints included) onto the boot volume, then
  vLLM reads the weights from there.
A download runs at the slower of the network and the disk it writes to. vLLM reads every weight on every node: its
default safetensors loader opens every shard on every rank and drops the tensors of other pipeline stages only after
reading them (``safetensors_weights_iterator``, vllm/model_executor/model_loader/weight_utils.py), and a node's ranks
share the page cache. Not estimated: the engine's own start (NCCL, CUDA graphs, compilation), which the start-up
budget covers with its fixed part.

Rates: the network and NVMe rates are stated assumptions (``--network-gbs``, ``--nvme-gbs``; measure yours: the
download logs its rate, and `make bench` measures the download path); the boot volume's is OCI's Balanced
performance level, the default for boot volumes: 480 KB/s per GB of volume, at most 480 MB/s per volume
(docs.oracle.com, Block Volume "Balanced Performance"), for a volume large enough to hold the repository.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

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
class FirstToken:
    """The estimate: our way, and the guide's when the whole repository's size is known."""

    rates: Rates
    ways: tuple[Way, ...]
    basis: str

    def to_dict(self) -> dict[str, Any]:
        return {"rates": self.rates._asdict(), "basis": self.basis,
                "ways": [{**asdict(w), "seconds": round(w.seconds, 1),
                          "download_seconds": round(w.download_seconds, 1),
                          "read_seconds": round(w.read_seconds, 1)} for w in self.ways]}


def boot_volume_gbs(size_gb: float) -> float:
    """Throughput of an OCI boot volume of ``size_gb`` at the Balanced level, in GB/s."""
    return min(size_gb * BOOT_MB_PER_S_PER_GB, BOOT_MAX_MB_PER_S) / 1000


def first_token(model: ModelSpec, *, rates: Rates, boot_volume_gb: int) -> FirstToken:
    """Bytes and seconds to download and read ``model``'s weights on one node, our way and the guide's."""
    weights = model.weight_bytes
    download = model.download_bytes if model.download_bytes is not None else weights
    ours_rate = min(rates.network_gbs, rates.nvme_gbs)
    ways = [Way(name="helm-rdma", storage="local NVMe RAID, only what vLLM loads", download_bytes=download,
                read_bytes=weights, download_seconds=download / (ours_rate * GB),
                read_seconds=weights / (rates.nvme_gbs * GB))]
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
    return FirstToken(rates=rates, ways=tuple(ways), basis=basis)


def duration(seconds: float) -> str:
    """``1h07m``, ``13m20s`` or ``42s``."""
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
