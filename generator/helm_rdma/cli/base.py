"""The click group, its error handling, and the options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import HelmRdmaError


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
