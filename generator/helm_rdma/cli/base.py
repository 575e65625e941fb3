"""The click group, its error handling, and the options several commands share."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from helm_rdma import __version__
from helm_rdma.cli.helmargs import check_helm_args
from helm_rdma.cli.help import RdmaCommand, Teaching, program_name, summary
from helm_rdma.cli.params import ANY_RELEASE, CHART_RELEASE, MODEL, PRESET, UPGRADE_RELEASE, AliasedChoice
from helm_rdma.errors import EXIT_RUNTIME, HelmRdmaError
from helm_rdma.suggest import did_you_mean

if TYPE_CHECKING:
    from helm_rdma.resolve.values import ChartRequest
    from helm_rdma.resolve.valuesources import ValueSources

__all__ = ["ANY_RELEASE", "CHART_RELEASE", "UPGRADE_RELEASE", "Cli", "main"]


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM as an exception, so that every `finally` runs and no staging directory is left behind."""
    raise SystemExit(128 + signum)


def _reader_gone() -> None:
    """The reader of our output went away (``| head``): end as a process killed by SIGPIPE would, silently, with
    stdout on /dev/null so that Python's flush at exit does not raise again (Python's documentation of the signal
    module, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no real stdout (a test runner's buffer): nothing to flush at exit
        pass


def _stacked(func: Any, options: list[Any]) -> Any:
    """``func`` under ``options``, the first outermost (as if written as decorators in that order)."""
    return functools.reduce(lambda wrapped, option: option(wrapped), reversed(options), func)


class Cli(Teaching, click.Group):
    """A click group that reports our errors as `helm-rdma: error: ...` with their exit code, and any other error
    in one line (the traceback only with --debug or HELM_DEBUG=true). Its usage lines say `helm rdma` when helm
    runs it as a plugin; a mistyped command gets the nearest one suggested."""

    command_class = RdmaCommand
    group_class = type

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("prog_name") is None or os.environ.get("HELM_PLUGIN_NAME"):
            kwargs["prog_name"] = program_name()
        return super().main(*args, **kwargs)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                            list[str]]:
        name = args[0]
        if not ctx.resilient_parsing and not name.startswith("-") and self.get_command(ctx, name) is None:
            visible = [n for n in self.list_commands(ctx) if not getattr(self.get_command(ctx, n), "hidden", True)]
            raise click.UsageError(f'unknown command "{name}" for "{ctx.command_path}"'
                                   f"{did_you_mean(name, visible)}", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The sub-commands with their whole summaries (click would cut them to the terminal's width with "...")."""
        rows = [(name, summary(command)) for name in self.list_commands(ctx)
                if (command := self.get_command(ctx, name)) is not None and not command.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

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
        except BrokenPipeError:
            _reader_gone()
            ctx.exit(128 + signal.SIGPIPE)
        except Exception as exc:  # a bug: one line, and the traceback on request
            if ctx.params.get("debug") or os.environ.get("HELM_DEBUG", "").lower() in ("1", "true"):
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


def _preset_option(func: Any) -> Any:
    return click.option("--preset", "-p", required=True, type=PRESET, help="Shape preset (`presets` lists them).")(func)



def _local_files(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[Path, ...]:
    """-f paths, refusing a URL: helm's -f also fetches http(s) and oci URLs through its getters (pkg/cli/values/
    options.go, readFile), helm-rdma reads local files and standard input only."""
    for path in value:
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", path):
            raise click.BadParameter(f"{path}: helm-rdma reads local values files (and - for standard input), not "
                                     "URLs; download it first (curl -fsSLo values.yaml URL) and pass the file",
                                     ctx=ctx, param=param)
    return tuple(Path(p) for p in value)


def _values_options(func: Any) -> Any:
    """-f and the --set family, handed to the command as one ``sources`` (a ValueSources)."""

    @functools.wraps(func)
    def command(*args: Any, value_files: tuple[Path, ...], set_values: tuple[str, ...],
                set_string_values: tuple[str, ...], set_json_values: tuple[str, ...],
                set_file_values: tuple[str, ...], set_literal_values: tuple[str, ...], **kwargs: Any) -> Any:
        from helm_rdma.resolve.valuesources import ValueSources

        sources = ValueSources(files=value_files, set=set_values, set_string=set_string_values,
                               set_json=set_json_values, set_file=set_file_values, set_literal=set_literal_values)
        return func(*args, sources=sources, **kwargs)

    return _stacked(command, [
        click.option("-f", "--values", "value_files", multiple=True, type=click.Path(), callback=_local_files,
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
    ])


def _chart_request(func: Any) -> Any:
    """RELEASE, --preset, --model, --nodes, --max-model-len and the values options, handed to the command as one
    ``request`` (a values.ChartRequest). Only doctor's RELEASE is optional: it names the model as for install, and
    with neither RELEASE nor --model doctor checks the default model."""

    @functools.wraps(func)
    def command(*args: Any, release: str | None, preset: str, model: str | None, nodes: int | None,
                max_model_len: int | None, sources: ValueSources, **kwargs: Any) -> Any:
        from helm_rdma.resolve.values import ChartRequest
        from helm_rdma.sizing.catalog import DEFAULT_MODEL

        if release is None and model is None:
            click.echo(f"helm-rdma: no RELEASE and no --model: checking {DEFAULT_MODEL}, the default model", err=True)
        request = ChartRequest(release=release or model or DEFAULT_MODEL, preset=preset, model=model, nodes=nodes,
                               max_model_len=max_model_len, sources=sources)
        return func(*args, request=request, **kwargs)

    return command


def _chart_options(func: Any) -> Any:
    return _stacked(func, [
        click.option("--model", "-m", type=MODEL,
                     help="Catalog model alias, or a Hugging Face repository id ORG/NAME[@REVISION]; defaults to "
                          "RELEASE when that is an alias."),
        click.option("--nodes", type=click.IntRange(1, 64), help="Nodes per group; default: the planner's minimum."),
        click.option("--max-model-len", type=click.IntRange(1), help="Context length; default: the model's."),
        _values_options,
        _preset_option,
        _chart_request,
    ])


def _provision_options(func: Any) -> Any:
    """install/upgrade --provision and the OCI settings of the chart's hook: the chart's clusterNetwork values they
    set become the ``request``'s flag values (under _chart_options, which builds the request)."""
    from helm_rdma.oci.clients import AUTH_ALIASES, AUTH_MODES

    @functools.wraps(func)
    def command(*args: Any, provision: bool, compartment: str | None, availability_domain: str | None,
                subnet: str | None, image: str | None, nsgs: tuple[str, ...], oke_cluster: str | None,
                pod_subnet: str | None,
                auth: str | None, oci_api_key_secret: str | None, oci_endpoint: str | None, request: ChartRequest,
                **kwargs: Any) -> Any:
        network: dict[str, Any] = {key: value for key, value in (
            ("provision", provision or None), ("compartmentId", compartment),
            ("availabilityDomain", availability_domain), ("subnetId", subnet), ("imageId", image),
            ("nsgIds", list(nsgs) or None),
            ("auth", auth), ("apiKeySecret", oci_api_key_secret), ("endpoint", oci_endpoint),
        ) if value is not None}
        oke = {key: value for key, value in (("clusterId", oke_cluster), ("podSubnetId", pod_subnet)) if value}
        if oke:
            network["oke"] = oke
        if network:
            request = dataclasses.replace(request, flag_values={"clusterNetwork": network})
        return func(*args, request=request, **kwargs)

    return _stacked(command, [
        click.option("--provision", is_flag=True,
                     help="Provision the OCI cluster network in the chart's pre-install hook (with the flags below)."),
        click.option("--compartment", metavar="OCID", help="Compartment OCID (with --provision)."),
        click.option("--availability-domain", metavar="AD", help="Availability domain (with --provision)."),
        click.option("--subnet", metavar="OCID", help="Subnet OCID of the nodes (with --provision)."),
        click.option("--image", metavar="OCID", help="Image OCID of the nodes (with --provision)."),
        click.option("--nsg", "nsgs", multiple=True, metavar="OCID",
                     help="NSG of the nodes' primary VNIC (with --provision; repeatable): clusterNetwork.nsgIds."),
        click.option("--oke-cluster", metavar="OCID",
                     help="OKE cluster the provisioned nodes join (with --provision)."),
        click.option("--pod-subnet", metavar="OCID", help="Pod subnet of a VCN-native cluster (with --provision)."),
        click.option("--auth", type=AliasedChoice(AUTH_MODES, AUTH_ALIASES), default=None,
                     help=f"How the hook signs in to OCI (default workloadIdentity); {', '.join(AUTH_ALIASES)} are "
                          "accepted as aliases."),
        click.option("--oci-api-key-secret", metavar="SECRET",
                     help="Secret with the OCI config and key, for --auth apiKey."),
        click.option("--oci-endpoint", envvar="HELM_RDMA_OCI_ENDPOINT", default=None, metavar="URL",
                     help="Endpoint of every OCI client the hook uses [env HELM_RDMA_OCI_ENDPOINT]."),
    ])


def _namespace_option(func: Any) -> Any:
    return click.option("-n", "--namespace", default=None,
                        help="Namespace of the release (default: $HELM_NAMESPACE, as helm sets it for plugins).")(func)


def _checked_helm_args(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    """HELM_ARGS once none sets values, changes the manifests or the target (cli/helmargs.py); checked while the
    command line is parsed, so before the command runs or writes anything."""
    command = ctx.command
    offered = {opt for p in command.params if isinstance(p, click.Option) for opt in (*p.opts, *p.secondary_opts)}
    check_helm_args(value, command=command.name or "", offered=offered)
    return value


def _helm_args(func: Any) -> Any:
    return click.argument("helm_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- HELM_ARGS]...",
                          callback=_checked_helm_args)(func)


@click.group("helm-rdma", cls=Cli, context_settings={"help_option_names": ["-h", "--help"]}, examples=[
    ("from nothing to an endpoint: Llama 3.1 405B on two BM.GPU.H100.8 nodes",
     "install llama405b --preset h100 -n llm --wait"),
    ("a complete chart for a GitOps repository", "generate llama405b --preset h100 -o deploy/llama405b"),
    ("how many nodes of a shape a model needs", "plan llama405b --preset gpu4"),
])
@click.version_option(__version__, prog_name="helm-rdma")
@click.option("--debug", is_flag=True, help="Show the traceback of an unexpected error (helm's --debug sets "
                                            "HELM_DEBUG for plugins, which does the same).")
def main(debug: bool) -> None:
    """Serve one large model with vLLM across RDMA-connected OCI GPU nodes, as a Helm chart.

    From a shape preset (`presets` lists them) and a model, helm-rdma generates a chart with the preset's RDMA NICs
    and NCCL settings, installs it, proves the fabric and reads the logs when a group hangs.
    `COMMAND --help` shows each command's options and examples.
    """
