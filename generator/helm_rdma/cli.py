"""The helm-rdma command line: parse options, call one core function, turn a HelmRdmaError into an exit code."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import HelmRdmaError
from .helmenv import HelmEnv


class Cli(click.Group):
    """A click group that reports our errors as `helm-rdma: error: ...` with their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HelmRdmaError as exc:
            click.echo(f"helm-rdma: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


def _notice(text: str | None) -> None:
    if text:
        click.echo(f"helm-rdma: {text}", err=True)


def _preset_option(func: Any) -> Any:
    return click.option("--preset", "-p", required=True, help="Shape preset (see `helm-rdma presets`).")(func)


def _chart_options(func: Any) -> Any:
    options = [
        click.option("--model", "-m", help="Catalog model alias; defaults to RELEASE when that is an alias."),
        click.option("--nodes", type=click.IntRange(1, 64), help="Nodes per group; default: the planner's minimum."),
        click.option("--max-model-len", type=click.IntRange(1), help="Context length; default: the model's."),
        click.option("-f", "--values", "value_files", multiple=True, type=click.Path(path_type=Path),
                     help="A values file, applied after the preset and the model (repeatable, in order)."),
        click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
                     help="Set a value, after the -f files (repeatable), e.g. --set vllm.maxModelLen=32768."),
        _preset_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _namespace_option(func: Any) -> Any:
    return click.option("-n", "--namespace", default=None,
                        help="Namespace of the release (default: $HELM_NAMESPACE, as helm sets it for plugins).")(func)


def _helm_args(func: Any) -> Any:
    return click.argument("helm_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- HELM_ARGS]...")(func)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="helm-rdma")
def main() -> None:
    """Serve one large model with vLLM across RDMA-connected OCI GPU nodes, as a Helm chart."""


@main.command()
@click.argument("release")
@_chart_options
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="Directory to write the chart into.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
def generate(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
             value_files: tuple[Path, ...], set_values: tuple[str, ...], output: Path, force: bool) -> None:
    """Write a complete chart for RELEASE into a directory (for GitOps: render it later with plain helm)."""
    from .commands.generate import generate as run

    result = run(release=release, preset=preset, model=model, nodes=nodes, max_model_len=max_model_len,
                 value_files=value_files, set_values=set_values, output=output, force=force)
    _notice(result.notice)
    p = result.plan
    click.echo(f"wrote {result.path} ({len(result.files)} files): {p.model} on {p.nodes} x {p.preset}, "
               f"TP {p.tensor_parallel_size} x PP {p.pipeline_parallel_size}")


@main.command()
@click.argument("release")
@_chart_options
@_namespace_option
@_helm_args
def template(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
             value_files: tuple[Path, ...], set_values: tuple[str, ...], namespace: str | None,
             helm_args: tuple[str, ...]) -> None:
    """Render the chart of RELEASE with `helm template`; arguments after -- go to helm."""
    from .commands.template import template as run

    result = run(release=release, preset=preset, model=model, nodes=nodes, max_model_len=max_model_len,
                 value_files=value_files, set_values=set_values,
                 namespace=HelmEnv.from_environ(namespace=namespace).namespace, helm_args=helm_args)
    _notice(result.notice)
    sys.stdout.write(result.manifests)


def _deploy_command(upgrade: bool) -> Any:
    verb = "upgrade" if upgrade else "install"
    doc = (
        "Upgrade RELEASE, or install it if it is absent (helm upgrade --install)."
        if upgrade else
        "Install RELEASE: generate its chart and run helm install (fails if the release exists, like helm)."
    ) + (
        " The chart is kept under $HELM_CACHE_HOME/rdma/NAMESPACE/RELEASE. --dry-run renders the manifests and needs"
        " no cluster. Arguments after -- go to helm."
    )

    @click.argument("release")
    @_chart_options
    @_namespace_option
    @click.option("--wait", is_flag=True, help="Wait until the pods are ready (helm --wait).")
    @click.option("--timeout", default=None, metavar="DURATION",
                  help="helm --timeout (default 60m: a large model takes long to load).")
    @click.option("--dry-run", is_flag=True, help="Render the manifests instead, with no cluster.")
    @click.option("--atomic", "--rollback-on-failure", "atomic", is_flag=True,
                  help="Roll back on failure (helm 3 --atomic, helm 4 --rollback-on-failure).")
    @_helm_args
    def command(release: str, preset: str, model: str | None, nodes: int | None, max_model_len: int | None,
                value_files: tuple[Path, ...], set_values: tuple[str, ...], namespace: str | None, wait: bool,
                timeout: str | None, dry_run: bool, atomic: bool, helm_args: tuple[str, ...]) -> None:
        from .commands.deploy import deploy

        result = deploy(upgrade=upgrade, release=release, preset=preset, model=model, nodes=nodes,
                        max_model_len=max_model_len, value_files=value_files, set_values=set_values,
                        env=HelmEnv.from_environ(namespace=namespace), wait=wait, timeout=timeout,
                        dry_run=dry_run, atomic=atomic, helm_args=helm_args)
        _notice(result.notice)
        sys.stdout.write(result.output)
        if result.chart is not None:
            click.echo(f"helm-rdma: chart kept in {result.chart}", err=True)

    command.__doc__ = doc
    return main.command(verb)(command)


install = _deploy_command(upgrade=False)
upgrade = _deploy_command(upgrade=True)


@main.command()
@click.argument("release")
@_namespace_option
def status(release: str, namespace: str | None) -> None:
    """helm's status of RELEASE, how many pods of each group are ready, and where its chart is kept."""
    from .commands.status import status as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace))
    sys.stdout.write(result.helm_status)
    click.echo(f"\nGROUPS (namespace {result.namespace}):")
    if not result.groups:
        click.echo("  no pods of this release")
    for g in result.groups:
        leader = "ready" if g.leader_ready else "not ready"
        click.echo(f"  group {g.group}: {g.ready}/{g.total} pods ready, leader {leader}")
    click.echo(f"CHART: {result.chart}" if result.chart else "CHART: not kept here (installed by another tool)")


@main.command()
@click.argument("release")
@_namespace_option
@_helm_args
def uninstall(release: str, namespace: str | None, helm_args: tuple[str, ...]) -> None:
    """Uninstall RELEASE with helm and drop its kept chart; arguments after -- go to helm."""
    from .commands.uninstall import uninstall as run

    result = run(release=release, env=HelmEnv.from_environ(namespace=namespace), helm_args=helm_args)
    sys.stdout.write(result.output)


@main.command("complete-words", hidden=True)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def complete_words(words: tuple[str, ...]) -> None:
    """Shell completion candidates for `helm rdma WORDS...` (used by plugin.complete)."""
    from .completion import candidates

    for candidate in candidates(list(words)):
        click.echo(candidate)
    click.echo(":4")  # cobra's ShellCompDirectiveNoFileComp


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
    from .commands.plan import plan as run
    from .commands.plan import plan_table

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
    from .commands.presets import list_presets

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
    from .commands.presets import show_preset

    data = show_preset(name)
    import yaml

    click.echo(json.dumps(data, indent=2) if fmt == "json" else yaml.safe_dump(data, sort_keys=False, width=1000))

