"""Help that teaches, from one source: summaries, examples, `helm rdma` under helm, did-you-mean, and the files
generated from the command tree (completion.yaml, plugin.yaml, the README's reference)."""

from __future__ import annotations

import shlex

import click
import pytest
import yaml
from click.testing import CliRunner

from helm_rdma.cli import main
from helm_rdma.cli.help import examples_of, summary
from helm_rdma.dev.docs import HELM_GLOBAL_FLAGS, REPO, commands, run

COMMANDS = [path for path, _ in commands() if path]


def test_generated_files_match_the_command_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["--check"]) == 0, capsys.readouterr().err  # `make docs` --check: names each file that differs


def test_every_flag_of_every_command_is_in_completion_yaml() -> None:
    static = yaml.safe_load((REPO / "completion.yaml").read_text())

    def flags(path: tuple[str, ...]) -> list[str]:
        node = static
        for name in path:
            node = next(c for c in node["commands"] if c["name"] == name)
        return node.get("flags", [])

    for path, command in commands():
        listed = flags(path)
        assert all(isinstance(f, str) for f in listed), "quote flags YAML reads as booleans (yes, y)"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                names = {n.lstrip("-") for n in param.opts + param.secondary_opts} - HELM_GLOBAL_FLAGS
                assert names <= set(listed), (path, names - set(listed))
    assert {"nccl", "yes", "y"} <= set(flags(("verify",)))


def _parse(argv: list[str]) -> click.Context:
    """Parse a command line as click would run it, down to its command, without running it."""
    command: click.Command = main
    ctx = None
    name = "helm rdma"
    while isinstance(command, click.Group) and argv and argv[0] in command.commands:
        ctx = click.Context(command, info_name=name, parent=ctx)
        name, argv = argv[0], argv[1:]
        command = command.commands[name]
    return command.make_context(name, argv, parent=ctx)


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda p: " ".join(p) or "root")
def test_every_command_has_examples_that_parse(path: tuple[str, ...]) -> None:
    command = dict(commands())[path]
    examples = examples_of(command)
    assert len(examples) >= 2, f"{' '.join(path) or 'the root'}: give two or three examples"
    for what, args in examples:
        assert what and not what.endswith(".")
        argv = shlex.split(args)
        assert f"{_parse(argv).command_path} ".startswith(" ".join(["helm rdma", *path, ""]))


def test_help_lists_every_summary_whole_on_one_line(runner: CliRunner) -> None:
    out = runner.invoke(main, ["--help"]).output.split("\nCommands:\n")[1].split("\n\n")[0] + "\n"
    assert "..." not in out
    width = max(len(path[0]) for path in COMMANDS)
    for path, command in commands():
        if len(path) == 1:
            assert f"  {path[0].ljust(width)}  {summary(command)}\n" in out
    shown = runner.invoke(main, ["presets", "--help"]).output
    assert "  show  Print one preset, with the source of every value.\n" in shown


def test_under_helm_usage_and_examples_say_helm_rdma(runner: CliRunner) -> None:
    plugin = runner.invoke(main, ["install", "--help"], env={"HELM_PLUGIN_NAME": "rdma"}).output
    assert plugin.startswith("Usage: helm rdma install [OPTIONS] RELEASE [-- HELM_ARGS]...")
    assert "Examples:\n  # Llama 3.1 405B" in plugin and "\n  helm rdma install llama405b --preset h100" in plugin
    alone = runner.invoke(main, ["install", "--help"], env={"HELM_PLUGIN_NAME": ""}).output
    assert alone.startswith("Usage: helm-rdma install") and "\n  helm-rdma install llama405b" in alone
    error = runner.invoke(main, ["plan"], env={"HELM_PLUGIN_NAME": "rdma"})
    assert error.exit_code == 2 and "Try 'helm rdma plan --help' for help." in error.output


@pytest.mark.parametrize(("args", "hint"), [
    (["instal"], 'unknown command "instal" for "helm-rdma"; did you mean "install"?'),
    (["Status", "x"], 'did you mean "status"?'),
    (["presets", "shwo", "h100"], 'unknown command "shwo" for "helm-rdma presets"; did you mean "show"?'),
    (["template", "llama405b", "--prest", "h100"], "'--preset'"),
])
def test_a_mistyped_command_or_option_suggests_the_nearest(runner: CliRunner, args: list[str], hint: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code == 2
    assert hint in result.output


def test_no_suggestion_for_a_command_nothing_resembles(runner: CliRunner) -> None:
    result = runner.invoke(main, ["frobnicate"])
    assert result.exit_code == 2 and "did you mean" not in result.output
