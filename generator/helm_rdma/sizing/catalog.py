"""The model catalog (presets/models.yaml): architecture figures the planner needs, per model alias.

A model is a catalog alias or a Hugging Face repository id (``ORG/NAME[@REVISION]``, read from the Hub by
helm_rdma.sizing.hubmodel); both give the same ModelSpec.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from helm_rdma.datafiles import presets_dir, schema_path
from helm_rdma.errors import NoModelError, SchemaViolation, UnknownModelError
from helm_rdma.resolve.doccache import load_checked
from helm_rdma.sizing.presets import CATALOG_FILE

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}
# The headline model: charts/vllm-rdma is generated for it, and `doctor` without RELEASE or --model checks it.
DEFAULT_MODEL = "llama405b"


@dataclass(frozen=True)
class ModelSpec:
    """One model: a catalog entry, or what helm_rdma.sizing.hubmodel read from a Hub repository."""

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


def catalog_path() -> Path:
    return presets_dir() / CATALOG_FILE


@cache
def load_catalog(path: Path | None = None) -> dict[str, ModelSpec]:
    """Load and validate the model catalog.

    Raises:
        YamlFileError: The file is not valid YAML.
        SchemaViolation: The catalog breaks schemas/models.schema.json or cites an unknown source.
    """
    path = path or catalog_path()
    data, found = load_checked(path, schema=schema_path("models.schema.json"))
    problems = [f"{k}: {m}" for k, m in found]
    if not problems:
        problems = [
            f'models.{alias}.source: "{entry["source"]}" is not a key of sources'
            for alias, entry in data["models"].items()
            if entry["source"] not in data["sources"]
        ]
    if problems:
        raise SchemaViolation(what=f"model catalog {path}", problems=problems,
                              fix="Fix it against schemas/models.schema.json.")
    catalog = {}
    for alias, e in data["models"].items():
        mla = e.get("mla") or {}
        experts = e.get("experts") or {}
        catalog[alias] = ModelSpec(
            alias=alias, repo=e["repo"], description=e["description"], params_billions=float(e["paramsBillions"]),
            dtype=e["dtype"], kv_cache_dtype=e.get("kvCacheDtype", "bf16"), layers=e["layers"],
            attention_heads=e["attentionHeads"], kv_heads=e["kvHeads"], head_dim=e["headDim"],
            max_context=e["maxContext"], gated=e["gated"], source=data["sources"][e["source"]],
            mla_kv_lora_rank=mla.get("kvLoraRank"), mla_rope_dim=mla.get("qkRopeHeadDim"),
            repo_bytes=int(e["repoGB"] * 1e9) if "repoGB" in e else None,
            hidden_size=e.get("hiddenSize"), intermediate_size=e.get("intermediateSize"),
            experts=experts.get("count", 0), expert_intermediate_size=experts.get("intermediateSize"),
        )
    return catalog


def model_names() -> list[str]:
    return sorted(load_catalog())


def get_model(alias: str) -> ModelSpec:
    """One catalog entry by alias, or with ``ORG/NAME[@REVISION]`` the Hub repository's model.

    Raises:
        UnknownModelError: The alias is not in the catalog (the message lists the known ones).
        HubRepoError, HubUnreachableError: The repository cannot be read (see helm_rdma.sizing.hubmodel).
    """
    if "/" in alias:
        from helm_rdma.sizing.hubmodel import read_hub_model

        return read_hub_model(alias)
    catalog = load_catalog()
    if alias not in catalog:
        raise UnknownModelError(name=alias, known=catalog)
    return catalog[alias]


def pick_model(*, release: str, model: str | None) -> ModelSpec:
    """The model a release serves.

    ``--model`` (a catalog alias, or a Hub repository id ``ORG/NAME[@REVISION]``) wins; else the release name when
    it is a catalog alias; else the longest alias that the release name starts with, followed by "-"
    (``llama405b-fp8-prod`` serves llama405b-fp8). Any other release name is refused: a release called ``chatbot``
    must not silently serve some default model.

    Raises:
        UnknownModelError: ``model`` is given and not in the catalog.
        HubRepoError, HubUnreachableError: ``model`` is a repository id that cannot be read.
        NoModelError: Neither ``model`` nor the release name picks a catalog model.
    """
    if model is not None:
        return get_model(model)
    catalog = load_catalog()
    if release in catalog:
        return catalog[release]
    prefixed = sorted((a for a in catalog if release.startswith(a + "-")), key=len)
    if prefixed:
        return catalog[prefixed[-1]]
    raise NoModelError(release=release, known=list(catalog))
