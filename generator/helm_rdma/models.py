"""The model catalog (presets/models.yaml): architecture figures the planner needs, per model alias."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import NamedTuple

from .doccache import load_checked
from .errors import NoModelError, SchemaViolation, UnknownModelError
from .presets import CATALOG_FILE
from .resources import presets_dir, schema_path

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}


class ModelSpec(NamedTuple):
    """One catalog entry."""

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
    # What the LoRA memory estimate reads (helm_rdma.lora); None where the catalog does not say.
    hidden_size: int | None = None
    intermediate_size: int | None = None
    experts: int | None = None
    expert_intermediate_size: int | None = None

    @property
    def weight_bytes(self) -> int:
        """Bytes of the weights at their checkpoint dtype (parameters x bytes per parameter)."""
        return int(self.params_billions * 1e9) * DTYPE_BYTES[self.dtype]


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
            hidden_size=e.get("hiddenSize"), intermediate_size=e.get("intermediateSize"),
            experts=experts.get("count"), expert_intermediate_size=experts.get("intermediateSize"),
        )
    return catalog


def model_names() -> list[str]:
    return sorted(load_catalog())


def get_model(alias: str) -> ModelSpec:
    """One catalog entry by alias.

    Raises:
        UnknownModelError: The alias is not in the catalog (the message lists the known ones).
    """
    catalog = load_catalog()
    if alias not in catalog:
        raise UnknownModelError(name=alias, known=catalog)
    return catalog[alias]


def pick_model(*, release: str, model: str | None) -> ModelSpec:
    """The model a release serves.

    ``--model`` wins; else the release name when it is a catalog alias; else the longest alias that the release name
    starts with, followed by "-" (``llama405b-fp8-prod`` serves llama405b-fp8). Any other release name is refused:
    a release called ``chatbot`` must not silently serve some default model.

    Raises:
        UnknownModelError: ``model`` is given and not in the catalog.
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
