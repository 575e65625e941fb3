"""Parameter types that know what completes them: release names, presets, models, and choices with aliases.

``completes`` names the sources of shell completion (see helm_rdma.cli.completion.SOURCES); the files generated from
the command tree (`make docs`) read it, so the completion of every option follows its type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import click
from click.shell_completion import CompletionItem


class Completed(click.ParamType):  # type: ignore[type-arg]
    """A text parameter whose candidates come from helm-rdma's completion sources."""

    completes: tuple[str, ...] = ()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
        from helm_rdma.cli.completion import source_values

        return [CompletionItem(v) for v in source_values(self.completes) if v.startswith(incomplete)]


class PresetName(Completed):
    """A shape preset's name (checked, with a suggestion, where the preset is loaded)."""

    name = "preset"
    completes = ("presets",)


class ModelName(Completed):
    """A model of the catalog (checked, with a suggestion, where the model is looked up)."""

    name = "model"
    completes = ("models",)


class ReleaseName(Completed):
    """A release name as helm checks it (and, for commands that write a chart, as its Service names need)."""

    name = "release"

    def __init__(self, *, for_chart: bool, completes: Iterable[str]) -> None:
        self.for_chart = for_chart
        self.completes = tuple(completes)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from helm_rdma.errors import ReleaseNameError
        from helm_rdma.names import check_release

        try:
            return check_release(value, for_chart=self.for_chart)
        except ReleaseNameError as exc:
            self.fail(str(exc), param, ctx)


# A new release is usually named after its model (`install llama405b`); status, uninstall and the like name one that
# exists; upgrade and diff take either.
CHART_RELEASE = ReleaseName(for_chart=True, completes=("models",))
UPGRADE_RELEASE = ReleaseName(for_chart=True, completes=("releases", "models"))
ANY_RELEASE = ReleaseName(for_chart=False, completes=("releases",))
PRESET = PresetName()
MODEL = ModelName()


class AliasedChoice(click.Choice):  # type: ignore[type-arg]
    """A choice that also takes other spellings of its values; help and completion show only the values."""

    def __init__(self, choices: Iterable[str], aliases: Mapping[str, str]) -> None:
        super().__init__(list(choices))
        self.aliases = dict(aliases)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(self.aliases.get(value, value), param, ctx)
