"""Commands that work on charts and values, with no cluster: generate, template, doctor, plan, presets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..helmenv import HelmEnv
from ..valuesources import ValueSources
from .base import CHART_RELEASE, _chart_options, _helm_args, _namespace_option, _notice, _preset_option, main


@main.command()
@click.argument("release", type=CHART_RELEASE)
@_chart_options
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory to write the chart into.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory that holds a chart generate "
                                            "wrote before (never one with .git, nor other files); the chart's "
                                            "version continues the replaced one's.")
@click.option("--package", is_flag=True, help="Also run helm package: NAME-VERSION.tgz beside the chart directory, "
                                              "and print the helm push line.")
def generate(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
             sources: ValueSources, output: Path, force: bool, package: bool) -> None:
    """Write a complete chart for RELEASE into a directory (for GitOps: render it later with plain helm)."""
    from ..commands.generate import generate as run

    result = run(release=release, preset=preset, model=model, nodes=nodes, max_model_len=max_model_len,
                 sources=sources, output=output, force=force, package=package)
    _notice(result.notice)
    p = result.plan
    click.echo(f"wrote {result.path} ({len(result.files)} files): {p.model} on {p.nodes} x {p.preset}, "
               f"TP {p.tensor_parallel_size} x PP {p.pipeline_parallel_size}")
    if result.package is not None:
        click.echo(f"packaged {result.package.path} (chart {result.package.name} version {result.package.version})")
        click.echo("publish it (OCI Registry: helm registry login REGION.ocir.io -u 'NAMESPACE/USER' first):")
        click.echo(f"  {result.package.push_command()}")


@main.command()
@click.argument("release", type=CHART_RELEASE)
@_chart_options
@_namespace_option
@_helm_args
def template(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
             sources: ValueSources, namespace: str | None, helm_args: tuple[str, ...]) -> None:
    """Render the chart of RELEASE with `helm template`; arguments after -- go to helm."""
    from ..commands.template import template as run

    result = run(release=release, preset=preset, model=model, nodes=nodes, max_model_len=max_model_len,
                 sources=sources,
                 namespace=HelmEnv.from_environ(namespace=namespace).namespace, helm_args=helm_args)
    _notice(result.notice)
    sys.stdout.write(result.manifests)


@main.command()
@click.argument("release", required=False, type=CHART_RELEASE)
@_chart_options
@click.option("--output", "-o", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def doctor(release: str | None, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
           sources: ValueSources, fmt: str) -> None:
    """Check values before anything is applied: NCCL look-alikes, device lists, TP x PP, backend and image, host
    ports, the model's token. Exit 1 on errors, 0 with warnings only. RELEASE names the model as for install."""
    from ..commands.doctor import doctor as run

    result = run(release=release or (model or "llama405b"), preset=preset, model=model, nodes=nodes,
                 max_model_len=max_model_len, sources=sources)
    if fmt == "json":
        click.echo(json.dumps({"findings": [f._asdict() for f in result.findings],
                               "summary": {"errors": result.errors, "warnings": result.warnings,
                                           "passed": not result.errors}}, indent=2))
    else:
        for finding in result.findings:
            click.echo(finding.line())
        click.echo(f"{result.errors} error(s), {result.warnings} warning(s)")
    if result.errors:
        sys.exit(1)


@main.command()
@click.argument("model")
@_preset_option
@click.option("--nodes", type=click.IntRange(1, 64), help="Check this many nodes instead of picking the minimum.")
@click.option("--max-model-len", type=click.IntRange(1), help="Context length to plan for; default: the model's.")
@click.option("--gpu-memory-utilization", type=click.FloatRange(0.05, 1.0), default=0.9, show_default=True)
@click.option("--output", "-o", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def plan(model: str, preset: str, nodes: int | None, max_model_len: int | None, gpu_memory_utilization: float,
         fmt: str) -> None:
    """How many nodes of a preset MODEL needs at TP = GPUs per node, and how many full-length sequences fit."""
    from ..commands.plan import plan as run
    from ..commands.plan import plan_table

    result = run(model=model, preset=preset, nodes=nodes, max_model_len=max_model_len,
                 gpu_memory_utilization=gpu_memory_utilization)
    click.echo(json.dumps(result.to_dict(), indent=2) if fmt == "json" else plan_table(result))


@main.group(invoke_without_command=True)
@click.option("--output", "-o", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def presets(ctx: click.Context, fmt: str) -> None:
    """List the shape presets; `presets show NAME` prints one."""
    if ctx.invoked_subcommand is not None:
        return
    from ..commands.presets import list_presets

    rows = list_presets()
    if fmt == "json":
        click.echo(json.dumps([r._asdict() for r in rows], indent=2))
        return
    header = ("PRESET", "SHAPE", "GPUS", "RDMA", "BUSBW MIN GB/s", "IMAGE")
    table = [header] + [(r.name, r.shape, r.gpus, r.rdma, f"{r.busbw_threshold_gbps:g}", r.image) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@presets.command("show")
@click.argument("name")
@click.option("--output", "-o", "fmt", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True)
def presets_show(name: str, fmt: str) -> None:
    """Print one preset, with the sources of its values."""
    from ..commands.presets import show_preset

    data = show_preset(name)
    import yaml

    click.echo(json.dumps(data, indent=2) if fmt == "json" else yaml.safe_dump(data, sort_keys=False, width=1000))
