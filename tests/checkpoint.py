"""A small Llama-shaped checkpoint in real safetensors files (written by the safetensors library vLLM reads them
with), sharded by layer as the Hub's large checkpoints are, one shard straddling the stages' boundary: for the stage
split's tests and bench."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from safetensors.numpy import save

INDEX = "model.safetensors.index.json"


def layer_tensors(i: int, dim: int) -> dict[str, tuple[int, int]]:
    """The tensors of decoder layer ``i`` with their shapes, attention first."""
    p = f"model.layers.{i}."
    return {p + "input_layernorm.weight": (1, dim), p + "self_attn.q_proj.weight": (dim, dim),
            p + "self_attn.o_proj.weight": (dim, dim), p + "post_attention_layernorm.weight": (1, dim),
            p + "mlp.up_proj.weight": (dim, dim), p + "mlp.down_proj.weight": (dim, dim)}


def shard_plan(layers: int, tie: bool) -> list[list[str]]:
    """Tensor groups per shard: the embeddings alone, two layers per shard, the last layer's MLP sharing a shard with
    the next layer (so a shard straddles each boundary), the norm, then the head alone (none when tied)."""
    shards: list[list[str]] = [["embed"]]
    for start in range(0, layers, 2):
        shards.append([f"layer:{i}" for i in range(start, min(start + 2, layers))])
    shards.append(["norm"])
    if not tie:
        shards.append(["head"])
    return shards


def checkpoint(*, layers: int = 8, dim: int = 64, vocab: int = 256, tie: bool = False,
               quantized: bool = False, seed: int = 0) -> dict[str, bytes]:
    """A repository's files: config.json, the sharded weights and their index, a tokenizer, and original/."""
    rng = np.random.default_rng(seed)
    groups: dict[str, dict[str, tuple[int, int]]] = {
        "embed": {"model.embed_tokens.weight": (vocab, dim)}, "norm": {"model.norm.weight": (1, dim)},
        "head": {"lm_head.weight": (vocab, dim)},
        **{f"layer:{i}": layer_tensors(i, dim) for i in range(layers)}}
    plan = shard_plan(layers, tie)
    # Move each odd layer's MLP into the next shard: that shard then holds tensors of two layers on either side.
    tensors_of: list[dict[str, tuple[int, int]]] = [{} for _ in plan]
    for k, members in enumerate(plan):
        for member in members:
            for name, shape in groups[member].items():
                moved = member.startswith("layer:") and int(member[6:]) % 2 == 1 and ".mlp." in name
                tensors_of[k + 1 if moved and k + 1 < len(plan) else k][name] = shape
    files: dict[str, bytes] = {}
    weight_map: dict[str, str] = {}
    total = 0
    for k, tensors in enumerate(tensors_of):
        name = f"model-{k + 1:05d}-of-{len(plan):05d}.safetensors"
        arrays = {t: rng.standard_normal(shape).astype(np.float16) for t, shape in tensors.items()}
        files[name] = save(arrays, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(arrays, name))
        total += sum(a.nbytes for a in arrays.values())
    config: dict[str, Any] = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": layers,
                              "hidden_size": dim, "vocab_size": vocab, "tie_word_embeddings": tie,
                              "torch_dtype": "float16"}
    if quantized:
        config["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic"}
    files.update({
        "config.json": json.dumps(config).encode(), "generation_config.json": b"{}",
        INDEX: json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}).encode(),
        "tokenizer.json": b"{}", "tokenizer_config.json": b"{}",
        "original/consolidated.00.pth": b"\0" * 1024, "README.md": b"readme",
    })
    return files


def shards_holding(files: dict[str, bytes], prefixes: tuple[str, ...]) -> set[str]:
    """The shards whose index entries start with any of ``prefixes``."""
    weight_map = json.loads(files[INDEX])["weight_map"]
    return {shard for tensor, shard in weight_map.items() if tensor.startswith(prefixes)}


def layer_prefixes(layers: range) -> tuple[str, ...]:
    return tuple(f"model.layers.{i}." for i in layers)
