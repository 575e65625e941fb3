"""Any model from the Hugging Face Hub: the real huggingface_hub client reads config.json and the safetensors index
through the local stand-in (tests/hub_standin.py, HF_ENDPOINT), the planner sizes it, and the chart serves it.

The config.json files under tests/fixtures/hub/ are copies of the models' own, each naming the public copy it was
taken from; the safetensors indexes and shards are made here (their sizes are stated, not the real models')."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.commands.plan import plan
from helm_rdma.errors import HubRepoError, UnsupportedModelError
from helm_rdma.resolve.values import resolve
from helm_rdma.sizing.hubmodel import HubAccess

from .hub_standin import Hub, HubServer, Repo
from .rendering import request

FIXTURES = Path(__file__).parent / "fixtures" / "hub"
GB = 1000**3


def fixture(name: str) -> tuple[str, dict[str, Any]]:
    data = json.loads((FIXTURES / f"{name}.json").read_text())
    return data["repo"], data["config"]


def repo_for(config: dict[str, Any], *, total_size: int | None = 60 * GB, gated: bool = False,
             shards: dict[str, bytes] | None = None) -> Repo:
    """A repository shaped like the Hub's: config, tokenizer, two small shards (the index states the real size)."""
    files = {"config.json": json.dumps(config).encode(), "generation_config.json": b"{}", "tokenizer.json": b"{}",
             "README.md": b"readme", "original/consolidated.00.pth": b"x" * 5000,
             **(shards if shards is not None else {"model-00001-of-00002.safetensors": b"w" * 3000,
                                                   "model-00002-of-00002.safetensors": b"w" * 1000})}
    if total_size is not None:
        weight_map = {f"layer{i}.weight": name for i, name in enumerate(n for n in files if n.endswith(".safetensors"))}
        files["model.safetensors.index.json"] = json.dumps({"metadata": {"total_size": total_size},
                                                           "weight_map": weight_map}).encode()
    return Repo(files=files, gated=gated)


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A stand-in Hub holding every fixture, reached through HF_ENDPOINT, with a fresh Hugging Face cache."""
    hub = Hub(token="hf_good")
    for path in sorted(FIXTURES.glob("*.json")):
        repo, config = fixture(path.stem)
        hub.repos[repo] = repo_for(config)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    with HubServer(hub) as url:
        monkeypatch.setenv("HF_ENDPOINT", url)
        yield hub


# (fixture, KV bytes per token for the whole group at TP 8, max context, what else the plan must say)
ARCHITECTURES = [
    ("llama-3.1-8b", 2 * 32 * 8 * 128 * 2, 131072, "llama3 RoPE keeps max_position_embeddings"),
    ("qwen2.5-32b", 2 * 64 * 8 * (5120 // 40) * 2, 131072, "head dim from hidden_size / heads"),
    ("qwen3-32b", 2 * 64 * 8 * 128 * 2, 40960, "head_dim of its own, not hidden_size / heads"),
    ("qwen3-30b-a3b", 2 * 48 * 8 * 128 * 2, 40960, "4 KV heads, each held twice at TP 8; 128 experts"),
    ("deepseek-v3", 61 * (512 + 64) * 2 * 8, 4096 * 40, "MLA latent on every rank; yarn x 40"),
    ("gpt-oss-20b", 2 * 24 * 8 * 64 * 2, 4096 * 32, "12 of 24 layers keep a 128-token window"),
]


@pytest.mark.parametrize(("name", "per_token", "context", "why"), ARCHITECTURES, ids=[a[0] for a in ARCHITECTURES])
def test_a_hub_model_is_sized_from_its_config_and_its_real_bytes(hub_env: Hub, name: str, per_token: int,
                                                                 context: int, why: str) -> None:
    repo, config = fixture(name)
    report = plan(model=repo, preset="h100")
    p, m = report.plan, report.model
    assert (p.kv_bytes_per_token, p.max_model_len) == (per_token, context), why
    assert p.weight_bytes == 60 * GB and m.repo == repo and p.tensor_parallel_size == 8
    sources = dict(report.sources())
    assert sources["weights"] == "model.safetensors.index.json metadata.total_size"
    assert sources["layers"] == "config.json num_hidden_layers"
    assert m.download_bytes == 2 + 2 + 3000 + 1000 + len(json.dumps(config)) + len(
        hub_env.repos[repo].files["model.safetensors.index.json"])  # no original/, no README
    assert m.repo_bytes is not None and m.repo_bytes > m.download_bytes


def test_hybrid_attention_holds_only_the_window_on_its_sliding_layers(hub_env: Hub) -> None:
    p = plan(model="openai/gpt-oss-20b", preset="h100").plan
    per_layer = 2 * 8 * 64 * 2
    assert p.kv_bytes_per_sequence == per_layer * (12 * 131072 + 12 * 128)
    assert "12 of 24 layers use a 128-token sliding window" in p.kv_note


def test_moe_and_quantized_weights_are_described_and_sized_from_their_bytes(hub_env: Hub) -> None:
    m = plan(model="deepseek-ai/DeepSeek-V3", preset="h100").model
    assert m.dtype == "fp8" and m.experts == 256 and m.active_experts == 8
    assert "MoE 8 of 256 experts per token" in m.description
    # An AWQ int4 checkpoint in one file, without an index: its bytes are the file's, from the Hub's file list.
    _, config = fixture("qwen2.5-32b")
    awq = {**config, "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}}
    hub_env.repos["Qwen/Tiny-AWQ"] = repo_for(awq, total_size=None, shards={"model.safetensors": b"q" * 7777})
    report = plan(model="Qwen/Tiny-AWQ", preset="h100")
    assert report.model.dtype == "awq int4" and report.plan.weight_bytes == 7777
    assert dict(report.sources())["weights"] == "the Hub's file list: 1 *.safetensors file(s)"


def test_plan_of_an_unknown_repo_id_prints_the_figures_their_sources_and_the_first_token(hub_env: Hub) -> None:
    result = CliRunner().invoke(main, ["plan", "Qwen/Qwen3-32B", "--preset", "h100", "--network-gbs", "2"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Qwen/Qwen3-32B@main, served as qwen3-32b" in out
    assert "KV heads: config.json num_key_value_heads" in out
    assert "weights: model.safetensors.index.json metadata.total_size" in out
    assert "time to first token, per node (network 2 GB/s" in out and "whole repository" in out
    data = json.loads(CliRunner().invoke(main, ["plan", "Qwen/Qwen3-32B@main", "-p", "h100", "-o", "json"]).output)
    assert data["repo"] == "Qwen/Qwen3-32B" and data["first_token"]["ways"][0]["name"] == "helm-rdma"
    assert {"figure": "max context", "source": "config.json max_position_embeddings"} in data["sources"]


@pytest.mark.parametrize(("model", "token", "message"), [
    ("meta-llama/Gated", "hf_wrong", "meta-llama/Gated is gated and this machine's token cannot read it"),
    ("meta-llama/Missing", None, "meta-llama/Missing does not exist on http://127.0.0.1"),
    ("Qwen/Qwen3-32B@v9", None, "Qwen/Qwen3-32B has no revision v9"),
])
def test_a_gated_missing_or_unknown_revision_is_one_clear_message(hub_env: Hub, monkeypatch: pytest.MonkeyPatch,
                                                                  model: str, token: str | None, message: str) -> None:
    _, config = fixture("llama-3.1-8b")
    hub_env.repos["meta-llama/Gated"] = repo_for(config, gated=True)
    if token:
        monkeypatch.setenv("HF_TOKEN", token)
    result = CliRunner().invoke(main, ["plan", model, "--preset", "h100"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("helm-rdma: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.output


def test_a_gated_repo_plans_with_the_right_token_and_the_chart_says_it_is_gated(hub_env: Hub,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    _, config = fixture("llama-3.1-8b")
    hub_env.repos["meta-llama/Gated"] = repo_for(config, gated=True)
    monkeypatch.setenv("HF_TOKEN", "hf_good")
    resolved = resolve(request(release="llama8", model="meta-llama/Gated"))
    model = resolved.values["model"]
    assert (model["name"], model["revision"], model["servedName"], model["gated"]) == (
        "meta-llama/Gated", hub_env.repos["meta-llama/Gated"].sha, "gated", True)


def test_offline_the_plan_comes_from_the_hugging_face_cache(hub_env: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    online = plan(model="deepseek-ai/DeepSeek-V3", preset="h100").plan
    before = len(hub_env.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    offline = plan(model="deepseek-ai/DeepSeek-V3", preset="h100")
    assert len(hub_env.requests) == before  # nothing asked of the Hub
    assert offline.plan.kv_bytes_per_token == online.kv_bytes_per_token
    assert offline.plan.weight_bytes == online.weight_bytes and offline.plan.nodes == online.nodes
    assert "unknown without the Hub's model info (offline)" in dict(offline.sources())["gated"]
    # Offline, the commit is the Hugging Face cache's snapshot the config came from (snapshots/<commit>/config.json,
    # huggingface_hub src/huggingface_hub/file_download.py _get_pointer_path, line 2052 at commit
    # ee0a4510f4bc15e26cb722be2efc2bdb01383ca0).
    assert offline.model.commit == hub_env.repos["deepseek-ai/DeepSeek-V3"].sha
    assert "the Hugging Face cache's snapshot" in dict(offline.sources())["revision"]
    with pytest.raises(HubRepoError, match="HF_HUB_OFFLINE=1 and the Hugging Face cache holds no config.json"):
        plan(model="Qwen/Qwen3-32B", preset="h100")


def test_an_unreachable_hub_exits_1_naming_the_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    result = CliRunner().invoke(main, ["plan", "Qwen/Qwen3-32B", "--preset", "h100"])
    assert result.exit_code == 1, result.output
    assert f"cannot reach the Hugging Face Hub at http://127.0.0.1:{port} to read Qwen/Qwen3-32B" in result.output
    # The catalog's models need no Hub at all.
    assert CliRunner().invoke(main, ["plan", "llama405b", "--preset", "h100"]).exit_code == 0


def test_an_architecture_it_does_not_know_names_the_field_and_nodes_is_the_way_out(hub_env: Hub) -> None:
    _, config = fixture("llama-3.1-8b")
    hub_env.repos["acme/Strange"] = repo_for({**config, "architectures": ["StrangeForCausalLM"]})
    hub_env.repos["acme/NoLayers"] = repo_for({k: v for k, v in config.items() if k != "num_hidden_layers"})
    refused = CliRunner().invoke(main, ["plan", "acme/Strange", "--preset", "h100"])
    assert refused.exit_code == 2
    assert 'config.json field "architectures" names StrangeForCausalLM' in refused.output
    assert "pass --nodes N" in refused.output
    with pytest.raises(UnsupportedModelError, match='field "num_hidden_layers" could not be read'):
        plan(model="acme/NoLayers", preset="h100")
    given = CliRunner().invoke(main, ["plan", "acme/Strange", "--preset", "h100", "--nodes", "2"])
    assert given.exit_code == 0, given.output
    assert re.search(r"^nodes +2 \(minimum 1\)$", given.output, re.M) and "not sized" in given.output


def test_a_hub_model_becomes_a_chart_that_serves_it_with_the_planned_nodes(hub_env: Hub, tmp_path: Path) -> None:
    resolved = resolve(request(release="qwen", preset="a100-v2", model="Qwen/Qwen3-30B-A3B@main"))
    v = resolved.values
    assert v["model"]["name"] == "Qwen/Qwen3-30B-A3B" and v["model"]["servedName"] == "qwen3-30b-a3b"
    assert v["model"]["gated"] is False and v["vllm"]["maxModelLen"] == 40960
    assert v["nodes"] == resolved.plan.nodes == 1
    assert v["probes"]["startupMinutes"] == resolved.plan.startup_minutes
    result = CliRunner().invoke(main, ["generate", "qwen", "--preset", "h100", "--model", "Qwen/Qwen3-32B",
                                       "--output-dir", str(tmp_path / "chart")])
    assert result.exit_code == 0, result.output
    values = (tmp_path / "chart" / "values.yaml").read_text()
    assert "name: Qwen/Qwen3-32B" in values and "servedName: qwen3-32b" in values
    readme = (tmp_path / "chart" / "README.md").read_text()
    assert "the Hugging Face repository `Qwen/Qwen3-32B@main`" in readme


def test_the_values_pin_the_commit_so_a_node_replaced_later_downloads_the_same_bytes(hub_env: Hub,
                                                                                    tmp_path: Path) -> None:
    # The commit is the Hub's model info `sha` for the revision (huggingface_hub hf_api.py, ModelInfo.sha; the
    # stand-in answers /api/models/{repo}/revision/{revision} as the Hub does); the chart's model directory and its
    # download are then keyed by it. A catalog alias is read without the Hub, so it keeps "main".
    import subprocess
    import sys

    from .rendering import render, serving_pod_specs
    from .test_fetch_model import SCRIPT, env_for

    repo = hub_env.repos["Qwen/Qwen3-32B"]
    first = repo.sha
    resolved = resolve(request(release="pinned", preset="h100", model="Qwen/Qwen3-32B"))
    assert resolved.values["model"]["revision"] == first
    assert dict(resolved.model.origins)["revision"] == f"main is commit {first} (the Hub's model info): the values pin it"
    assert resolve(request(release="llama405b")).values["model"]["revision"] == "main"
    [spec, *_] = serving_pod_specs(render(release="pinned", model="Qwen/Qwen3-32B"))
    args = list({c["name"]: c for c in spec["initContainers"]}["download-model"]["args"])
    assert args[args.index("--revision") + 1] == first and args[args.index("--dest") + 1].endswith(f"/{first}")
    # Later, main moves to another commit whose shard differs; a replaced node runs the same rendered container.
    shard = "model-00001-of-00002.safetensors"
    repo.commits[first] = dict(repo.files)
    repo.files = {**repo.files, shard: b"v" * 3000}
    repo.sha = "f" * 40
    args[args.index("--dest") + 1] = str(tmp_path / "node")
    args[args.index("--boot-volume-probe") + 1] = "/proc/version"
    run = subprocess.run([sys.executable, str(SCRIPT), *args], env=env_for(os.environ["HF_ENDPOINT"], tmp_path),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "node" / shard).read_bytes() == repo.commits[first][shard] != repo.files[shard]
    assert f"(commit {first})" in run.stderr


@pytest.fixture
def silent_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """HF_ENDPOINT at a real socket on 127.0.0.1 that accepts every connection and never answers, with a fresh cache."""
    accepted: list[socket.socket] = []
    stop = threading.Event()
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.1)

        def accept() -> None:
            while not stop.is_set():
                try:
                    accepted.append(server.accept()[0])
                except OSError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.delenv("HF_HUB_CACHE", raising=False)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        try:
            yield url
        finally:
            stop.set()
            thread.join()
            for conn in accepted:
                conn.close()


def test_a_silent_hub_fails_within_its_budget_with_one_line_naming_hf_endpoint(
        silent_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a budget huggingface_hub 2.4.0 (locks/runtime.txt) waits 10 s (constants.py line 37, HF_HUB_ETAG_TIMEOUT),
    # then 60 s per try (file_download.py line 89, _ETAG_RETRY_TIMEOUT) over 6 tries with backoff (utils/_http.py
    # lines 473-475): about 397 s. The budget bounds them all together.
    monkeypatch.setenv("HELM_RDMA_HUB_TIMEOUT", "1.5")
    started = time.monotonic()
    result = CliRunner().invoke(main, ["plan", "Qwen/Qwen3-32B", "--preset", "h100"])
    took = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert took < 1.5 + 5, took  # the budget, plus at most one of http_backoff's first waits (1 s) and the start
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert f"HF_ENDPOINT={silent_endpoint} did not answer within 1.5 s while reading Qwen/Qwen3-32B" in lines[0]
    assert "HELM_RDMA_HUB_TIMEOUT=SECONDS" in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]


def test_a_silent_hub_is_one_line_on_stderr_in_a_real_process(silent_endpoint: str) -> None:
    # huggingface_hub logs each retry to stderr through its own handler (utils/_http.py http_backoff, "Retrying in
    # 1s [Retry 1/5]"), which CliRunner does not capture: only a real process shows whether the failure is one line.
    env = {**os.environ, "HELM_RDMA_HUB_TIMEOUT": "3"}
    out = subprocess.run([sys.executable, "-m", "helm_rdma", "plan", "Qwen/Qwen3-32B", "--preset", "h100"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"HF_ENDPOINT={silent_endpoint}" in lines[0], out.stderr


def test_the_hub_budget_is_a_minute_unless_the_environment_says_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HELM_RDMA_HUB_TIMEOUT", raising=False)
    assert HubAccess.from_environ().budget == 60.0
    monkeypatch.setenv("HELM_RDMA_HUB_TIMEOUT", "90s")
    assert HubAccess.from_environ().budget == 90.0
    for bad in ("0", "-5", "nan", "inf", "soon", "7200"):
        monkeypatch.setenv("HELM_RDMA_HUB_TIMEOUT", bad)
        result = CliRunner().invoke(main, ["plan", "Qwen/Qwen3-32B", "--preset", "h100"])
        assert result.exit_code == 2, (bad, result.output)
        assert f"HELM_RDMA_HUB_TIMEOUT={bad!r}: expected the seconds" in result.output, result.output


def test_a_cached_model_still_plans_when_the_hub_goes_silent(hub_env: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    online = plan(model="Qwen/Qwen3-32B", preset="h100").plan
    with socket.socket() as server:  # the same cache, now behind an endpoint that never answers
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        monkeypatch.setenv("HELM_RDMA_HUB_TIMEOUT", "1")
        started = time.monotonic()
        again = plan(model="Qwen/Qwen3-32B", preset="h100").plan
    assert time.monotonic() - started < 1 + 5
    assert again.weight_bytes == online.weight_bytes and again.nodes == online.nodes


def _plan_in_a_fresh_process(**env: str) -> Any:
    """`helm-rdma plan` in its own process: huggingface_hub reads HF_ENDPOINT and HF_HOME when it is imported."""
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if not k.startswith("HF_")} | env
    return subprocess.run([sys.executable, "-c", "from helm_rdma.cli import main; main()", "plan",
                           "Qwen/Qwen2.5-72B-Instruct", "--preset", "h100"], env=environ, capture_output=True,
                          text=True, check=False, timeout=120)


# urllib.parse.urlsplit raises ValueError for "Invalid IPv6 URL", and SplitResult.port for a port out of range;
# huggingface_hub/constants.py splits HF_ENDPOINT when it is imported.
@pytest.mark.parametrize("endpoint", ["http://[::1", "http://127.0.0.1:99999", "huggingface.co"])
def test_an_hf_endpoint_that_is_not_a_url_exits_2_naming_it(endpoint: str) -> None:
    done = _plan_in_a_fresh_process(HF_ENDPOINT=endpoint)
    assert done.returncode == 2, done.stderr
    assert f"HF_ENDPOINT={endpoint!r}: not a URL" in done.stderr and "unexpected" not in done.stderr


def test_an_hf_home_that_is_not_a_directory_exits_1_naming_it() -> None:
    done = _plan_in_a_fresh_process(HF_HOME="/dev/null", HF_ENDPOINT="http://127.0.0.1:9")
    assert done.returncode == 1, done.stderr
    assert "HF_HOME: /dev/null/" in done.stderr and "Not a directory" in done.stderr, done.stderr
    assert "unexpected" not in done.stderr


@pytest.mark.parametrize("name", ["HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"])
def test_a_hub_timeout_setting_that_is_not_whole_seconds_is_named(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # huggingface_hub reads both with int() when it is imported (constants.py lines 310-314): a bare ValueError.
    monkeypatch.setenv(name, "abc")
    result = CliRunner().invoke(main, ["plan", "Qwen/Qwen3-32B", "--preset", "h100"])
    assert result.exit_code == 2, result.output
    assert f"{name}='abc': huggingface_hub expects a whole number of seconds" in result.output
    assert "unexpected" not in result.output
