"""Commands that work on charts and values, with no cluster: generate, template, doctor, plan, presets."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from helm_rdma.cli.base import (
    CHART_RELEASE,
    _chart_options,
    _helm_args,
    _namespace_option,
    _notice,
    _preset_option,
    _values_options,
    main,
)
from helm_rdma.cli.cloud import _oci_auth_options
from helm_rdma.cli.output import FORMATS, columns, emit, flat_rows, output_option
from helm_rdma.cli.params import MODEL, PRESET, Finite
from helm_rdma.helmenv import HelmEnv
from helm_rdma.sizing.firsttoken import DEFAULT_NETWORK_GBS, DEFAULT_NVME_GBS

if TYPE_CHECKING:
    from helm_rdma.commands.doctor import DoctorResult
    from helm_rdma.oci.clients import OciAuth
    from helm_rdma.resolve.values import ChartRequest
    from helm_rdma.resolve.valuesources import ValueSources

PLAN_RELEASE = "plan"  # the release name plan resolves values for; no object is named from it


@main.command(examples=[
    ("a chart for a GitOps repository; Argo CD or Flux render it with plain helm",
     "generate llama405b --preset h100 --output-dir deploy/llama405b"),
    ("your choices in a values file of yours, beside the chart: the chart records it",
     "generate llama405b --preset h100 -f deploy/llama405b-values.yaml --output-dir deploy/llama405b --force"),
    ("regenerate (new helm-rdma, new preset facts): the recorded values file is read again; a hand edit stops it",
     "generate llama405b --preset h100 --output-dir deploy/llama405b --force"),
])
@click.argument("release", type=CHART_RELEASE)
@_chart_options
@click.option("--output-dir", "output_dir", type=click.Path(), metavar="DIR",
              help="Directory to write the chart into (required).")
@click.option("-o", "--output", "legacy_output", type=click.Path(), metavar="DIR",
              help="Deprecated spelling of --output-dir (-o will name an output format, as in the other commands).")
@click.option("--force", is_flag=True, help="Regenerate a chart generate wrote before: its own files are rewritten "
                                            "and the values files it records are kept; a hand edit of one of its "
                                            "files, or any other file in the directory, stops the run (exit 2, "
                                            "nothing changed; never a directory with .git); the chart's version "
                                            "continues the replaced one's.")
@click.option("--discard-edits", is_flag=True, help="With --force, overwrite the files generate wrote even where "
                                                    "they were edited by hand since (a file you added still stops "
                                                    "the run).")
@click.option("--pin-digests", is_flag=True, help="Ask each image's registry for the digest its tag points at and "
                                                  "write it into values.yaml (image.digest and the like), so the "
                                                  "chart always runs those exact images.")
@click.option("--package", is_flag=True, help="Also run helm package: NAME-VERSION.tgz beside the chart directory, "
                                              "and print the helm push line.")
def generate(request: ChartRequest, output_dir: str | None, legacy_output: str | None, force: bool,
             discard_edits: bool, pin_digests: bool, package: bool) -> None:
    """Write RELEASE's complete chart into a directory, for GitOps.

    The directory holds Chart.yaml, the templates, a commented values.yaml, values.schema.json and a README, and
    renders later with plain helm (Argo CD, Flux): no plugin and no Python. It is rendered with helm first (when
    one is installed) and written atomically; --package also writes the .tgz to push to a registry. The chart is
    the tool's: keep your choices in a values file of your own and pass it with -f; the chart records it, and a
    regeneration without -f reads it again. --set and the other flags apply to one run: a regeneration lists the
    values that change, and refuses to drop those it has that name something outside the chart (the model, Secret
    names, API authentication, clusterNetwork, ...).
    """
    from helm_rdma.commands.generate import generate as run

    if discard_edits and not force:
        raise click.UsageError("--discard-edits overwrites an existing chart: give it with --force")
    result = run(request, output=_output_dir(output_dir, legacy_output), force=force, discard_edits=discard_edits,
                 pin_digests=pin_digests, package=package)
    _notice(result.notice)
    p = result.plan
    click.echo(f"wrote {result.path} ({len(result.files)} files): {p.model} on {p.nodes} x {p.preset}, "
               f"TP {p.tensor_parallel_size} x PP {p.pipeline_parallel_size}")
    if result.package is not None:
        click.echo(f"packaged {result.package.path} (chart {result.package.name} version {result.package.version})")
        click.echo("publish it (OCI Registry: helm registry login REGION.ocir.io -u 'NAMESPACE/USER' first):")
        click.echo(f"  {result.package.push_command()}")


def _output_dir(output_dir: str | None, legacy_output: str | None) -> Path:
    """--output-dir, or the deprecated -o DIR (with a warning); -o json|yaml|table is refused as ambiguous."""
    if output_dir is not None and legacy_output is not None:
        raise click.UsageError("give the chart's directory once, with --output-dir (-o is its deprecated spelling)")
    if legacy_output is not None:
        if legacy_output.strip().lower() in FORMATS:  # the formats -o names in the other commands
            raise click.BadParameter(
                f'"{legacy_output}" is ambiguous: -o names an output format in the other commands, and generate '
                f"prints no {legacy_output.strip().lower()}; to write the chart into a directory of that name, use "
                f"--output-dir ./{legacy_output}", param_hint="-o")
        click.echo(f"helm-rdma: warning: generate -o DIR is deprecated and will name an output format, as in the "
                   f"other commands; use --output-dir {legacy_output}", err=True)
        output_dir = legacy_output
    if output_dir is None:
        raise click.UsageError("Missing option '--output-dir': the directory to write the chart into")
    if not output_dir.strip():
        raise click.BadParameter("empty path; name the directory to write the chart into",
                                 param_hint="'--output-dir'" if legacy_output is None else "'-o'")
    return Path(output_dir)


@main.command(examples=[
    ("the manifests of Llama 3.1 405B on two BM.GPU.H100.8 nodes", "template llama405b --preset h100"),
    ("StatefulSets instead of a LeaderWorkerSet, and SR-IOV RDMA",
     "template llama405b --preset gpu4 --set workload.kind=StatefulSet --set rdma.mode=sriov"),
    ("only the Service, with helm's own flags after --",
     "template llama405b --preset h100 -- --show-only templates/service.yaml"),
])
@click.argument("release", type=CHART_RELEASE)
@_chart_options
@_namespace_option
@_helm_args
def template(request: ChartRequest, namespace: str | None, helm_args: tuple[str, ...]) -> None:
    """Render the chart of RELEASE with helm template.

    The chart is generated into a temporary directory; arguments after -- go to helm template, except those that
    would change the values or the manifests (the --set family, -f, --post-renderer, -n, ...): those are refused
    (exit 2), naming helm-rdma's own way to say them.
    """
    from helm_rdma.commands.template import template as run

    result = run(request, namespace=HelmEnv.from_environ(namespace=namespace).namespace, helm_args=helm_args)
    sys.stdout.write(result.manifests)


@main.command(examples=[
    ("check the values install would use, from a values file", "doctor llama405b --preset h100 -f values.yaml"),
    ("a variable that looks like NCCL's but is not read by it is an error",
     "doctor --preset h100 --set nccl.settings.NCCL_TIMEOUT=1800"),
])
@click.argument("release", required=False, type=CHART_RELEASE)
@_chart_options
@_namespace_option
@click.option("--cluster", is_flag=True,
              help="Also check the live cluster (kube context and namespace as helm's): LWS, nodes, GPU and RDMA "
                   "resources, Multus networks, Pod Security, Secrets, other releases on the same cluster network, "
                   "and the CRDs of the monitoring and route objects.")
@_oci_auth_options
@output_option()
def doctor(request: ChartRequest, namespace: str | None, cluster: bool, auth: OciAuth, fmt: str) -> None:
    """Check values, and with --cluster the cluster, before install.

    It looks for NCCL look-alikes, device lists, TP x PP, backend and image, host ports, storage and the model's
    token; with --cluster, the cluster the release would run on too, and under hostNetwork with more than one node
    the OCI ingress rules that open the group's own ports to more than the group (the GPU nodes' subnet security
    lists and NSGs, read from OCI with the --auth and --oci-* sign-in). Exit 1 on errors, 0 with warnings only.
    RELEASE names the model as for install.
    """
    from helm_rdma.commands.doctor import doctor as run

    result = run(request, cluster=HelmEnv.from_environ(namespace=namespace) if cluster else None, oci=auth)
    emit(result, fmt, table=lambda: _doctor_table(result))
    if result.errors:
        sys.exit(1)


@main.command(examples=[
    ("how many BM.GPU.H100.8 nodes Llama 3.1 405B needs, and how many full-length sequences fit",
     "plan llama405b --preset h100"),
    ("three BM.GPU4.8 nodes at a 32k context, as JSON",
     "plan llama405b --preset gpu4 --nodes 3 --max-model-len 32768 -o json"),
    ("any model on the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE and HELM_RDMA_HUB_TIMEOUT apply)",
     "plan Qwen/Qwen2.5-72B-Instruct --preset h100"),
    ("the time to first token at the download rate you measured",
     "plan llama405b --preset h100 --network-gbs 2.5"),
    ("with four LoRA adapters of rank 64 in a batch (vllm.lora.maxLoras, vllm.lora.maxRank)",
     "plan llama70b --preset a100-v2 --max-lora-rank 64 --max-loras 4"),
])
@click.argument("model", type=MODEL)
@_preset_option
@click.option("--nodes", type=click.IntRange(1, 64), help="Check this many nodes instead of picking the minimum.")
@click.option("--max-model-len", type=click.IntRange(1), help="Context length to plan for; default: the model's.")
@_values_options
@click.option("--gpu-memory-utilization", type=Finite(0.05, 1.0), default=None,
              help="vllm.gpuMemoryUtilization (default: the values', 0.9 unless -f or --set says otherwise).")
@click.option("--network-gbs", type=Finite(0.001, 1000), default=DEFAULT_NETWORK_GBS, show_default=True,
              help="Download rate of one node from the Hub or object storage, GB/s, for the time to first token.")
@click.option("--nvme-gbs", type=Finite(0.001, 1000), default=DEFAULT_NVME_GBS, show_default=True,
              help="Read and write rate of a node's NVMe RAID, GB/s, for the time to first token.")
@click.option("--max-lora-rank", type=click.IntRange(1), help="Plan for LoRA adapters up to this rank "
              "(vllm.lora.maxRank): vLLM reserves their memory on every GPU.")
@click.option("--max-loras", type=click.IntRange(1), help="LoRA adapters in one batch (vllm.lora.maxLoras; "
              "default 1 with --max-lora-rank).")
@output_option()
def plan(model: str, preset: str, nodes: int | None, max_model_len: int | None, sources: ValueSources,
         gpu_memory_utilization: float | None, network_gbs: float, nvme_gbs: float, max_lora_rank: int | None,
         max_loras: int | None, fmt: str) -> None:
    """Size MODEL on a preset: nodes, TP x PP, sequences that fit.

    MODEL is a catalog alias or a Hugging Face repository id ORG/NAME[@REVISION], whose config.json and safetensors
    index are read through the Hugging Face cache. TP is the GPUs of a node; the plan shows the weights, the KV
    cache per token, the usable memory per node, the smallest number of nodes, how many full-length sequences fit,
    the bytes each node downloads and reads and how long that takes, and where each figure came from; with
    --max-lora-rank, the memory vLLM reserves for LoRA adapters too. -f and the --set family apply as they do for
    install (preset < model < -f files < --set < flags), so the plan is the one install would use.
    """
    from helm_rdma.commands.plan import lora_option, plan_table, plan_values
    from helm_rdma.resolve.values import ChartRequest
    from helm_rdma.sizing.firsttoken import Rates

    vllm: dict[str, Any] = {}
    if gpu_memory_utilization is not None:
        vllm["gpuMemoryUtilization"] = gpu_memory_utilization
    lora = lora_option(max_rank=max_lora_rank, max_loras=max_loras)
    if lora is not None:
        vllm["lora"] = {"enabled": True, "maxRank": lora.max_rank, "maxLoras": lora.max_loras}
    request = ChartRequest(release=PLAN_RELEASE, preset=preset, model=model, nodes=nodes, max_model_len=max_model_len,
                           sources=sources, flag_values={"vllm": vllm} if vllm else None)
    result = plan_values(request, rates=Rates(network_gbs=network_gbs, nvme_gbs=nvme_gbs))
    emit(result, fmt, table=lambda: plan_table(result))


@main.group(invoke_without_command=True, examples=[
    ("the shapes, their GPUs, RDMA and bandwidth floor", "presets"),
    ("the same as JSON", "presets -o json"),
    ("one preset, with the source of every value", "presets show h100"),
])
@output_option()
@click.pass_context
def presets(ctx: click.Context, fmt: str) -> None:
    """List the shape presets; `presets show NAME` prints one."""
    if ctx.invoked_subcommand is not None:
        return
    from helm_rdma.commands.presets import list_presets

    rows = list_presets()
    header = ("PRESET", "SHAPE", "GPUS", "RDMA", "BUSBW MIN GB/s", "IMAGE")
    emit(rows, fmt, table=lambda: columns([header, *((r.name, r.shape, r.gpus, r.rdma, f"{r.busbw_threshold_gbps:g}",
                                                      r.image) for r in rows)]))


@presets.command("show", examples=[
    ("the H100 preset, with the source of every value", "presets show h100"),
    ("the MI300X preset as JSON", "presets show mi300x -o json"),
])
@click.argument("name", type=PRESET)
@output_option(default="yaml")
def presets_show(name: str, fmt: str) -> None:
    """Print one preset, with the source of every value.

    The table has one KEY VALUE line per value, keys dotted as in --set.
    """
    from helm_rdma.commands.presets import show_preset

    data = show_preset(name)
    emit(data, fmt, table=lambda: columns([("KEY", "VALUE"), *flat_rows(data)]))


def _doctor_table(result: DoctorResult) -> str:
    lines = [finding.line() for finding in result.findings]
    if result.cluster is not None:
        c = result.cluster
        lines.append(f"cluster: kube context {c.context} ({c.server}), namespace {c.namespace}, release {c.release}")
        lines += [check.line() for check in c.checks]
    elif result.cluster_note:
        lines.append(f"cluster: {result.cluster_note}")
    lines.append(f"{result.errors} error(s), {result.warnings} warning(s)")
    return "\n".join(lines)
