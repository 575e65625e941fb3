"""Parameter types that complete themselves: release names, presets, models, and choices with aliases.

Their ``shell_complete`` is what click's completion engine asks for candidates, both for click's own shell scripts
and for helm's plugin.complete (helm_rdma.cli.completion).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

import click
from click.shell_completion import CompletionItem

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
    """A text parameter that offers its known values (looked up only when a shell asks) as completion candidates."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def known(self) -> list[str]:
        """The values completion offers, in order."""
        return []

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
        return [CompletionItem(v) for v in dict.fromkeys(self.known()) if v.startswith(incomplete)]


class PresetName(Completed):
    """A shape preset's name (checked, with a suggestion, where the preset is loaded)."""

    name = "preset"

    def known(self) -> list[str]:
        from helm_rdma.sizing.presets import preset_names

        return preset_names()


class ModelName(Completed):
    """A model of the catalog (checked, with a suggestion, where the model is looked up)."""

    name = "model"

    def known(self) -> list[str]:
        from helm_rdma.sizing.catalog import model_names

        return model_names()


class ReleaseName(Completed):
    """A release name as helm checks it (and, for commands that write a chart, as its Service names need).

    It completes the releases of the namespace (``existing``), then the catalog's models (``models``)."""

    name = "release"

    def __init__(self, *, for_chart: bool, existing: bool, models: bool) -> None:
        self.for_chart = for_chart
        self.existing = existing
        self.models = models

    def known(self) -> list[str]:
        return [*(release_names() if self.existing else []), *(MODEL.known() if self.models else [])]

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from helm_rdma.errors import ReleaseNameError
        from helm_rdma.names import check_release

        try:
            return check_release(value, for_chart=self.for_chart)
        except ReleaseNameError as exc:
            self.fail(str(exc), param, ctx)


PRESET = PresetName()
MODEL = ModelName()
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
