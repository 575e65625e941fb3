"""The user's values, merged exactly as helm merges them (its pkg/cli/values MergeValues).

Order: every -f file in turn (maps merge, anything else replaces), then each --set-json, --set, --set-string,
--set-file and --set-literal, in that fixed order of kinds, each kind in the order given. A null stays in these
values; laid over the chart's own values it removes the key (see overrides.coalesce).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from helm_rdma.errors import SetSyntaxError, StrvalsError, YamlFileError
from helm_rdma.resolve.overrides import merge_maps
from helm_rdma.resolve.strvals import Parser, parse_json_object
from helm_rdma.yamlfile import STDIN, load_yaml_documents, plain, read_input


@dataclass(frozen=True)
class ValueSources:
    """Where the user's values come from: -f files ("-" is standard input) and the --set family, in given order."""

    files: tuple[Path, ...] = ()
    set: tuple[str, ...] = ()
    set_string: tuple[str, ...] = ()
    set_json: tuple[str, ...] = ()
    set_file: tuple[str, ...] = ()
    set_literal: tuple[str, ...] = ()


class UserValues(NamedTuple):
    """The merged user values and, for messages, the flag or file each dotted key came from."""

    values: dict[str, Any]
    origins: dict[str, str]


class _Stdin:
    """Standard input, read once, as helm reads it: a second "-" gets nothing."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.used = False

    def read(self, label: str) -> str:
        if self.used:
            return ""
        self.used = True
        import sys

        stream = self.stream if self.stream is not None else getattr(sys.stdin, "buffer", None)
        if stream is None:
            raise YamlFileError(path=label, problem="there is no standard input to read")
        return read_input(STDIN, label=label, stdin=stream)


def _read(path: Path | str, label: str, stdin: _Stdin) -> str:
    if str(path).strip() == STDIN:
        return stdin.read(label)
    return read_input(path, label=label)


def _walk(data: Any, prefix: str, origin: str, origins: dict[str, str]) -> None:
    """Record ``origin`` for every key of ``data`` that holds something other than a map (or an empty map)."""
    if isinstance(data, dict) and (data or not prefix):
        for key, value in data.items():
            _walk(value, f"{prefix}.{key}" if prefix else key, origin, origins)
    else:
        origins[prefix] = origin


def _file_values(path: Path, stdin: _Stdin) -> dict[str, Any]:
    label = "standard input (-f -)" if str(path).strip() == STDIN else str(path)
    values: dict[str, Any] = {}
    for document in load_yaml_documents(_read(path, label, stdin), name=label):
        if document is None:
            continue
        if not isinstance(document, dict):
            raise YamlFileError(path=label, problem=f"expected a mapping of values, got {_kind(document)}")
        values = merge_maps(values, document)
    return values


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def user_values(sources: ValueSources, *, stdin: Any = None) -> UserValues:
    """Read and merge every source, in helm's order.

    Args:
        sources: The -f files and --set family arguments.
        stdin: A binary stream to read for "-" (default: the process's standard input).

    Raises:
        YamlFileError: A file is missing, unreadable, too large, not YAML, or not a mapping.
        SetSyntaxError: An argument of the --set family that helm would refuse.
    """
    reader = _Stdin(stdin)
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for path in sources.files:
        layer = _file_values(path, reader)
        values = merge_maps(values, layer)
        _walk(layer, "", f"-f {path}", origins)
    for argument in sources.set_json:
        if argument.strip().startswith("{"):
            with _worded("--set-json", argument):
                layer = plain(parse_json_object(argument), where=f"--set-json {argument}")
            values = merge_maps(values, layer)
            _walk(layer, "", f"--set-json {argument}", origins)
        else:
            _parse("--set-json", argument, values, origins, mode="json")
    for argument in sources.set:
        _parse("--set", argument, values, origins, mode="set")
    for argument in sources.set_string:
        _parse("--set-string", argument, values, origins, mode="string")
    for argument in sources.set_file:
        def read_file(name: str, argument: str = argument) -> str:
            try:
                return _read(name, name if name.strip() != STDIN else "standard input", reader)
            except YamlFileError as exc:
                raise StrvalsError(str(exc)) from None
        _parse("--set-file", argument, values, origins, mode="file", read_file=read_file)
    for argument in sources.set_literal:
        _parse("--set-literal", argument, values, origins, mode="literal")
    return UserValues(values=values, origins=origins)


@contextmanager
def _worded(flag: str, argument: str) -> Iterator[None]:
    """Turn what is wrong with a --set-family argument into a SetSyntaxError naming the flag and the argument: text
    that is not UTF-8, a break of helm's rules (StrvalsError), a value JSON cannot hold (YamlFileError)."""
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError:
        raise SetSyntaxError(flag=flag, argument=argument.encode("utf-8", "replace").decode(),
                             problem="not UTF-8 text") from None
    try:
        yield
    except StrvalsError as exc:
        raise SetSyntaxError(flag=flag, argument=argument, problem=str(exc)) from None
    except YamlFileError as exc:
        raise SetSyntaxError(flag=flag, argument=argument, problem=str(exc).split(": ", 1)[-1]) from None


def _parse(flag: str, argument: str, values: dict[str, Any], origins: dict[str, str], *, mode: str,
           read_file: Any = None) -> None:
    parser = Parser(argument, values, mode=mode, read_file=read_file)
    with _worded(flag, argument):
        parser.parse()
        normalized = plain(values, where=f"{flag} {argument}", json_numbers=mode == "json")
    for path in parser.touched:
        origins[path] = f"{flag} {argument}"
    values.clear()
    values.update(normalized)
