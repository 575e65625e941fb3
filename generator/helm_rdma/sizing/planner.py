"""Sizing: how many nodes of a preset one model needs, at TP = GPUs per node and PP = nodes.

The estimate is deliberately simple and conservative enough to plan hardware:
- weights = parameters x bytes per parameter of the checkpoint dtype;
- KV cache per token, for the whole group = 2 (K and V) x layers x KV heads held x head dim x KV dtype bytes, where a
  tensor-parallel rank holds at least one KV head (vLLM replicates KV heads when TP exceeds them); with multi-head
  latent attention, every TP rank holds the full latent (kv_lora_rank + rope dim) per layer; with hybrid attention
  (Gemma 2 and 3, gpt-oss) a sliding-window layer holds at most its window of tokens of a sequence;
- usable memory per node = GPUs x GPU memory x gpu-memory-utilization, less an activation reserve per GPU;
- with LoRA, the slots vLLM reserves for adapters on every GPU (helm_rdma.sizing.lora says how they are counted).
A group fits when usable memory over all its nodes holds the weights, the LoRA slots and the KV cache of one
full-length sequence. A model whose architecture could not be sized (see modelconfig.py) is planned only with
the nodes given: the group must hold its weights (and LoRA slots), and its KV cache is not sized.

The start-up budget (how long the leader may take to serve, and how long vLLM's front end waits for its engine)
follows the bytes each node reads: a fixed part for what does not depend on the model's size (NCCL and engine
initialisation, CUDA graph capture, compilation), plus the weights one node reads (all of them: vLLM's default
loader reads every tensor on every rank) at a stated, conservative load rate, doubled for headroom.

The download budget (how long the group's barrier waits for its slowest node, after each node's download) follows
the bytes each node fetches at the first-token estimate's stated rates (sizing/firsttoken.py), doubled, plus a fixed
part. vLLM's distributed timeout (``--distributed-timeout-seconds``) is also the timeout of every collective
(vllm/distributed/parallel_state.py, init_distributed_environment passes it to torch's init_process_group), so it
covers only what can still differ between the nodes once the barrier lined them up: the weights each node loads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from helm_rdma.errors import (
    ContextTooLongError,
    ModelTooLargeError,
    ParallelismError,
    TooFewNodesError,
    UnsupportedModelError,
)
from helm_rdma.sizing.firsttoken import DEFAULT_NETWORK_GBS, DEFAULT_NVME_GBS
from helm_rdma.sizing.lora import LoraSlots, lora_bytes_per_gpu, lora_bytes_per_group
from helm_rdma.sizing.modelspec import DTYPE_BYTES, ModelSpec
from helm_rdma.sizing.presets import Preset

GIB = 1024**3
GB = 1000**3
ACTIVATION_RESERVE_GIB_PER_GPU = 1.0
STARTUP_FLOOR_MINUTES = 15  # engine and NCCL init, CUDA graph capture, torch.compile: independent of the model size
LOAD_GB_PER_SECOND = 0.5  # safetensors from local NVMe into GPU memory, per node, with sharding: conservative
STARTUP_HEADROOM = 2
DOWNLOAD_FLOOR_MINUTES = 10  # listing the repository, opening connections, a slow first file: independent of size
VLLM_DISTRIBUTED_TIMEOUT_SECONDS = 600  # vLLM's default: torch's for NCCL (vllm/config/parallel.py)
MAX_NODES = 64
DEFAULT_GPU_MEMORY_UTILIZATION = 0.90


@dataclass(frozen=True)
class Plan:
    """The sizing of one model on one preset."""

    model: str
    preset: str
    nodes: int
    min_nodes: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    max_model_len: int
    gpu_memory_utilization: float
    weight_bytes: int
    kv_bytes_per_token: int
    kv_bytes_per_sequence: int
    usable_bytes_per_node: int
    kv_budget_bytes: int
    full_length_sequences: int
    startup_minutes: int = 0
    startup_reason: str = ""
    download_minutes: int = 0
    download_reason: str = ""
    distributed_timeout_seconds: int = VLLM_DISTRIBUTED_TIMEOUT_SECONDS
    distributed_timeout_reason: str = ""
    kv_note: str = ""
    repo: str = ""
    revision: str = "main"
    lora_bytes_per_gpu: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def startup_budget(weight_bytes: int) -> tuple[int, str]:
    """Minutes the leader may take to load and serve, and how they were reckoned.

    Every node reads all the weights, whatever its pipeline stage: vLLM's default loader opens every safetensors
    file and reads every tensor before the model keeps its own (vllm/model_executor/model_loader/weight_utils.py,
    safetensors_weights_iterator: get_tensor for each key of each file), so more nodes do not shorten it.
    """
    load = weight_bytes / (LOAD_GB_PER_SECOND * GB) / 60
    minutes = STARTUP_FLOOR_MINUTES + int(-(-STARTUP_HEADROOM * load // 1))
    return minutes, (f"{STARTUP_FLOOR_MINUTES} min fixed + {STARTUP_HEADROOM} x {weight_bytes / GB:.0f} GB read per "
                     f"node at {LOAD_GB_PER_SECOND:g} GB/s ({load:.1f} min)")


def download_budget(download_bytes: int) -> tuple[int, str]:
    """Minutes one node's download may take at the first-token estimate's default rates, and how they were
    reckoned: the group's barrier waits this long for its slowest node (a node whose cache is empty can finish a whole
    download after one whose cache is full)."""
    rate = min(DEFAULT_NETWORK_GBS, DEFAULT_NVME_GBS)
    minutes = download_bytes / (rate * GB) / 60
    total = DOWNLOAD_FLOOR_MINUTES + int(-(-STARTUP_HEADROOM * minutes // 1))
    return total, (f"{DOWNLOAD_FLOOR_MINUTES} min fixed + {STARTUP_HEADROOM} x {download_bytes / GB:.0f} GB fetched "
                   f"per node at {rate:g} GB/s ({minutes:.1f} min)")


def distributed_timeout(weight_bytes: int) -> tuple[int, str]:
    """vLLM's distributed timeout in seconds, and why: after the barrier the nodes start vLLM together, and what
    can still set them apart is loading the weights (every node reads all of them, see ``startup_budget``); never
    below vLLM's default."""
    load = weight_bytes / (LOAD_GB_PER_SECOND * GB)
    seconds = max(VLLM_DISTRIBUTED_TIMEOUT_SECONDS, int(-(-load // 1)))
    return seconds, (f"the load-time skew at most: {weight_bytes / GB:.0f} GB read per node at "
                     f"{LOAD_GB_PER_SECOND:g} GB/s ({load / 60:.1f} min), at least vLLM's default "
                     f"{VLLM_DISTRIBUTED_TIMEOUT_SECONDS} s")


def kv_bytes_per_token(model: ModelSpec, *, tp: int) -> int:
    """KV cache bytes one token takes across the whole group (all TP ranks and PP stages)."""
    dtype = DTYPE_BYTES[model.kv_cache_dtype]
    if model.mla_kv_lora_rank is not None and model.mla_rope_dim is not None:
        return model.layers * (model.mla_kv_lora_rank + model.mla_rope_dim) * dtype * tp
    heads_held = max(model.kv_heads, tp)
    return 2 * model.layers * heads_held * model.head_dim * dtype


def kv_bytes_per_sequence(model: ModelSpec, *, tp: int, length: int) -> int:
    """KV cache bytes one sequence of ``length`` tokens takes across the group; sliding-window layers hold at most
    their window."""
    per_token = kv_bytes_per_token(model, tp=tp)
    if not model.sliding_window or not model.sliding_layers:
        return per_token * length
    per_layer = per_token // model.layers
    full = model.layers - model.sliding_layers
    return per_layer * (full * length + model.sliding_layers * min(length, model.sliding_window))


def kv_note(model: ModelSpec) -> str:
    """What the KV figures assume beyond full attention, in words."""
    if model.unsized:
        return f"not sized: {model.unsized}"
    if model.sliding_window and model.sliding_layers:
        return (f"{model.sliding_layers} of {model.layers} layers use a {model.sliding_window}-token sliding window "
                "and hold no more of a sequence")
    if model.mla_kv_lora_rank:
        return "multi-head latent attention: one latent per token and layer, on every TP rank"
    return ""


def check_parallelism(model: ModelSpec, *, tp: int) -> None:
    """TP must divide the attention heads, and the KV heads (or be a multiple of them, which replicates them).

    Raises:
        ParallelismError: The heads cannot be split over ``tp`` ranks.
    """
    if model.attention_heads % tp:
        raise ParallelismError(model=model.alias, tp=tp, heads=model.attention_heads, kind="attention heads")
    if model.kv_heads % tp and tp % model.kv_heads:
        raise ParallelismError(model=model.alias, tp=tp, heads=model.kv_heads, kind="KV heads")


def usable_bytes_per_node(preset: Preset, *, gpu_memory_utilization: float) -> int:
    gpus = preset.gpus_per_node
    per_gpu = preset.gpu_memory_gib * gpu_memory_utilization - ACTIVATION_RESERVE_GIB_PER_GPU
    return int(gpus * per_gpu * GIB)


@dataclass(frozen=True)
class Sizing:
    """What a plan is asked for beyond the model and the shape.

    Attributes:
        nodes: Nodes per group chosen by the user; None picks the smallest that fits.
        max_model_len: Context length to plan for; None uses the model's maximum.
        gpu_memory_utilization: The fraction of each GPU vLLM may use.
        tensor_parallel_size: TP; None uses the preset's GPUs per node.
        lora: The LoRA slots vLLM reserves (vllm.lora); None without LoRA.
    """

    nodes: int | None = None
    max_model_len: int | None = None
    gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION
    tensor_parallel_size: int | None = None
    lora: LoraSlots | None = None


def plan_model(*, model: ModelSpec, preset: Preset, sizing: Sizing | None = None) -> Plan:
    """Size ``model`` (the catalog entry, or a model read from the Hub) on ``preset`` as ``sizing`` asks (the
    planner's choices where it is None).

    Raises:
        LoraSizeUnknownError: ``lora`` is given for a model without the layer sizes it needs.
        ParallelismError: TP does not split the model's heads.
        ContextTooLongError: ``sizing.max_model_len`` is above the model's context.
        ModelTooLargeError: Not even MAX_NODES nodes hold the model.
        UnsupportedModelError: The model's architecture could not be sized and ``nodes`` is None.
        TooFewNodesError: ``nodes`` is below the minimum (the message names it).
    """
    sizing = sizing or Sizing()
    nodes, lora, gpu_memory_utilization = sizing.nodes, sizing.lora, sizing.gpu_memory_utilization
    tp = sizing.tensor_parallel_size or preset.gpus_per_node
    name = model.repo if model.from_hub else model.alias
    if model.unsized and nodes is None:
        raise UnsupportedModelError(model=name, problem=model.unsized)
    if not model.unsized:
        check_parallelism(model, tp=tp)
    length = sizing.max_model_len or model.max_context
    if not length:
        raise UnsupportedModelError(model=name, problem='config.json field "max_position_embeddings" could not be '
                                                        "read (missing)")
    if model.max_context and length > model.max_context:
        raise ContextTooLongError(model=name, asked=length, maximum=model.max_context)
    per_token = 0 if model.unsized else kv_bytes_per_token(model, tp=tp)
    per_sequence = 0 if model.unsized else kv_bytes_per_sequence(model, tp=tp, length=length)
    usable = usable_bytes_per_node(preset, gpu_memory_utilization=gpu_memory_utilization)
    adapters = lora_bytes_per_group(model, lora, tp=tp) if lora else 0
    need = model.weight_bytes + adapters + per_sequence
    minimum = next((n for n in range(1, MAX_NODES + 1) if n * usable >= need), None)

    def detail(n: int) -> str:
        slots = f" + LoRA slots {adapters / GIB:.1f} GiB" if adapters else ""
        sequence = "" if model.unsized else f" + one {length}-token sequence {per_sequence / GIB:.1f} GiB"
        return f"weights {model.weight_bytes / GIB:.0f} GiB{slots}{sequence} > {n} x {usable / GIB:.0f} GiB usable"

    if minimum is None:
        raise ModelTooLargeError(model=name, preset=preset.name, max_nodes=MAX_NODES, detail=detail(MAX_NODES))
    chosen = nodes if nodes is not None else minimum
    if chosen < minimum:
        raise TooFewNodesError(model=name, preset=preset.name, nodes=chosen, minimum=minimum, detail=detail(chosen))
    budget = chosen * usable - model.weight_bytes - adapters
    startup, why = startup_budget(model.weight_bytes)
    download, download_why = download_budget(
        model.download_bytes if model.download_bytes is not None else model.weight_bytes)
    timeout, timeout_why = distributed_timeout(model.weight_bytes)
    return Plan(
        model=model.alias, preset=preset.name, nodes=chosen, min_nodes=minimum,
        tensor_parallel_size=tp, pipeline_parallel_size=chosen, max_model_len=length,
        gpu_memory_utilization=gpu_memory_utilization, weight_bytes=model.weight_bytes,
        kv_bytes_per_token=per_token, kv_bytes_per_sequence=per_sequence, usable_bytes_per_node=usable,
        kv_budget_bytes=budget, full_length_sequences=budget // per_sequence if per_sequence else 0,
        startup_minutes=startup, startup_reason=why, download_minutes=download, download_reason=download_why,
        distributed_timeout_seconds=timeout, distributed_timeout_reason=timeout_why, kv_note=kv_note(model),
        repo=model.repo, revision=model.revision,
        lora_bytes_per_gpu=lora_bytes_per_gpu(model, lora, tp=tp, pp=chosen) if lora else 0,
    )


@dataclass(frozen=True)
class ScaleOut:
    """What groups that follow load (autoscaling) cost: nodes at the fewest and the most groups, and how long one
    more group takes to serve once its nodes are up (its download and load, as the first-token estimate has them;
    the chart bounds it by the download and start-up budgets)."""

    min_groups: int
    max_groups: int
    nodes_per_group: int
    gpus_per_node: int
    download_seconds: float
    load_seconds: float
    budget_minutes: int

    @property
    def min_nodes(self) -> int:
        return self.min_groups * self.nodes_per_group

    @property
    def max_nodes(self) -> int:
        return self.max_groups * self.nodes_per_group

    @property
    def cold_seconds(self) -> float:
        """A group on nodes whose NVMe does not hold the weights yet: download, then load."""
        return self.download_seconds + self.load_seconds

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "min_nodes": self.min_nodes, "max_nodes": self.max_nodes,
                "max_gpus": self.max_nodes * self.gpus_per_node, "cold_seconds": self.cold_seconds}


def scale_out(plan: Plan, *, min_groups: int, max_groups: int, gpus_per_node: int, download_seconds: float,
              load_seconds: float) -> ScaleOut:
    """The nodes ``min_groups`` to ``max_groups`` groups of ``plan`` take, and how long a group added to them takes
    to serve: ``download_seconds`` and ``load_seconds`` of one node (every node of a group downloads and loads in
    parallel, and the group serves when its slowest does), bounded by the plan's download and start-up budgets."""
    return ScaleOut(min_groups=min_groups, max_groups=max_groups, nodes_per_group=plan.nodes,
                    gpus_per_node=gpus_per_node, download_seconds=download_seconds, load_seconds=load_seconds,
                    budget_minutes=plan.download_minutes + plan.startup_minutes)

