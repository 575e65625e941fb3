"""The GPU memory vLLM reserves for LoRA adapters (--enable-lora), which the KV cache then goes without.

vLLM wraps every linear layer it can serve LoRA on when the engine starts, and gives each ``max_loras`` slots of
``max_lora_rank``, in the LoRA dtype (the model's activations': 2 bytes), whether or not an adapter uses them
(vllm/lora/layers/base_linear.py ``create_lora_weights``; fused MoE layers likewise, per expert, in
vllm/lora/layers/fused_moe.py). Per layer and GPU, a slot of a column-parallel layer holds A (rank x input) whole and
B (output / TP x rank); a row-parallel layer A (rank x input / TP) and B (output x rank) whole; merged layers (q, k, v;
gate, up) have one A per part. The estimate counts, per decoder layer:
- attention: q, k, v (column-parallel; k and v with the KV heads a rank holds, at least one) and o (row-parallel);
- the MLP: gate and up (column-parallel) and down (row-parallel), of the dense intermediate size, or, with experts,
  of every routed expert's intermediate size (every MLP layer counted as a mixture-of-experts layer);
so bytes per GPU = max_loras x rank x (sum of those in + out sizes) x 2 x the layers of the GPU's pipeline stage.
It leaves out what vLLM allocates besides (the punica kernels' index buffers, a few MB), embeddings and the LM head
(extra-vocabulary LoRA is gone from current vLLM), and for multi-head latent attention it counts attention as plain
multi-head attention of attentionHeads x headDim: an estimate to plan hardware with, not vLLM's exact figure.
"""

from __future__ import annotations

from typing import NamedTuple

from helm_rdma.errors import LoraSizeUnknownError
from helm_rdma.sizing.modelspec import ModelSpec

LORA_DTYPE_BYTES = 2


class LoraSlots(NamedTuple):
    """What vLLM reserves GPU memory for: ``max_loras`` adapters of rank up to ``max_rank``."""

    max_loras: int
    max_rank: int


def layer_elements(model: ModelSpec, *, tp: int, rank: int) -> int:
    """LoRA elements one slot of ``rank`` takes on one GPU, per decoder layer.

    Raises:
        LoraSizeUnknownError: The catalog lacks the model's hidden or intermediate size.
    """
    if model.hidden_size is None or (model.intermediate_size is None and not model.experts):
        raise LoraSizeUnknownError(model=model.alias)
    hidden, head_dim = model.hidden_size, model.head_dim
    q = model.attention_heads * head_dim
    kv = max(model.kv_heads, tp) * head_dim  # a rank holds at least one KV head (replicated beyond)
    attention = (3 * hidden + (q + 2 * kv) // tp) + (q // tp + hidden)
    if model.experts and model.expert_intermediate_size is not None:
        inter, count = model.expert_intermediate_size, model.experts
    else:
        inter, count = model.intermediate_size or 0, 1
    mlp = count * ((2 * hidden + 2 * inter // tp) + (inter // tp + hidden))
    return rank * (attention + mlp)


def lora_bytes_per_gpu(model: ModelSpec, slots: LoraSlots, *, tp: int, pp: int) -> int:
    """GPU memory vLLM reserves for ``slots`` on each GPU of the largest pipeline stage.

    Raises:
        LoraSizeUnknownError: The catalog lacks the model's hidden or intermediate size.
    """
    layers_per_stage = -(-model.layers // max(pp, 1))
    return slots.max_loras * LORA_DTYPE_BYTES * layers_per_stage * layer_elements(model, tp=tp, rank=slots.max_rank)


def lora_bytes_per_group(model: ModelSpec, slots: LoraSlots, *, tp: int) -> int:
    """GPU memory vLLM reserves for ``slots`` over a whole group (every layer on each of its TP ranks): the same for
    any number of pipeline stages."""
    return slots.max_loras * LORA_DTYPE_BYTES * model.layers * tp * layer_elements(model, tp=tp, rank=slots.max_rank)
