"""Parameter types: durations as helm reads them, and types that complete themselves (release names, presets,
models, choices with aliases).

Their ``shell_complete`` is what click's completion engine asks for candidates, both for click's own shell scripts
and for helm's plugin.complete (helm_rdma.cli.completion).
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import click
from click.shell_completion import CompletionItem

from helm_rdma.cli.help import RdmaCommand

RELEASES_TIMEOUT_SECONDS = 3.0  # `helm list` on an unreachable cluster would hang for much longer


def release_names(environ: Mapping[str, str] | None = None, *,
                  timeout: float = RELEASES_TIMEOUT_SECONDS) -> list[str]:
    """Releases in the namespace helm targets (`helm list --short --all` through $HELM_BIN); empty when no cluster
    answers within ``timeout`` seconds or helm fails: completion stays quiet."""
    from helm_rdma.errors import HelmRdmaError
    from helm_rdma.helm import find_helm
    from helm_rdma.helmenv import HelmEnv

    env = os.environ if environ is None else environ
    try:
        helm_env = HelmEnv.from_environ(env)
        helm = env.get("HELM_BIN") or find_helm()
    except HelmRdmaError:
        return []
    flags = [f for f in helm_env.global_flags() if f != "--debug"]
    try:
        proc = subprocess.Popen([helm, "list", "--short", "--all", *flags], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env=dict(env), start_new_session=True)
    except OSError:
        return []
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # helm, and whatever a wrapper in HELM_BIN started
        proc.communicate()
        return []
    return [line.strip() for line in out.splitlines() if line.strip()] if proc.returncode == 0 else []


class Completed(click.ParamType):  # type: ignore[type-arg]
    """A text parameter that offers ``known()`` (looked up only when a shell asks) as completion candidates; the
    value is checked, with a suggestion, where it is used (the preset loaded, the model looked up)."""

    def __init__(self, name: str, known: Callable[[], list[str]]) -> None:
        self.name, self.known = name, known

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(v) for v in dict.fromkeys(self.known()) if v.startswith(incomplete)]


def _presets() -> list[str]:
    from helm_rdma.sizing.presets import preset_names

    return preset_names()


def _models() -> list[str]:
    from helm_rdma.sizing.catalog import model_names

    return model_names()


class ReleaseName(Completed):
    """A release name as helm checks it (and, for commands that write a chart, as its Service names need).

    It completes the releases of the namespace (``existing``), then the catalog's models (``models``)."""

    def __init__(self, *, for_chart: bool, existing: bool, models: bool) -> None:
        super().__init__("release", lambda: [*(release_names() if existing else []), *(_models() if models else [])])
        self.for_chart = for_chart

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from helm_rdma.errors import ReleaseNameError
        from helm_rdma.names import check_release

        try:
            return check_release(value, for_chart=self.for_chart)
        except ReleaseNameError as exc:
            self.fail(str(exc), param, ctx)


PRESET = Completed("preset", _presets)
MODEL = Completed("model", _models)
# A new release is usually named after its model (`install llama405b`); status, uninstall and the like name one that
# exists; upgrade and diff take either.
CHART_RELEASE = ReleaseName(for_chart=True, existing=False, models=True)
UPGRADE_RELEASE = ReleaseName(for_chart=True, existing=True, models=True)
ANY_RELEASE = ReleaseName(for_chart=False, existing=True, models=False)


class AliasedChoice(click.Choice):  # type: ignore[type-arg]
    """A choice that also takes other spellings of its values; help and completion show only the values."""

    def __init__(self, choices: Iterable[str], aliases: Mapping[str, str]) -> None:
        super().__init__(list(choices))
        self.aliases = dict(aliases)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(self.aliases.get(value, value), param, ctx)


class Finite(click.FloatRange):
    """click's FloatRange, which lets nan (and, unbounded, inf) through: every comparison with nan is false."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; give one in {self._describe_range()}", param, ctx)
        return number


class GoDuration(click.ParamType):  # type: ignore[type-arg]
    """A duration as helm reads its --timeout (Go's time.ParseDuration: 90s, 1.5h, 1m30s500ms; "300" is refused),
    checked while the command line is parsed, before anything is generated or written. The value is the text as
    given (to hand to helm), or its seconds with ``seconds=True``."""

    name = "duration"

    def __init__(self, *, seconds: bool = False, positive: bool = False, most: float | None = None,
                 example: str = "300s") -> None:
        self.seconds, self.positive, self.most, self.example = seconds, positive, most, example

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from helm_rdma.errors import DurationError
        from helm_rdma.helm import go_duration_nanos

        if isinstance(value, float):  # a default already in seconds
            return value
        text = str(value)
        flag = param.opts[0] if param is not None and param.opts else "--timeout"
        try:
            nanos = go_duration_nanos(text)
        except ValueError as exc:
            self.fail(DurationError.explain(text=text, problem=str(exc), flag=flag), param, ctx)
        if nanos < 0 or (self.positive and nanos == 0) or nanos / 1e9 > (self.most or math.inf):
            self.fail(DurationError.out_of_range(text=text, flag=flag, positive=self.positive,
                                                 most=_go(self.most) if self.most is not None else None,
                                                 example=self.example), param, ctx)
        return nanos / 1e9 if self.seconds else text


def _go(seconds: float) -> str:
    """``seconds`` as a Go duration the way a person writes it: 1h, 90m, 1s, 500ms."""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds * 1000:g}ms" if seconds else "0s"


# helm's --dry-run values (helm 3.17 cmd/helm/install.go validateDryRunOptionFlag; helm 4 pkg/cmd/helpers.go
# cmdGetDryRunFlagStrategy) as the mode they mean; a bare --dry-run is "client" in both.
DRY_RUN_MODES = {"client": "client", "server": "server", "none": "none", "true": "client", "false": "none"}


def _dry_run(ctx: click.Context, param: click.Parameter, value: str) -> str:
    mode = DRY_RUN_MODES.get(value)
    if mode is None:
        raise click.BadParameter(f'"{value}" is not a dry-run mode; use --dry-run (the same as --dry-run=client: '
                                 "no cluster) or --dry-run=server (the cluster checks the objects, nothing changes)",
                                 ctx, param)
    return mode


def dry_run_option(func: Any) -> Any:
    """helm's --dry-run[=client|server], handed to the command as ``dry_run``: "none", "client" or "server"."""
    return click.option("--dry-run", "dry_run", default="none", metavar="[=client|server]", callback=_dry_run,
                        shell_complete=lambda ctx, param, incomplete: [
                            CompletionItem(v) for v in ("client", "server") if v.startswith(incomplete)],
                        help="Simulate, as helm: --dry-run or --dry-run=client renders the manifests with no "
                             "cluster; --dry-run=server has the cluster check them. Nothing is installed or "
                             "kept.")(func)


class DryRunCommand(RdmaCommand):
    """A command with helm's --dry-run: a bare --dry-run means --dry-run=client and, as in helm (pflag's
    NoOptDefVal), never takes the next argument as its value; only --dry-run=MODE gives one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        end = args.index("--") if "--" in args else len(args)
        args = [("--dry-run=client" if a == "--dry-run" and i < end else a) for i, a in enumerate(args)]
        return super().parse_args(ctx, args)
