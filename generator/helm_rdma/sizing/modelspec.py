"""One model's figures, as the planner reads them: from a catalog entry (catalog.py) or a Hub repository
(hubmodel.py)."""

from __future__ import annotations

from dataclasses import dataclass

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}


@dataclass(frozen=True)
class ModelSpec:
    """One model: a catalog entry, or what hubmodel.py read from a Hub repository."""

    alias: str
    repo: str
    description: str
    params_billions: float
    dtype: str
    kv_cache_dtype: str
    layers: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    max_context: int
    gated: bool
    source: str
    mla_kv_lora_rank: int | None = None
    mla_rope_dim: int | None = None
    revision: str = "main"
    # The commit the revision pointed at when the model was read from the Hub (its listing, or the Hugging Face
    # cache's snapshot offline): the values pin it. None for catalog entries: they are read without the Hub, so their
    # revision stays as given (main) and each node's download resolves it when it starts.
    commit: str | None = None
    # Hybrid attention: this many of the layers attend over a sliding window of this many tokens and keep no more.
    sliding_window: int | None = None
    sliding_layers: int = 0
    # Mixture of experts: experts per MoE layer, and how many each token uses (GPU memory holds them all).
    experts: int = 0
    active_experts: int = 0
    # Real bytes, where known: the safetensors weights, the files the chart's download fetches, the whole repository.
    checkpoint_bytes: int | None = None
    download_bytes: int | None = None
    repo_bytes: int | None = None
    # Why the architecture could not be sized (an unknown one, a field missing): only --nodes plans it then.
    unsized: str | None = None
    # (figure, where it came from), in the order they were read.
    origins: tuple[tuple[str, str], ...] = ()
    # What the LoRA memory estimate reads (helm_rdma.sizing.lora); None where the catalog or config.json does not say.
    hidden_size: int | None = None
    intermediate_size: int | None = None
    expert_intermediate_size: int | None = None

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights: the checkpoint's real bytes where known, else parameters x bytes per parameter."""
        if self.checkpoint_bytes is not None:
            return self.checkpoint_bytes
        return int(self.params_billions * 1e9) * DTYPE_BYTES[self.dtype]

    @property
    def from_hub(self) -> bool:
        """Read from a Hub repository rather than the catalog."""
        return bool(self.origins)
