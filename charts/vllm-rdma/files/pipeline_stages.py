"""helm-rdma: which shards of a sharded safetensors checkpoint one node's pipeline stages load (used by
fetch_model.py in the pods, and by the planner, which imports it: the one home of these rules).

What vLLM does, read in its source (vllm-project/vllm, default_loader.py at commit 00b5ad07; the chart's default image
is v0.33.0, whose tag could not be checked out beside it: recheck these lines when image.tag moves):
- The default loader takes the *.safetensors it finds in the model directory (glob) and keeps those the index's
  weight_map names (model_executor/model_loader/default_loader.py, DefaultModelLoader._prepare_weights:
  glob.glob(os.path.join(hf_folder, pattern)) then filter_duplicate_safetensors_files): a shard that is not on disk is
  simply not read, and nothing asks for it.
- A rank builds only its stage's layers; the others are PPMissingLayer, whose tensors the model's load_weights skips
  (model_executor/models/utils.py, make_layers and is_pp_missing_parameter). The first stage holds the embeddings, the
  last the final norm and lm_head; with tied embeddings the last stage also builds embed_tokens for its head
  (model_executor/models/llama.py, LlamaModel.__init__: is_first_rank or (tie_word_embeddings and is_last_rank)).
- Which layers a stage runs: distributed/utils.py, get_pp_indices: VLLM_PP_LAYER_PARTITION (comma-separated layer
  counts, one per stage) when set, else layers // PP each, the remainder spread one each over the stages before the
  last (partitions[-i] += 1 for i in 2..remainder+1).
- After loading, DefaultModelLoader.load_weights checks that every parameter of the rank was loaded ("Following
  weights were not initialized from checkpoint", track_weights_loading): by default only when the model is not
  quantized (model_config.quantization is None); model_loader_extra_config {"enable_weights_track": true} turns it on
  for any model (DefaultModelLoader.__init__ allows that key). Without that check a missing shard would go unnoticed
  in a quantized model, so a quantized checkpoint without it is fetched whole.
- Ranks: TP is innermost (rank r runs stage r // TP), and with the native backend node k holds ranks k*G .. k*G+G-1
  (vllm serve --node-rank). With Ray, the executor ranks the workers of the placement group (v1/executor/ray_utils.py)
  driver's node first, then by node IP (v1/executor/ray_executor.py, sort_by_driver_then_worker_ip): with two nodes
  the leader runs the first stage and the other node the rest; beyond two, the order of the others follows the pods'
  IPs, which are known only once the pods have started.

Standard library only (the pods run it with the vLLM image's Python).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYER = re.compile(r"^model\.layers\.(\d+)\.")
FIRST_STAGE = ("model.embed_tokens.",)
LAST_STAGE = ("model.norm.", "lm_head.")
TIED_TO_HEAD = ("model.embed_tokens.",)
HEADER_LIMIT = 100 * 1024 * 1024  # the safetensors format caps its header at 100 MB


class StageError(Exception):
    """Settings that name no stage split: the message says which and the fix."""


@dataclass(frozen=True)
class Layout:
    """How a group runs the model: TP x PP over its nodes of G GPUs, and the layer partition if the user set one."""

    tensor_parallel_size: int
    pipeline_parallel_size: int
    gpus_per_node: int
    nodes: int
    partition: str | None = None  # VLLM_PP_LAYER_PARTITION

    def node_stages(self, node_rank: int) -> tuple[int, ...]:
        """The stages node ``node_rank`` runs: its ranks are k*G .. k*G+G-1, rank r runs stage r // TP."""
        g, tp = self.gpus_per_node, self.tensor_parallel_size
        if tp * self.pipeline_parallel_size != g * self.nodes:
            raise StageError(f"TP {tp} x PP {self.pipeline_parallel_size} is not {self.nodes} nodes x {g} GPUs")
        if not 0 <= node_rank < self.nodes:
            raise StageError(f"node rank {node_rank} is not one of 0..{self.nodes - 1}")
        return tuple(sorted({r // tp for r in range(node_rank * g, node_rank * g + g)}))


def whole_reason(*, backend: str, nodes: int, storage: str, speculative: bool = False) -> str | None:
    """Why every node needs the whole checkpoint whatever the model (None when the stage split applies)."""
    if speculative:
        return ("speculative decoding (--speculative-config in vllm.extraArgs): a draft model may need the target's "
                "embeddings on every stage (models such as qwen2.py build embed_tokens beyond the first stage when "
                "spec_decode_needs_target_embed)")
    if storage == "pvc":
        return "pvc storage: one claim holds the model for every node, so it is fetched whole, once"
    if backend == "ray" and nodes > 2:
        return (f"Ray with {nodes} nodes: vLLM ranks the nodes after the leader by their IPs once Ray has started "
                "(v1/executor/ray_executor.py), so which stage a node runs is unknown before")
    return None


def quantized(config: dict[str, Any]) -> bool:
    """Whether vLLM loads the checkpoint as quantized: config.json has a quantization_config."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    return bool(config.get("quantization_config") or text.get("quantization_config"))


def tracking_reason(*, config: dict[str, Any], loader_config: dict[str, Any], quantize_flag: bool) -> str | None:
    """Why vLLM would not notice a missing tensor (None when it checks every parameter of its stage)."""
    track = loader_config.get("enable_weights_track")
    if track is False:
        return ('--model-loader-extra-config sets "enable_weights_track": false, so vLLM would not notice a missing '
                "tensor")
    if track is not True and (quantized(config) or quantize_flag):
        return ('a quantized model: vLLM checks that every weight was loaded only with --model-loader-extra-config '
                '\'{"enable_weights_track": true}\' (vllm.extraArgs)')
    return None


def layer_count(config: dict[str, Any]) -> int | None:
    for where in (config, config.get("text_config")):
        if isinstance(where, dict) and isinstance(where.get("num_hidden_layers"), int):
            return int(where["num_hidden_layers"])
    return None


def tied(config: dict[str, Any]) -> bool:
    """tie_word_embeddings, taken as true when config.json does not say (transformers' PretrainedConfig default)."""
    for where in (config, config.get("text_config")):
        if isinstance(where, dict) and "tie_word_embeddings" in where:
            return bool(where["tie_word_embeddings"])
    return True


def stage_ranges(layers: int, pp: int, partition: str | None) -> list[tuple[int, int]]:
    """[start, end) of every stage's layers, as vLLM's get_pp_indices (distributed/utils.py) computes them."""
    if partition is not None:
        try:
            counts = [int(n) for n in partition.split(",")]
        except ValueError as exc:
            raise StageError(f"VLLM_PP_LAYER_PARTITION={partition} is not comma-separated layer counts") from exc
        if len(counts) != pp or sum(counts) != layers:
            raise StageError(f"VLLM_PP_LAYER_PARTITION={partition} is not {pp} counts adding up to {layers} layers")
    else:
        counts = [layers // pp] * pp
        for i in range(2, layers % pp + 2):
            counts[-i] += 1
    starts = [sum(counts[:i]) for i in range(pp)]
    return [(s, s + c) for s, c in zip(starts, counts, strict=True)]


def needed_tensors(weight_map: dict[str, str], *, layers: int, stages: tuple[int, ...], pp: int,
                   partition: str | None, tie: bool) -> set[str]:
    """The tensors of ``weight_map`` the ``stages`` load: their layers', the embeddings on the first stage (and on
    the last with tied embeddings), the norm and head on the last; every tensor of no layer of the model (vision
    towers, layers past num_hidden_layers such as MTP heads) on every stage, as vLLM would read them whole."""
    ranges = stage_ranges(layers, pp, partition)
    mine = [ranges[s] for s in stages]
    first, last = 0 in stages, pp - 1 in stages
    wanted = set()
    for name in weight_map:
        match = LAYER.match(name)
        if match and int(match.group(1)) < layers:
            keep = any(start <= int(match.group(1)) < end for start, end in mine)
        elif name.startswith(FIRST_STAGE):
            keep = first or (last and tie and name.startswith(TIED_TO_HEAD))
        elif name.startswith(LAST_STAGE):
            keep = last
        else:
            keep = True
        if keep:
            wanted.add(name)
    return wanted


def tensors_in(path: Path) -> set[str]:
    """The tensor names in a safetensors file's header (8 bytes little-endian length, then that much JSON).

    Raises:
        StageError: The file is not a safetensors file.
    """
    with path.open("rb") as f:
        size = int.from_bytes(f.read(8), "little")
        if not 0 < size <= HEADER_LIMIT:
            raise StageError(f"{path.name} is not a safetensors file (header of {size} bytes)")
        try:
            header = json.loads(f.read(size))
        except ValueError as exc:
            raise StageError(f"{path.name} is not a safetensors file ({exc})") from exc
    if not isinstance(header, dict):
        raise StageError(f"{path.name} is not a safetensors file (its header is not an object)")
    return {name for name in header if name != "__metadata__"}
