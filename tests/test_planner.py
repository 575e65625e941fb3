from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from helm_rdma.errors import ParallelismError, TooFewNodesError, UnknownModelError
from helm_rdma.sizing.catalog import get_model, model_names
from helm_rdma.sizing.planner import Plan, Sizing, kv_bytes_per_token, plan_model
from helm_rdma.sizing.presets import load_preset, preset_names


def plan(model: str, preset: str, **kw: Any) -> Plan:
    return plan_model(model=get_model(model), preset=load_preset(preset), sizing=Sizing(**kw))


def test_catalog_has_the_models_users_ask_for() -> None:
    assert {"llama405b", "llama405b-fp8", "llama70b", "deepseek-r1", "qwen3-235b"} <= set(model_names())
    assert get_model("llama405b").repo == "meta-llama/Llama-3.1-405B-Instruct"


def test_unknown_model_lists_the_catalog() -> None:
    with pytest.raises(UnknownModelError, match='unknown model "gpt5"; known: deepseek-r1, llama405b'):
        get_model("gpt5")


@pytest.mark.parametrize(("model", "preset", "nodes"), [
    ("llama405b", "h100", 2),
    ("llama405b", "a100-v2", 2),
    ("llama405b-fp8", "h100", 1),
])
def test_smallest_group_that_holds_the_model(model: str, preset: str, nodes: int) -> None:
    p = plan(model, preset)
    assert p.nodes == p.min_nodes == nodes
    assert (p.tensor_parallel_size, p.pipeline_parallel_size) == (8, nodes)
    assert p.full_length_sequences >= 1


def test_405b_bf16_needs_at_least_three_gpu4_nodes() -> None:
    assert plan("llama405b", "gpu4").nodes >= 3


@pytest.mark.parametrize("preset", preset_names())
def test_70b_fits_one_node_of_any_preset(preset: str) -> None:
    assert plan("llama70b", preset).nodes == 1


def test_kv_cache_per_token_follows_the_architecture() -> None:
    # 2 (K, V) x 126 layers x 8 KV heads x 128 head dim x 2 bytes
    assert kv_bytes_per_token(get_model("llama405b"), tp=8) == 2 * 126 * 8 * 128 * 2
    # Qwen3 has 4 KV heads: at TP 8 each is held twice.
    assert kv_bytes_per_token(get_model("qwen3-235b"), tp=8) == 2 * 94 * 8 * 128 * 2
    # MLA: one 576-wide latent per layer, on every TP rank.
    assert kv_bytes_per_token(get_model("deepseek-r1"), tp=8) == 61 * (512 + 64) * 2 * 8


def test_too_few_nodes_names_the_minimum() -> None:
    with pytest.raises(TooFewNodesError, match=r"llama405b needs at least 2 node\(s\) of preset h100, got nodes=1.*--nodes 2"):
        plan("llama405b", "h100", nodes=1)


def test_more_nodes_than_needed_fit_more_sequences() -> None:
    two, three = plan("llama405b", "h100"), plan("llama405b", "h100", nodes=3)
    assert three.nodes == 3 and three.min_nodes == 2
    assert three.full_length_sequences > two.full_length_sequences


def test_shorter_context_can_need_fewer_nodes() -> None:
    # 70B with full multi-head attention (64 KV heads): 2.6 MB of KV cache per token, 343 GB per full-length
    # sequence, which does not fit beside the weights on one gpu4 node; 8192 tokens do.
    mha = replace(get_model("llama70b"), kv_heads=64)
    full = plan_model(model=mha, preset=load_preset("gpu4"))
    short = plan_model(model=mha, preset=load_preset("gpu4"), sizing=Sizing(max_model_len=8192))
    assert short.max_model_len == 8192 and (short.nodes, full.nodes) == (1, 2)


def test_tp_that_does_not_divide_the_heads_is_refused() -> None:
    with pytest.raises(ParallelismError, match="tensor parallel size 6 does not split its 128 attention heads"):
        plan("llama405b", "h100", tensor_parallel_size=6)
    odd = replace(get_model("llama70b"), kv_heads=3)
    with pytest.raises(ParallelismError, match="KV heads"):
        plan_model(model=odd, preset=load_preset("h100"))


def test_the_barrier_waits_out_a_whole_download_and_vllms_timeout_covers_only_the_load() -> None:
    """A node whose cache is empty can finish its download a whole download after one whose cache is full, so the
    group's barrier waits the plan's download time (the first-token estimate's rate, doubled, plus a fixed part).
    vLLM's --distributed-timeout-seconds is also every collective's timeout (vllm/distributed/parallel_state.py,
    init_distributed_environment hands it to torch.distributed.init_process_group; vllm/config/parallel.py,
    ParallelConfig.distributed_timeout_seconds: None means torch's 600 s for NCCL), so it covers only the load."""
    from helm_rdma.sizing.firsttoken import Rates, first_token
    from helm_rdma.sizing.planner import GB, LOAD_GB_PER_SECOND

    spec = get_model("llama405b")
    p = plan("llama405b", "h100")
    download = first_token(spec, rates=Rates(), boot_volume_gb=200).ways[0].download_seconds  # no group: whole
    assert download > 600  # the download alone outlasts vLLM's default wait for its peers
    assert p.download_minutes * 60 >= 2 * download and p.download_minutes * 60 < 2 * download + 12 * 60
    assert p.download_reason.endswith(f"({download / 60:.1f} min)")
    load = spec.weight_bytes / (LOAD_GB_PER_SECOND * GB)
    assert p.distributed_timeout_seconds == int(-(-load // 1))  # the load, never the download on top
    assert plan("llama70b", "h100").distributed_timeout_seconds >= 600  # never below vLLM's default


def test_each_node_of_llama405b_on_h100_fetches_and_reads_half_the_checkpoint() -> None:
    """TP 8 x PP 2 on two 8-GPU nodes: each node runs one stage, 63 of the 126 layers (vLLM's get_pp_indices), and
    fetches and reads only its shards (charts/vllm-rdma/files/pipeline_stages.py); the time to first token halves."""
    from helm_rdma.commands.plan import plan as plan_command
    from helm_rdma.commands.plan import plan_table

    report = plan_command(model="llama405b", preset="h100")
    ours, whole = report.first_token.ways[:2]
    assert (ours.name, whole.name) == ("helm-rdma", "whole checkpoint")
    assert round(whole.download_bytes / 10**9) == 812 and ours.download_bytes == whole.download_bytes // 2
    assert ours.read_bytes == whole.read_bytes // 2
    assert ours.seconds == pytest.approx(whole.seconds / 2)
    text = plan_table(report)
    assert "download per node      406 GB, the shards of the node's pipeline stages (63 of 126 layers on the " \
           "busiest node; the whole checkpoint 812 GB)" in text
    assert "  helm-rdma         local NVMe RAID, the node's pipeline stages  406 GB    406 GB  6m46s" in text


@pytest.mark.parametrize(("sets", "why"), [
    (("model.storage.type=pvc", "model.storage.claimName=models"), "pvc storage: one claim holds the model"),
    (("distributed.backend=ray", "image.tag=v0.17.1", "distributed.ray.authTokenSecret.name=t"),
     "Ray with 3 nodes: vLLM ranks the nodes after the leader by their Ray node ids"),
    (('vllm.extraArgs[0]=--speculative-config={"method":"ngram"}',), "speculative decoding (--speculative-config"),
    # vLLM's FlexibleArgumentParser reads "_" as "-" and dotted sub-keys (utils/argparse_utils.py).
    (('vllm.extraArgs[0]=--speculative_config={"method":"ngram"}',), "speculative decoding (--speculative-config"),
    (("vllm.extraArgs[0]=--speculative-config.method=ngram",), "speculative decoding (--speculative-config"),
])
def test_plan_says_why_every_node_fetches_the_whole_checkpoint(sets: tuple[str, ...], why: str) -> None:
    from helm_rdma.commands.plan import plan_table, plan_values

    from .rendering import request

    nodes = 3 if any("ray" in s for s in sets) else None
    report = plan_values(request(sets=sets, nodes=nodes))
    assert report.first_token.share.fraction == 1.0 and report.first_token.share.why_whole.startswith(why)
    assert [w.name for w in report.first_token.ways] == ["helm-rdma", "whole repository"]
    assert f"the whole checkpoint: {why}" in plan_table(report)


def test_a_quantized_checkpoint_is_split_only_when_vllm_tracks_its_weights() -> None:
    """default_loader.py: the check that every weight was loaded is on by default only without quantization;
    model_loader_extra_config {"enable_weights_track": true} turns it on."""
    from helm_rdma.commands.plan import plan_values

    from .rendering import request

    report = plan_values(request(model="llama405b-fp8", nodes=2))
    assert report.first_token.share.why_whole.startswith("a quantized model")
    tracked = plan_values(request(model="llama405b-fp8", nodes=2, sets=(
        'vllm.extraArgs[0]=--model-loader-extra-config={"enable_weights_track":true}',)))
    assert tracked.first_token.share.fraction == 0.5
    quantizing = plan_values(request(nodes=2, sets=("vllm.extraArgs[0]=--quantization", "vllm.extraArgs[1]=fp8")))
    assert quantizing.first_token.share.why_whole.startswith("a quantized model")


def test_a_one_node_group_fetches_the_whole_checkpoint_because_it_runs_every_stage() -> None:
    """The chart passes no stage arguments to a one-node group's download (_containers.tpl, "stages" (gt nodes 1)):
    that is the reason, whatever the model's quantization."""
    from helm_rdma.commands.plan import plan_values

    from .rendering import request

    report = plan_values(request(model="llama405b-fp8", nodes=1))
    assert report.first_token.share.fraction == 1.0
    assert report.first_token.share.why_whole == "one node runs every stage"


def test_plan_shows_what_max_replicas_cost_in_nodes_and_how_long_one_more_group_takes() -> None:
    """With autoscaling on, `plan` (the values install would use) prices autoscaling.maxReplicas in nodes and GPUs,
    and says how long a group the scaler adds takes to serve: its nodes' download and load (the first-token estimate;
    every node of a group fetches and reads in parallel), bounded by the chart's download and start-up budgets."""
    import json

    from click.testing import CliRunner

    from helm_rdma.cli import main
    from helm_rdma.commands.plan import plan_table, plan_values
    from helm_rdma.sizing.firsttoken import duration

    from .rendering import request

    sets = ("autoscaling.enabled=true", "autoscaling.minReplicas=2", "autoscaling.maxReplicas=5")
    report = plan_values(request(sets=sets))
    s, ours = report.scaling, report.first_token.ways[0]
    assert s is not None and (s.min_groups, s.max_groups, s.nodes_per_group) == (2, 5, report.plan.nodes)
    assert (s.min_nodes, s.max_nodes) == (2 * report.plan.nodes, 5 * report.plan.nodes)
    assert s.cold_seconds == ours.download_seconds + ours.read_seconds and s.load_seconds == ours.read_seconds
    assert s.budget_minutes == report.plan.download_minutes + report.plan.startup_minutes
    assert s.cold_seconds < s.budget_minutes * 60  # the chart's budgets allow the estimate
    table = plan_table(report)
    assert "autoscaling: 2 to 5 groups of 2 node(s) = 4 to 10 h100 nodes (80 GPUs at the most)" in table
    assert f"one group more, once its nodes are up: {duration(s.cold_seconds)}" in table
    assert plan_values(request()).scaling is None and "autoscaling:" not in plan_table(plan_values(request()))
    out = CliRunner().invoke(main, ["plan", "llama405b", "--preset", "h100", "--set", ",".join(sets), "-o", "json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["autoscaling"]["max_nodes"] == 10
