"""The files written from the click command tree, so that none of them can drift from the commands.

- completion.yaml: the sub-commands and flag names helm completes for `helm rdma` (helm's pkg/cmd/load_plugins.go
  reads it; every flag becomes a boolean there, so it holds names only, quoted where YAML would read a boolean);
- plugin.yaml: its `usage` and `description` (what `helm help` and `helm help rdma` show, with the command list);
- README.md: the command table, between its markers; docs/cli.md: the CLI reference;
- docs/models.md: the time-to-first-token table of `plan llama405b --preset h100`, between its markers.

`python -m helm_rdma.dev.docs` (`make docs`) writes them; `--check` names those that differ and exits 1.
"""

from __future__ import annotations

import inspect
import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import click
import yaml

from helm_rdma import __version__
from helm_rdma.cli import main
from helm_rdma.cli.help import examples_of, summary
from helm_rdma.commands.plan import first_token_rows, plan
from helm_rdma.dev.generatedfiles import sync

REPO = Path(__file__).resolve().parents[3]
PROG = "helm rdma"
# helm's global flags: helm strips them from a plugin's arguments (passing them as HELM_NAMESPACE, ...) and
# completes them itself, so completion.yaml leaves them out.
HELM_GLOBAL_FLAGS = frozenset({"namespace", "n", "kube-context", "kubeconfig", "debug"})
YAML_KEYWORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})
BEGIN, END = "<!-- BEGIN {} (generated from the commands by `make docs`; edit their help, not this) -->", \
    "<!-- END {} -->"


def commands(command: click.Command = main, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...],
                                                                                        click.Command]]:
    """Every visible command with its path under the root (the root's path is empty), sorted by name."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            sub = command.commands[name]
            if not sub.hidden:
                yield from commands(sub, (*path, name))


def _flags(command: click.Command) -> list[str]:
    out = []
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            names = [n.lstrip("-") for n in (*param.opts, *param.secondary_opts)]
            out += [n for n in names if len(n) > 1] + [n for n in names if len(n) == 1]
    return [n for n in out if n not in HELM_GLOBAL_FLAGS]


def completion_yaml() -> str:
    """completion.yaml: helm's static completion of `helm rdma` (sub-commands and flag names)."""
    lines = [
        "# Generated from the click command tree by `make docs` (python -m helm_rdma.dev.docs): do not edit.",
        "# helm completes `helm rdma` sub-commands and flag names from it; plugin.complete completes their values.",
        "# helm's global flags (-n/--namespace, --kube-context, --kubeconfig, --debug) stay helm's.",
        f"name: {plugin_name()}",
    ]

    def node(command: click.Command, indent: str) -> None:
        flags = _flags(command)
        if flags:
            quoted = (f'"{f}"' if f.lower() in YAML_KEYWORDS else f for f in flags)
            lines.append(f"{indent}flags: [{', '.join(quoted)}]")
        if isinstance(command, click.Group):
            lines.append(f"{indent}commands:")
            for name, sub in sorted(command.commands.items()):
                if not sub.hidden:
                    lines.append(f"{indent}  - name: {name}")
                    node(sub, indent + "    ")

    node(main, "")
    return "\n".join(lines) + "\n"


def plugin_name() -> str:
    """The plugin's name, from plugin.yaml (its one home)."""
    return str(yaml.safe_load((REPO / "plugin.yaml").read_text(encoding="utf-8"))["name"])


def _paragraphs(command: click.Command) -> list[str]:
    text = inspect.cleandoc(command.help or "")
    return [" ".join(p.split()) for p in text.split("\n\n") if p.strip()]


def plugin_yaml() -> str:
    """plugin.yaml with `version` (helm_rdma.__version__), `usage` (the root's summary) and `description` (its help
    and every command) rewritten."""
    rows = [(" ".join(path), summary(cmd)) for path, cmd in commands() if path]
    width = max(len(name) for name, _ in rows)
    described = [textwrap.fill(p, 110) for p in _paragraphs(main)]
    described += ["Commands:\n" + "\n".join(f"  {name.ljust(width)}  {text}" for name, text in rows)]
    block = "\n\n".join(described)
    usage = "usage: " + json.dumps(summary(main))
    description = "description: |-\n" + "\n".join(f"  {line}" if line else "" for line in block.splitlines())
    out, skipping = [], False
    for line in (REPO / "plugin.yaml").read_text(encoding="utf-8").splitlines():
        if skipping and (not line or line.startswith(" ")):
            continue
        skipping = False
        if line.startswith("version:"):
            out.append(f"version: {json.dumps(__version__)}")
        elif line.startswith("usage:"):
            out.append(usage)
        elif line.startswith("description:"):
            out.append(description)
            skipping = True
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _contexts(path: tuple[str, ...]) -> click.Context:
    ctx = click.Context(main, info_name=PROG)
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
        ctx = click.Context(command, info_name=name, parent=ctx)
    return ctx


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _anchor(path: tuple[str, ...]) -> str:
    return "-".join([*PROG.split(), *path])


def readme_commands() -> str:
    """The README's table of commands, each linking to its reference."""
    lines = ["| command | what it does |", "|---|---|"]
    for path, command in commands():
        if path:
            pieces = [p for p in command.collect_usage_pieces(_contexts(path)) if p != "[OPTIONS]"]
            usage = " ".join([*path, *pieces])
            lines.append(f"| [`{_cell(usage)}`](docs/cli.md#{_anchor(path)}) | {_cell(summary(command))} |")
    return "\n".join(lines)


def readme_reference() -> str:
    """The README's CLI reference: every command's usage, help, options and examples."""
    out: list[str] = []
    for path, command in commands():
        ctx = _contexts(path)
        out += [f"### `{' '.join([PROG, *path])}`", "", "```",
                " ".join([PROG, *path, *command.collect_usage_pieces(ctx)]), "```", ""]
        out += [p + "\n" for p in _paragraphs(command)]
        records = [p.get_help_record(ctx) for p in command.params if isinstance(p, click.Option) and not p.hidden]
        rows = [r for r in records if r is not None]
        if rows:
            out += ["| option | meaning |", "|---|---|"]
            out += [f"| `{_cell(opts)}` | {_cell(text)} |" for opts, text in rows]
            out.append("")
        if isinstance(command, click.Group):
            subs = [(n, c) for n, c in sorted(command.commands.items()) if not c.hidden]
            out += ["Commands: " + ", ".join(f"[`{n}`](#{_anchor((*path, n))})" for n, _ in subs) + ".", ""]
        examples = examples_of(command)
        if examples:
            out += ["Examples:", "", "```sh"]
            for i, (what, args) in enumerate(examples):
                out += ([""] if i else []) + [f"# {what}", f"{PROG} {args}"]
            out += ["```", ""]
    return "\n".join(out).rstrip("\n")


def _replace_block(text: str, name: str, body: str, file: str = "README.md") -> str:
    begin, end = BEGIN.format(name), END.format(name)
    if begin not in text or end not in text:
        raise SystemExit(f"{file} lacks the markers of {name}: {begin} ... {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def readme() -> str:
    """README.md with its command table rewritten."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return _replace_block(text, "cli-commands", readme_commands())


FIRST_TOKEN_EXAMPLE = ("llama405b", "h100")


def models_doc() -> str:
    """docs/models.md with its time-to-first-token table rewritten from `plan` (FIRST_TOKEN_EXAMPLE)."""
    model, preset = FIRST_TOKEN_EXAMPLE
    rows = first_token_rows(plan(model=model, preset=preset).first_token)
    table = [f"| {' | '.join(rows[0])} |", "|" + "---|" * len(rows[0])]
    table += [f"| {' | '.join(_cell(c) for c in row)} |" for row in rows[1:]]
    text = (REPO / "docs" / "models.md").read_text(encoding="utf-8")
    return _replace_block(text, "first-token", "\n".join(table), file="docs/models.md")


def cli_doc() -> str:
    """docs/cli.md: the whole CLI reference."""
    return ("# CLI reference\n\nEvery command, its options and examples, as `helm rdma COMMAND --help` shows them "
            "(`helm-rdma COMMAND --help`\noutside helm). Generated from the commands by `make docs`: edit their help, "
            "not this file.\n\n" + readme_reference() + "\n")


def expected() -> dict[Path, str]:
    """Every generated file and the text it must hold."""
    return {
        REPO / "completion.yaml": completion_yaml(),
        REPO / "plugin.yaml": plugin_yaml(),
        REPO / "README.md": readme(),
        REPO / "docs" / "cli.md": cli_doc(),
        REPO / "docs" / "models.md": models_doc(),
    }


def run(argv: list[str]) -> int:
    """`make docs`: write the files; with --check, name those that drifted and exit 1."""
    return sync(argv, expected(), root=REPO, source="the command tree", target="docs")


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
