"""The click group, its error handling, and the options several commands share."""

from __future__ import annotations

import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..errors import EXIT_RUNTIME, HelmRdmaError


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM as an exception, so that every `finally` runs and no staging directory is left behind."""
    raise SystemExit(128 + signum)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("HELM_DEBUG", "").lower() in ("1", "true")


class Cli(click.Group):
    """A click group that reports our errors as `helm-rdma: error: ...` with their exit code, and any other error
    in one line (the traceback only with --debug or HELM_DEBUG=true)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            previous: Any = signal.signal(signal.SIGTERM, _terminate)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
        try:
            return super().invoke(ctx)
        except HelmRdmaError as exc:
            click.echo(f"helm-rdma: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # a bug: one line, and the traceback on request
            if _debug(ctx):
                import traceback

                traceback.print_exc(file=sys.stderr)
            detail = str(exc).splitlines()[0][:300] if str(exc) else ""
            click.echo(f"helm-rdma: error: unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
                       "(a bug in helm-rdma; run with --debug or HELM_DEBUG=true for the traceback)", err=True)
            ctx.exit(EXIT_RUNTIME)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


def _notice(text: str | None) -> None:
    if text:
        click.echo(f"helm-rdma: {text}", err=True)


class ReleaseName(click.ParamType):  # type: ignore[type-arg]
    """A release name as helm checks it (and, for commands that write a chart, as its Service names need)."""

    name = "release"

    def __init__(self, *, for_chart: bool) -> None:
        self.for_chart = for_chart

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from ..errors import ReleaseNameError
        from ..names import check_release

        try:
            return check_release(value, for_chart=self.for_chart)
        except ReleaseNameError as exc:
            self.fail(str(exc), param, ctx)


CHART_RELEASE = ReleaseName(for_chart=True)
ANY_RELEASE = ReleaseName(for_chart=False)


def _preset_option(func: Any) -> Any:
    return click.option("--preset", "-p", required=True, help="Shape preset (see `helm-rdma presets`).")(func)


def _values_options(func: Any) -> Any:
    """-f and the --set family, handed to the command as one ``sources`` (a ValueSources)."""

    @functools.wraps(func)
    def command(*args: Any, value_files: tuple[Path, ...], set_values: tuple[str, ...],
                set_string_values: tuple[str, ...], set_json_values: tuple[str, ...],
                set_file_values: tuple[str, ...], set_literal_values: tuple[str, ...], **kwargs: Any) -> Any:
        from ..valuesources import ValueSources

        sources = ValueSources(files=value_files, set=set_values, set_string=set_string_values,
                               set_json=set_json_values, set_file=set_file_values, set_literal=set_literal_values)
        return func(*args, sources=sources, **kwargs)

    options = [
        click.option("-f", "--values", "value_files", multiple=True, type=click.Path(path_type=Path),
                     help="A values file, applied after the preset and the model (repeatable, in order; - reads "
                          "standard input)."),
        click.option("--set", "set_values", multiple=True, metavar="KEY=VALUE",
                     help="Set a value, after the -f files (repeatable), e.g. --set vllm.maxModelLen=32768; as in "
                          "helm, only integers, true, false and null are typed."),
        click.option("--set-string", "set_string_values", multiple=True, metavar="KEY=VALUE",
                     help="Set a string value, never typed (applied after --set)."),
        click.option("--set-json", "set_json_values", multiple=True, metavar="KEY=JSON",
                     help="Set a JSON value (applied before --set), e.g. --set-json 'vllm.extraArgs=[\"--a\"]'."),
        click.option("--set-file", "set_file_values", multiple=True, metavar="KEY=PATH",
                     help="Set a value to the text of a file (applied after --set-string)."),
        click.option("--set-literal", "set_literal_values", multiple=True, metavar="KEY=VALUE",
                     help="Set a string value taken literally, commas and backslashes included (applied last)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _chart_options(func: Any) -> Any:
    options = [
        click.option("--model", "-m", help="Catalog model alias; defaults to RELEASE when that is an alias."),
        click.option("--nodes", type=click.IntRange(1, 64), help="Nodes per group; default: the planner's minimum."),
        click.option("--max-model-len", type=click.IntRange(1), help="Context length; default: the model's."),
        _values_options,
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
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error (helm's --debug sets "
                                            "HELM_DEBUG for plugins, which does the same).")
def main(debug: bool) -> None:
    """Serve one large model with vLLM across RDMA-connected OCI GPU nodes, as a Helm chart."""
