"""A model from a Hugging Face Hub repository (``ORG/NAME[@REVISION]``), as the same ModelSpec the catalog gives.

What the planner needs is read with huggingface_hub's ``hf_hub_download`` (config.json, model.safetensors.index.json),
so the Hugging Face cache holds it and HF_HUB_OFFLINE=1 plans from the cache alone; the Hub's file list (sizes of
every file, whether the repository is gated) is asked for when the Hub is reachable. HF_ENDPOINT, HF_TOKEN, HF_HOME,
HF_HUB_CACHE and HF_HUB_OFFLINE are read when a model is read, not when huggingface_hub is imported.

The weights are sized from real bytes: the index's ``metadata.total_size`` (the bytes of every tensor), else the sizes
of the repository's ``*.safetensors`` files; quantized checkpoints (FP8, AWQ and GPTQ int4, MXFP4) need no rule of
their own. The bytes a node downloads are those of the files the chart's download fetches (its default allow and
ignore patterns, and only the shards the index names, filtered as files/fetch_model.py filters them).

The revision is resolved to the commit it points at (the Hub's model info, or offline the Hugging Face cache's
snapshot directory the config came from), and the values pin that commit: a node replaced later downloads the same
bytes.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from helm_rdma.datafiles import chart_dir, schema_path, values_default
from helm_rdma.errors import (
    HubEndpointSettingError,
    HubEnvironmentError,
    HubRepoError,
    HubSettingError,
    HubTimeoutError,
    HubUnreachableError,
    ModelRefError,
    UnsupportedModelError,
)
from helm_rdma.sizing.hubbudget import DEFAULT_SECONDS as DEFAULT_BUDGET
from helm_rdma.sizing.hubbudget import ENV as BUDGET_ENV
from helm_rdma.sizing.hubbudget import BudgetSpent, budget_seconds, hub_budget
from helm_rdma.sizing.modelconfig import ConfigProblem, read_config, weights_label
from helm_rdma.sizing.modelspec import ModelSpec
from helm_rdma.yamlfile import load_json_schema

DEFAULT_ENDPOINT = "https://huggingface.co"
INDEX = "model.safetensors.index.json"
COMMIT = re.compile(r"[0-9a-f]{40}")


# Settings huggingface_hub reads as whole numbers when it is imported (huggingface_hub 2.4.0 constants.py lines
# 310-314, _as_int): another value makes its import raise a bare ValueError.
WHOLE_SECONDS = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


def check_hub_settings(env: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Refuse, before huggingface_hub is imported, the settings its import cannot read.

    Raises:
        HubSettingError: One of WHOLE_SECONDS is set and is not a whole number.
    """
    for name in WHOLE_SECONDS:
        value = env.get(name)
        if value and not value.strip().lstrip("+-").isdigit():
            raise HubSettingError(variable=name, value=value, expected="a whole number of seconds, e.g. 10")


def parse_ref(ref: str) -> tuple[str, str]:
    """``ORG/NAME[@REVISION]`` as (repo, revision), checked with the chart schema's rules for model.name and revision.

    Raises:
        ModelRefError: Not a repository id, or a revision the chart would refuse.
    """
    repo, _, revision = ref.partition("@")
    props = load_json_schema(schema_path("values.schema.json"))["properties"]["model"]["properties"]
    revision = revision or str(props["revision"]["default"])
    if not re.fullmatch(props["name"]["pattern"], repo) or len(repo) > props["name"]["maxLength"]:
        raise ModelRefError(ref=ref, problem="not a Hugging Face repository id (ORG/NAME: letters, digits, '-', '_' "
                                             "and '.', NAME at most 96 characters)")
    if not re.fullmatch(props["revision"]["pattern"], revision) or len(revision) > props["revision"]["maxLength"]:
        raise ModelRefError(ref=ref, problem=f'"{revision}" is not a revision (a branch, tag or commit)')
    check_hub_settings()
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id  # type: ignore[attr-defined]  # exported lazily

    try:  # the Hub's own rules beyond the schema's pattern ("--", "..", a trailing ".git")
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise ModelRefError(ref=ref, problem=f"not a Hugging Face repository id ({exc})") from None
    return repo, revision


@dataclass(frozen=True)
class HubAccess:
    """Where and how to reach the Hub, from the environment at the time of the call."""

    endpoint: str
    offline: bool
    cache_dir: str
    unreachable: str | None = None  # why the Hub did not answer: then only the cache is read
    budget: float = DEFAULT_BUDGET  # seconds every request to the Hub may take in all (sizing/hubbudget.py)

    def probed(self, *, timeout: float = 5.0) -> HubAccess:
        """This access, with ``unreachable`` set when nothing answers at the endpoint's host and port.

        huggingface_hub retries a failed connection for about 20 s before it falls back to the cache; one TCP connect
        tells sooner. Behind a proxy (HTTPS_PROXY and the like) the endpoint is not connected to directly: no probe.
        """
        proxies = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
        if self.offline or any(os.environ.get(k) or os.environ.get(k.lower()) for k in proxies):
            return self
        import socket
        import urllib.parse

        url = urllib.parse.urlsplit(self.endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname or "", port), timeout=timeout).close()
        except OSError as exc:
            return replace(self, unreachable=f"no connection to {url.hostname}:{port} ({exc.strerror or exc})")
        return self

    @classmethod
    def from_environ(cls) -> HubAccess:
        env = os.environ
        check_hub_settings(env)
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
        return cls(endpoint=_endpoint(env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/"),
                   offline=env.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE"),
                   cache_dir=os.path.expanduser(env.get("HF_HUB_CACHE") or os.path.join(home, "hub")),
                   budget=budget_seconds(env))

    def download(self, repo: str, revision: str, name: str, *, optional: bool = False) -> Path | None:
        """One file of the repository through the Hugging Face cache; None for an ``optional`` file it lacks.

        Raises:
            HubRepoError: Gated, missing, no such revision, a required file missing, or offline and not cached.
            HubUnreachableError: The Hub did not answer and the cache does not hold the file.
            HubTimeoutError: The Hub's time budget was spent and the cache does not hold the file.
        """
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        def refused(kind: str) -> HubRepoError:
            return HubRepoError(repo=repo, revision=revision, endpoint=self.endpoint, kind=kind)

        try:
            return Path(hf_hub_download(repo, name, revision=revision, endpoint=self.endpoint,
                                        cache_dir=self.cache_dir,
                                        local_files_only=self.offline or self.unreachable is not None))
        except BudgetSpent:  # the Hub took the whole budget: the cache's copy, if it holds one
            try:
                return Path(hf_hub_download(repo, name, revision=revision, cache_dir=self.cache_dir,
                                            local_files_only=True))
            except LocalEntryNotFoundError:
                raise HubTimeoutError(endpoint=self.endpoint, repo=repo, seconds=self.budget,
                                      variable=BUDGET_ENV) from None
        except GatedRepoError as exc:  # a subclass of RepositoryNotFoundError: first
            raise refused("gated") from exc
        except RepositoryNotFoundError as exc:
            raise refused("missing") from exc
        except RevisionNotFoundError as exc:
            raise refused("revision") from exc
        except LocalEntryNotFoundError as exc:  # not in the cache, and the Hub was not asked or did not answer
            if optional:
                return None
            if self.offline:
                raise refused("offline") from exc
            if self.unreachable:
                raise HubUnreachableError(endpoint=self.endpoint, repo=repo, problem=self.unreachable) from exc
            cause = exc.__cause__ or exc.__context__ or exc
            raise HubUnreachableError(endpoint=self.endpoint, repo=repo,
                                      problem=_first_line(cause)) from exc
        except EntryNotFoundError as exc:
            if optional:
                return None
            raise refused("not-a-model") from exc
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            raise HubUnreachableError(endpoint=self.endpoint, repo=repo,
                                      problem=f"HTTP {status}: {_first_line(exc)}") from exc
        except OSError as exc:  # huggingface_hub's token file or cache under a path that is not a directory
            raise HubEnvironmentError(variable=_variable_of(exc.filename), path=str(exc.filename),
                                      problem=exc.strerror or str(exc)) from None

    def listing(self, repo: str, revision: str) -> Listing | None:
        """The repository's files with their sizes, its commit and whether it is gated; None offline or on failure."""
        if self.offline or self.unreachable:
            return None
        from huggingface_hub import HfApi

        try:
            info = HfApi(endpoint=self.endpoint).model_info(repo, revision=revision, files_metadata=True)
        except Exception:  # the config came from the cache, or the Hub refused the listing: plan without it
            return None
        files = {s.rfilename: int(s.size or 0) for s in info.siblings or []}
        return Listing(files=files, commit=info.sha or "", gated=bool(info.gated))


class Listing(NamedTuple):
    """What the Hub's model info says about a repository."""

    files: dict[str, int]
    commit: str
    gated: bool


def _endpoint(value: str) -> str:
    """HF_ENDPOINT as huggingface_hub will parse it (it splits the URL when it is imported).

    Raises:
        HubEndpointSettingError: Not an http(s) URL with a host and a valid port.
    """
    import urllib.parse

    try:
        url = urllib.parse.urlsplit(value)
        _ = url.port
    except ValueError as exc:
        raise HubEndpointSettingError(value=value, problem=str(exc)) from None
    if url.scheme not in ("http", "https") or not url.hostname:
        raise HubEndpointSettingError(value=value, problem="no http:// or https:// and host")
    return value


def _variable_of(path: object) -> str:
    """The environment variable that chose ``path``: the first of huggingface_hub's whose value begins it."""
    text = str(path or "")
    for name in ("HF_TOKEN_PATH", "HF_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME", "HOME"):
        value = os.environ.get(name)
        if value and text.startswith(os.path.expanduser(value)):
            return name
    return "HF_HOME"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _chart_script(name: str, module_name: str) -> ModuleType:
    path = chart_dir() / "files" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@cache
def pipeline_stages_script() -> ModuleType:
    """The chart's pipeline_stages.py (files/): the one home of which shards a node's pipeline stages load, and
    when a node fetches the whole checkpoint. fetch_model.py imports it by this name, as the pods run it."""
    return _chart_script("pipeline_stages", "pipeline_stages")


@cache
def _fetch_model_script() -> ModuleType:
    """The chart's download script (files/fetch_model.py): the one home of its file selection."""
    pipeline_stages_script()
    return _chart_script("fetch_model", "helm_rdma_chart_fetch_model")


def downloaded_files(files: dict[str, int], index: dict[str, Any] | None = None) -> dict[str, int]:
    """The files the chart's download fetches with its default patterns (model.download in the values schema): with
    the safetensors ``index``, only the shards it names."""
    script = _fetch_model_script()
    selected: dict[str, int] = script.select(files, list(values_default("model.download.allowPatterns")),
                                             list(values_default("model.download.ignorePatterns")))
    if index is not None and INDEX in selected:
        try:
            selected = script.indexed(selected, index)
        except script.Refused:  # an index the download refuses: it fails there; size what the patterns select
            pass
    return selected


def _snapshot_commit(path: Path, name: str) -> str | None:
    """The commit of the Hugging Face cache's snapshot that holds the file NAME at PATH: the cache keeps files as
    ``snapshots/<commit>/<name>`` (huggingface_hub file_download.py, _get_pointer_path)."""
    snapshot = path
    for _ in Path(name).parts:
        snapshot = snapshot.parent
    return snapshot.name if snapshot.parent.name == "snapshots" and COMMIT.fullmatch(snapshot.name) else None


def read_hub_model(ref: str) -> ModelSpec:
    """The model of the Hub repository ``ref`` (``ORG/NAME[@REVISION]``).

    A config.json the planner cannot size gives a spec with ``unsized`` set (the planner then needs --nodes); a
    repository that cannot be read raises.

    Raises:
        ModelRefError: ``ref`` is not a repository id.
        HubRepoError: Gated, missing, no such revision, no config.json, no weights, or offline and not cached.
        HubUnreachableError: The Hub did not answer and the cache does not hold what the plan needs.
        UnsupportedModelError: config.json is not JSON.
    """
    repo, revision = parse_ref(ref)
    access = HubAccess.from_environ()
    with hub_budget(access.budget):
        return _read(ref, repo, revision, access.probed(timeout=min(5.0, access.budget)))


def _read(ref: str, repo: str, revision: str, hub: HubAccess) -> ModelSpec:
    """The model of ``ref`` read through ``hub``."""
    config_file = hub.download(repo, revision, "config.json")
    assert config_file is not None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
        if not isinstance(config, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise UnsupportedModelError(model=ref, problem=f"config.json is not a JSON object ({exc})") from exc
    listing = hub.listing(repo, revision)
    origins: list[tuple[str, str]] = []
    index = _index(hub, repo, revision)
    checkpoint = _checkpoint_bytes(hub, repo, revision, listing, index, origins)
    download = repo_bytes = None
    if listing is not None:
        wanted = downloaded_files(listing.files, index)
        download, repo_bytes = sum(wanted.values()), sum(listing.files.values())
        origins.append(("download per node", f"the Hub's file list: {len(wanted)} of {len(listing.files)} files, "
                                             "those the chart's download fetches"))
        origins.append(("gated", f"the Hub's model info ({'gated' if listing.gated else 'not gated'})"))
    else:
        why = "offline" if hub.offline else hub.unreachable or "the Hub refused it"
        origins.append(("gated", f"unknown without the Hub's model info ({why}): taken as not gated"))
    commit = (listing.commit if listing and COMMIT.fullmatch(listing.commit) else None) \
        or _snapshot_commit(config_file, "config.json")
    if commit and commit != revision:
        origins.append(("revision", f"{revision} is commit {commit} ("
                                    + ("the Hub's model info" if listing and listing.commit else
                                       "the Hugging Face cache's snapshot") + "): the values pin it"))
    where = f"{hub.endpoint}/{repo} @ {revision}" + (f" (commit {commit})" if commit else "")
    # alias: the name clients send in API requests for the model, its NAME lower-case
    base = ModelSpec(alias=repo.split("/", 1)[1].lower(), repo=repo, revision=revision, description=repo,
                     params_billions=0.0, dtype=weights_label(config), kv_cache_dtype="bf16", layers=0,
                     attention_heads=0, kv_heads=0, head_dim=0, max_context=0, gated=bool(listing and listing.gated),
                     source=where, checkpoint_bytes=checkpoint, download_bytes=download, repo_bytes=repo_bytes,
                     commit=commit, origins=tuple(origins))
    try:
        return read_config(config, base)
    except ConfigProblem as problem:
        length = config.get("max_position_embeddings")
        return replace(base, description=f"{repo} ({base.dtype} weights; architecture not sized)",
                       max_context=length if isinstance(length, int) else 0, unsized=str(problem))


def _index(hub: HubAccess, repo: str, revision: str) -> dict[str, Any] | None:
    """The repository's safetensors index, when it has one that is a JSON object."""
    index_file = hub.download(repo, revision, INDEX, optional=True)
    if index_file is None:
        return None
    try:
        index = json.loads(index_file.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return index if isinstance(index, dict) else None


def _checkpoint_bytes(hub: HubAccess, repo: str, revision: str, listing: Listing | None,
                      index: dict[str, Any] | None, origins: list[tuple[str, str]]) -> int:
    """The weights' real bytes: the safetensors index's total, else the Hub's sizes of the *.safetensors files."""
    if index is not None:
        try:
            total = index["metadata"]["total_size"]
        except (KeyError, TypeError):
            total = None
        if isinstance(total, int) and not isinstance(total, bool) and total > 0:
            origins.append(("weights", f"{INDEX} metadata.total_size"))
            return total
    if listing is not None:
        shards = {n: s for n, s in listing.files.items() if n.endswith(".safetensors") and "/" not in n}
        if shards:
            origins.append(("weights", f"the Hub's file list: {len(shards)} *.safetensors file(s)"))
            return sum(shards.values())
    raise HubRepoError(repo=repo, revision=revision, endpoint=hub.endpoint, kind="no-weights")
