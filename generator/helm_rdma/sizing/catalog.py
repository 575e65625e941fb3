"""The model catalog (presets/models.yaml): architecture figures the planner needs, per model alias.

A model is a catalog alias or a Hugging Face repository id (``ORG/NAME[@REVISION]``, read from the Hub by
helm_rdma.sizing.hubmodel); both give the same ModelSpec.
"""

from __future__ import annotations

from functools import cache

from helm_rdma.datafiles import presets_dir, schema_path
from helm_rdma.errors import NoModelError, SchemaViolation, UnknownModelError
from helm_rdma.sizing.doccache import load_checked
from helm_rdma.sizing.hubmodel import read_hub_model
from helm_rdma.sizing.modelspec import ModelSpec
from helm_rdma.sizing.presets import CATALOG_FILE

# The headline model: charts/vllm-rdma is generated for it, and `doctor` without RELEASE or --model checks it.
DEFAULT_MODEL = "llama405b"


@cache
def load_catalog() -> dict[str, ModelSpec]:
    """Load and validate the model catalog.

    Raises:
        YamlFileError: The file is not valid YAML.
        SchemaViolation: The catalog breaks schemas/models.schema.json or cites an unknown source.
    """
    path = presets_dir() / CATALOG_FILE
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
