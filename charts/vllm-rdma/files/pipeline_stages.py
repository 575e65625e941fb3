"""helm-rdma: which shards of a sharded safetensors checkpoint one node's pipeline stages load (used by
fetch_model.py in the pods, and by the planner, which imports it: the one home of these rules).

What vLLM does, read in its source at v0.33.0, the chart's default image.tag (paths under vllm/ of the vllm==0.33.0
wheel; recheck these lines when image.tag moves):
- The default loader globs the *.safetensors of the model directory (model_executor/model_loader/default_loader.py:
  228-234) and passes them through filter_duplicate_safetensors_files (default_loader.py:250-254), which raises
  FileNotFoundError when a file the directory's model.safetensors.index.json names is not on disk and drops the files
  it does not name (model_executor/model_loader/weight_utils.py:590-616). So a node that holds only its stages'
  shards must have an index naming only those: fetch_model.py writes that node-local index and keeps the Hub's beside
  its download bookkeeping.
- A rank builds only its stage's layers; the others are PPMissingLayer, whose tensors the model's load_weights skips
  (model_executor/models/utils.py, make_layers and is_pp_missing_parameter). Which modules outside the layers a stage
  builds depends on the model: llama.py builds the embeddings on the first stage and the norm and head on the last,
  but qwen3_moe.py:468-479 and 580-587 (and mixtral.py, gpt_oss.py, gemma3.py) build them on every stage. So every
  tensor outside the decoder layers is fetched on every stage: one rule that holds for every architecture, for a few
  GB per node.
- Layers past num_hidden_layers (DeepSeek's multi-token-prediction layer) are loaded by no stage unless speculative
  decoding is on (deepseek_v2.py skips them through get_spec_layer_idx_from_weight_name, models/utils.py); speculative
  decoding fetches the whole checkpoint, so the split fetches them nowhere.
- Which layers a stage runs: distributed/utils.py, get_pp_indices: VLLM_PP_LAYER_PARTITION (comma-separated layer
  counts, one per stage) when set, else layers // PP each, the remainder spread one each over the stages before the
  last (partitions[-i] += 1 for i in 2..remainder+1).
- After loading, DefaultModelLoader.load_weights checks the rank's parameters (track_weights_loading, "Following
  weights were not initialized from checkpoint", default_loader.py:510-572): by default only without quantization,
  and then every module whose quant_method has process_weights_after_loading (linear, embedding, fused-MoE experts:
  every quant method has one) is exempt as a whole (default_loader.py:535-567), so for an unquantized model vLLM
  checks little beyond the norms: a missing linear, expert or head tensor would load as uninitialised memory without
  an error. The guard of record is the download's own check (fetch_model.py, check_tensors: every tensor the stages
  need is in a fetched shard's header). vLLM's check is a second guard, independent of this module's rank-to-stage
  mapping: for an unquantized model it still catches a wrong layer range through the layers' norms; for a quantized
  model it runs only with --model-loader-extra-config '{"enable_weights_track": true}', and then checks every
  parameter (the strictest mode). A quantized model without it has no second guard at all, so it is fetched whole:
  a mistake in the mapping would otherwise produce garbage with no error anywhere.
- Ranks: TP is innermost (rank r runs stage r // TP), and with the native backend node k holds ranks k*G .. k*G+G-1
  (vllm serve --node-rank). With Ray, v1/executor/ray_executor_v2.py:315 ranks the placement group's bundles with
  get_bundles_sorted_by_node (v1/executor/ray_utils.py:141-196): the driver's node first, then by Ray node id, which
  is random per start. With two nodes the leader runs the first stage and the other node the rest; beyond two, the
  order of the others is unknown before Ray starts.

Standard library only (the pods run it with the vLLM image's Python).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LAYER = re.compile(r"^model\.layers\.(\d+)\.")
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
                "embeddings and multi-token-prediction layers on any stage (spec_decode_needs_target_embed, "
                "models/utils.py)")
    if storage == "pvc":
        return "pvc storage: one claim holds the model for every node, so it is fetched whole, once"
    if backend == "ray" and nodes > 2:
        return (f"Ray with {nodes} nodes: vLLM ranks the nodes after the leader by their Ray node ids, random per "
                "start (v1/executor/ray_utils.py, get_bundles_sorted_by_node), so which stage a node runs is unknown "
                "before")
    return None


def quantized(config: dict[str, Any], *, hf_quant_config: bool = False) -> bool:
    """Whether vLLM loads the checkpoint as quantized: config.json has a quantization_config, or the repository has
    an hf_quant_config.json (ModelOpt's, which vLLM reads as one: transformers_utils/config.py)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    return bool(config.get("quantization_config") or text.get("quantization_config") or hf_quant_config)


def tracking_reason(*, config: dict[str, Any], loader_config: dict[str, Any], quantize_flag: bool,
                    hf_quant_config: bool = False) -> str | None:
    """Why vLLM would check nothing of what a node loaded (None when it runs its weight check; see the module's
    docstring for what that check covers and why the split still wants it)."""
    track = loader_config.get("enable_weights_track")
    if track is False:
        return ('--model-loader-extra-config sets "enable_weights_track": false, so vLLM would check nothing of what '
                "a node loaded")
    if track is not True and (quantized(config, hf_quant_config=hf_quant_config) or quantize_flag):
        return ('a quantized model: vLLM checks its loaded weights only with --model-loader-extra-config '
                '\'{"enable_weights_track": true}\' (vllm.extraArgs)')
    return None


def layer_count(config: dict[str, Any]) -> int | None:
    for where in (config, config.get("text_config")):
        if isinstance(where, dict) and isinstance(where.get("num_hidden_layers"), int):
            return int(where["num_hidden_layers"])
    return None


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
                   partition: str | None) -> set[str]:
    """The tensors of ``weight_map`` the ``stages`` load: their decoder layers', and every tensor outside the layers
    (embeddings, final norm, head, vision towers) on every stage, as many models build those on every stage; layers
    past num_hidden_layers (multi-token prediction) on none, as only speculative decoding loads them."""
    ranges = stage_ranges(layers, pp, partition)
    mine = [ranges[s] for s in stages]
    wanted = set()
    for name in weight_map:
        match = LAYER.match(name)
        if match is None:
            wanted.add(name)
        elif any(start <= int(match.group(1)) < end for start, end in mine):
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
