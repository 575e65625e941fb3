"""What the planner needs from a model's config.json (Hugging Face transformers format), and where each figure is.

Pure: a dict and the model's spec known without it in, the spec with the architecture's figures and their origins
out. The rules follow vLLM where it decides the shapes:
- The context length is vLLM's default max_model_len (``_get_and_verify_max_len``, vllm/config.py, now
  vllm/config/model.py): the smallest of max_position_embeddings and its aliases, times the RoPE scaling factor
  except for the "su", "longrope" and "llama3" types and Gemma 3 (whose max_position_embeddings already holds it);
  for "yarn" the factor multiplies original_max_position_embeddings.
- head_dim is the config's own where it gives one (Qwen3 and Gemma: not hidden_size / heads), else hidden_size /
  attention heads; a config without num_key_value_heads gives every head its own K and V.
- Multi-head latent attention (DeepSeek V2, V3, R1; vllm/model_executor/models/deepseek_v2.py) caches one latent of
  kv_lora_rank + qk_rope_head_dim per token and layer.
- Hybrid attention (Gemma 2 and 3, gpt-oss): the layers named sliding_attention in layer_types (else Gemma 2's even
  layers, Gemma 3's five of every six, gpt-oss's even layers) keep only their sliding window of tokens; vLLM's hybrid
  KV cache manager allocates them no more. Other architectures are planned with full attention on every layer.
- The KV cache dtype is the model's activation dtype (torch_dtype, or dtype in newer configs): vLLM's
  --kv-cache-dtype auto; a config without one is served in 16 bits. Quantized weights (FP8, AWQ, GPTQ, MXFP4) keep
  a BF16/FP16 KV cache.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from helm_rdma.sizing.modelspec import ModelSpec

# Architectures the planner sizes, and how their attention caches keys and values.
GQA, MLA, HYBRID = "grouped-query attention", "multi-head latent attention", "hybrid sliding-window attention"
ARCHITECTURES = {
    "LlamaForCausalLM": GQA,
    "MistralForCausalLM": GQA,
    "MixtralForCausalLM": GQA,
    "Qwen2ForCausalLM": GQA,
    "Qwen2MoeForCausalLM": GQA,
    "Qwen3ForCausalLM": GQA,
    "Qwen3MoeForCausalLM": GQA,
    "GemmaForCausalLM": GQA,
    "DeepseekV2ForCausalLM": MLA,
    "DeepseekV3ForCausalLM": MLA,
    "Gemma2ForCausalLM": HYBRID,
    "Gemma3ForCausalLM": HYBRID,
    "Gemma3ForConditionalGeneration": HYBRID,
    "GptOssForCausalLM": HYBRID,
}
# vLLM's keys for the longest sequence a config allows (the smallest one present wins).
LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "model_max_length",
               "max_sequence_length", "max_seq_length", "seq_len")
ROPE_KEEPS_LENGTH = ("su", "longrope", "llama3")
KV_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "bf16", "float": "bf16"}
EXPERT_KEYS = ("n_routed_experts", "num_experts", "num_local_experts")
ACTIVE_EXPERT_KEYS = ("num_experts_per_tok", "experts_per_token")


class ConfigProblem(Exception):
    """A config.json the planner cannot size; the message names the field (not a user-facing error by itself)."""


class _Reader:
    """Reads fields of one config (or its text_config), remembering where each figure came from."""

    def __init__(self, config: dict[str, Any], prefix: str) -> None:
        self.config, self.prefix = config, prefix
        self.origins: list[tuple[str, str]] = []

    def has(self, key: str) -> bool:
        return self.config.get(key) is not None

    def optional(self, key: str) -> int | None:
        """The field if it is a positive integer, else None (for figures only some estimates need)."""
        value = self.config.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def int(self, key: str, figure: str | None = None) -> int:
        value = self.config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            shown = "missing" if value is None else f"{value!r}, not a positive integer"
            raise ConfigProblem(f'config.json field "{self.prefix}{key}" could not be read ({shown})')
        if figure:
            self.note(figure, key)
        return value

    def note(self, figure: str, *keys: str, how: str = "") -> None:
        where = " and ".join(f"{self.prefix}{k}" for k in keys)
        self.origins.append((figure, f"config.json {where}" + (f" ({how})" if how else "")))


def read_config(config: dict[str, Any], base: ModelSpec) -> ModelSpec:
    """``base`` with the figures the planner needs from ``config`` (a parsed config.json), their origins first.

    Raises:
        ConfigProblem: An architecture this module does not size, or a field it needs is missing or not a number;
            the message names the field.
    """
    architectures = config.get("architectures")
    if not isinstance(architectures, list) or not architectures:
        raise ConfigProblem('config.json field "architectures" could not be read (missing)')
    architecture = str(architectures[0])
    if architecture not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ConfigProblem(f'config.json field "architectures" names {architecture}, an architecture the planner '
                            f"does not size (it knows {known})")
    attention = ARCHITECTURES[architecture]
    text = config.get("text_config")
    r = _Reader(text, "text_config.") if isinstance(text, dict) and not config.get("num_hidden_layers") else \
        _Reader(config, "")
    layers = r.int("num_hidden_layers", "layers")
    heads = r.int("num_attention_heads", "attention heads")
    if r.has("num_key_value_heads"):
        kv_heads = r.int("num_key_value_heads", "KV heads")
    else:
        kv_heads = heads
        r.note("KV heads", "num_attention_heads", how="no num_key_value_heads: each head has its own K and V")
    if r.has("head_dim"):
        head_dim = r.int("head_dim", "head dim")
    else:
        hidden = r.int("hidden_size")
        head_dim = hidden // heads
        r.note("head dim", "hidden_size", "num_attention_heads", how="hidden_size / heads")
    max_context = _max_context(r, config, architecture)
    kv_dtype = _kv_dtype(r, config)
    mla_rank = mla_rope = None
    if attention == MLA:
        mla_rank, mla_rope = r.int("kv_lora_rank"), r.int("qk_rope_head_dim")
        r.note("KV cache per token and layer", "kv_lora_rank", "qk_rope_head_dim",
               how="one latent, held whole by every tensor-parallel rank")
    window, sliding = _sliding(r, architecture, layers) if attention == HYBRID else (None, 0)
    experts = next((r.config[k] for k in EXPERT_KEYS if isinstance(r.config.get(k), int)), 0)
    active = next((r.config[k] for k in ACTIVE_EXPERT_KEYS if isinstance(r.config.get(k), int)), 0)
    if experts:
        r.note("experts", next(k for k in EXPERT_KEYS if r.has(k)),
               how=f"{active} used per token; GPU memory holds all {experts}")
    moe = f", MoE {active} of {experts} experts per token" if experts else ""
    return replace(
        base, description=f"{architecture}, {base.dtype} weights, {attention}{moe}", kv_cache_dtype=kv_dtype,
        layers=layers, attention_heads=heads, kv_heads=kv_heads, head_dim=head_dim, max_context=max_context,
        mla_kv_lora_rank=mla_rank, mla_rope_dim=mla_rope, sliding_window=window, sliding_layers=sliding,
        experts=experts, active_experts=active, hidden_size=r.optional("hidden_size"),
        intermediate_size=r.optional("intermediate_size"),
        expert_intermediate_size=(r.optional("moe_intermediate_size") or r.optional("intermediate_size")) if experts
        else None,
        origins=(*r.origins, *base.origins),
    )


def _max_context(r: _Reader, config: dict[str, Any], architecture: str) -> int:
    present = [k for k in LENGTH_KEYS if r.has(k)]
    if not present:
        raise ConfigProblem(f'config.json field "{r.prefix}max_position_embeddings" could not be read (missing)')
    key = min(present, key=lambda k: r.int(k))
    length = r.int(key)
    rope = r.config.get("rope_scaling") or r.config.get("rope_parameters")
    model_type = str(r.config.get("model_type") or config.get("model_type") or "")
    if isinstance(rope, dict) and "gemma3" not in model_type:
        kind = str(rope.get("rope_type") or rope.get("type") or "default")
        factor = rope.get("factor", 1.0)
        if kind not in ROPE_KEEPS_LENGTH and kind != "default" and isinstance(factor, (int, float)):
            base_key = key
            if kind == "yarn":
                if not isinstance(rope.get("original_max_position_embeddings"), int):
                    raise ConfigProblem(f'config.json field "{r.prefix}rope_scaling.original_max_position_embeddings" '
                                        "could not be read (missing)")
                length = rope["original_max_position_embeddings"]
                base_key = "rope_scaling.original_max_position_embeddings"
            length = int(length * factor)
            r.note("max context", base_key, "rope_scaling.factor", how=f"{kind} RoPE scaling x {factor:g}, as vLLM")
            return length
    r.note("max context", key)
    return length


def _kv_dtype(r: _Reader, config: dict[str, Any]) -> str:
    for prefix, source in ((r.prefix, r.config), ("", config)):
        for key in ("torch_dtype", "dtype"):
            value = source.get(key)
            if isinstance(value, str) and value.removeprefix("torch.") in KV_DTYPES:
                r.origins.append(("KV cache dtype", f"config.json {prefix}{key} (the model's dtype: vLLM's "
                                                    "--kv-cache-dtype auto)"))
                return KV_DTYPES[value.removeprefix("torch.")]
    if not any(source.get(k) is not None for source in (r.config, config) for k in ("torch_dtype", "dtype")):
        # No dtype (gpt-oss's config has none): vLLM takes float32 and serves it in 16 bits, 2 bytes either way.
        r.origins.append(("KV cache dtype", "config.json has no torch_dtype: vLLM serves such a model in 16 bits"))
        return "bf16"
    raise ConfigProblem(f'config.json field "{r.prefix}torch_dtype" could not be read (not one of '
                        f"{', '.join(KV_DTYPES)})")


def _sliding(r: _Reader, architecture: str, layers: int) -> tuple[int | None, int]:
    if not r.has("sliding_window"):
        return None, 0
    window = r.int("sliding_window")
    types = r.config.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        sliding = sum(1 for t in types if t == "sliding_attention")
        r.note("sliding-window layers", "layer_types", "sliding_window",
               how=f"{sliding} of {layers} layers keep {window} tokens")
        return window, sliding
    if architecture.startswith("Gemma3"):
        pattern = r.int("sliding_window_pattern")
        sliding = layers - layers // pattern
        r.note("sliding-window layers", "sliding_window_pattern", "sliding_window",
               how=f"{sliding} of {layers} layers keep {window} tokens")
        return window, sliding
    sliding = math.ceil(layers / 2)  # Gemma 2 and gpt-oss: the even layers slide
    r.note("sliding-window layers", "sliding_window",
           how=f"every other layer: {sliding} of {layers} keep {window} tokens")
    return window, sliding


def weights_label(config: dict[str, Any]) -> str:
    """How the checkpoint stores its weights, for people: "bf16", "fp8", "awq int4", "mxfp4"..."""
    quant = config.get("quantization_config") or (config.get("text_config") or {}).get("quantization_config")
    if isinstance(quant, dict) and quant.get("quant_method"):
        method = str(quant["quant_method"])
        bits = quant.get("bits") or quant.get("w_bit")
        return f"{method} int{bits}" if isinstance(bits, int) else method
    dtype = config.get("torch_dtype") or config.get("dtype") or (config.get("text_config") or {}).get("torch_dtype")
    return {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(str(dtype), str(dtype or "unknown"))
