"""The hidden command behind plugin.complete (shell completion of `helm rdma`)."""

from __future__ import annotations

import click

from .base import main


@main.command("complete-words", hidden=True)
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
def complete_words(words: tuple[str, ...]) -> None:
    """Shell completion candidates for `helm rdma WORDS...` (used by plugin.complete)."""
    from ..completion import candidates

    for candidate in candidates(list(words)):
        click.echo(candidate)
    click.echo(":4")  # cobra's ShellCompDirectiveNoFileComp
