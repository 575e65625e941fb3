"""Reading YAML and JSON files into plain data, with errors that name the file and the line.

User input is bounded: a file (or standard input) larger than MAX_INPUT_BYTES, a document whose aliases expand
excessively (the rule helm's YAML library applies), or data nested deeper than MAX_DEPTH is refused with a message
instead of eating the machine's memory.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import re
import stat
import sys
from functools import cache
from pathlib import Path
from typing import Any

from helm_rdma.errors import YamlFileError
from helm_rdma.suggest import clip

MAX_INPUT_BYTES = 4 * 1024 * 1024  # helm keeps a release, values included, in one Secret of at most 1 MiB
MAX_DEPTH = 100
STDIN = "-"
# go-yaml's rule against alias bombs ("document contains excessive aliasing"), which helm inherits: past 100 nodes
# from aliases and 1000 in all, the share of nodes that come from aliases may not exceed 99% (up to 400,000
# nodes), falling linearly to 10% at 4,000,000.
_ALIAS_LOW, _ALIAS_HIGH = 400_000, 4_000_000


def read_input(path: Path | str, *, label: str | None = None, stdin: Any = None, max_bytes: int = MAX_INPUT_BYTES,
               too_large: str | None = None) -> str:
    """The UTF-8 text of a file, or of standard input when ``path`` is "-", at most ``max_bytes`` long (``too_large``
    says why, for a limit other than the values files').

    Raises:
        YamlFileError: Missing, unreadable, too large, or not UTF-8.
    """
    name = label or str(path)
    try:
        if str(path).strip() == STDIN:
            stream = stdin if stdin is not None else sys.stdin.buffer
            data = stream.read(max_bytes + 1)
        else:
            data = _read_file(path, max_bytes + 1)
    except FileNotFoundError:
        raise YamlFileError(path=name, problem="no such file") from None
    except IsADirectoryError:
        raise YamlFileError(path=name, problem="is a directory, not a file") from None
    except OSError as exc:
        raise YamlFileError(path=name, problem=f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > max_bytes and too_large is not None:
        raise YamlFileError(path=name, problem=f"larger than {max_bytes:,} bytes; {too_large}")
    if len(data) > max_bytes:
        raise YamlFileError(path=name, problem=f"larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; values that "
                            "large cannot be kept in a helm release (one Secret of at most 1 MiB)")
    if not data and str(path).strip() != STDIN and stat.S_ISFIFO(os.stat(path).st_mode):
        raise YamlFileError(path=name, problem="a named pipe nothing writes to (it would be read forever)")
    try:
        text: str = data.decode("utf-8")
    except UnicodeDecodeError:
        raise YamlFileError(path=name, problem="not UTF-8 text (a binary file?)") from None
    return text


def _read_file(path: Path | str, limit: int) -> bytes:
    """At most ``limit`` bytes of ``path``. A named pipe with no writer would block open(2) forever: the file is
    opened without waiting (O_NONBLOCK), then read as usual, so such a pipe reads as empty at once."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(limit)
    finally:
        os.close(fd)


# How helm's YAML library (go-yaml v2, resolve.go) types a plain scalar; PyYAML's YAML 1.1 rules differ ("y" and
# "n" are booleans there, "1e3" and "0o17" numbers, "1:30" and dates strings).
_GO_WORDS: dict[str, Any] = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?", re.ASCII)
_NO_VALUE = object()


def _go_int(text: str) -> Any:
    """Go's strconv.ParseInt(text, 0, 64), else ParseUint(text, 0, 64); _NO_VALUE when both fail."""
    sign, body = (text[0], text[1:]) if text[:1] in ("+", "-") else ("", text)
    prefix = body[:2].lower()
    if prefix in ("0x", "0o", "0b"):
        base, digits = {"0x": 16, "0o": 8, "0b": 2}[prefix], body[2:]
    elif body.startswith("0") and len(body) > 1:
        base, digits = 8, body[1:]
    else:
        base, digits = 10, body
    if not digits or any(c not in "0123456789abcdef"[:base] for c in digits.lower()):
        return _NO_VALUE
    number = int(digits, base) * (-1 if sign == "-" else 1)
    if -(2**63) <= number < 2**63 or (not sign and number < 2**64):
        return number
    return _NO_VALUE


def _go_float(text: str) -> Any:
    if not _GO_FLOAT.fullmatch(text):
        return _NO_VALUE
    number = float(text)
    return _NO_VALUE if math.isinf(number) else number  # Go's ParseFloat fails out of range


def go_scalar(text: str) -> Any:
    """A plain YAML scalar as go-yaml v2 reads it: null, a bool, an int, a float, or the text itself."""
    if text in _GO_WORDS:
        return _GO_WORDS[text]
    hint = text[:1]
    if hint == ".":
        value = _go_float(text)
    elif hint and hint in "+-0123456789":
        if re.match(r"[0-9]{4}-", text, re.ASCII):  # a timestamp or not, helm keeps the text
            return text
        plain = text.replace("_", "")
        value = _go_int(plain)
        if value is _NO_VALUE:
            value = _go_float(plain)
    else:
        return text
    return text if value is _NO_VALUE else value


@cache
def _loader_class() -> Any:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    plain_tag = "tag:helm-rdma:go-plain"

    class Loader(base):  # type: ignore[valid-type,misc]
        """PyYAML's safe loader, typing plain scalars as helm's YAML library does."""

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            if kind is yaml.ScalarNode and implicit[0]:
                return "tag:yaml.org,2002:merge" if value == "<<" else plain_tag
            resolved: str = super().resolve(kind, value, implicit)
            return resolved

    Loader.add_constructor(plain_tag, lambda loader, node: go_scalar(node.value))
    return Loader


def _yaml_error(name: str, exc: Exception) -> YamlFileError:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or str(exc)
    return YamlFileError(path=name, line=line, problem=f"invalid YAML: {problem}")


def load_yaml_documents(text: str, *, name: str) -> list[Any]:
    """Every document of a YAML text, as plain JSON-like data.

    Raises:
        YamlFileError: Invalid YAML, excessive aliasing, data nested too deeply, or values JSON cannot hold.
    """
    import yaml

    loader = _loader_class()(text)
    documents = []
    try:
        while loader.check_node():
            node = loader.get_node()
            _check_aliases(node, name)
            documents.append(plain(loader.construct_document(node), where=name))
    except yaml.YAMLError as exc:
        raise _yaml_error(name, exc) from None
    except RecursionError:
        raise YamlFileError(path=name, problem=f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    return documents


def load_yaml_file(path: Path) -> Any:
    """Load one YAML document of ``path`` with PyYAML's safe loader.

    Raises:
        YamlFileError: The file is missing, unreadable, or not valid YAML (with its line).
    """
    import yaml  # PyYAML costs 10 ms to import: only where a YAML file is really read

    text = read_input(path)
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # safe, in C where possible
    except yaml.YAMLError as exc:
        raise _yaml_error(str(path), exc) from None


def _check_aliases(root: Any, name: str) -> None:
    """Refuse a document whose aliases expand too much (counted on the node graph, never expanded)."""
    import yaml

    sizes: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if depth > MAX_DEPTH:
            raise YamlFileError(path=name, line=node.start_mark.line + 1,
                                problem=f"nested deeper than {MAX_DEPTH} levels")
        sizes[key] = 1  # a node that contains itself counts once (PyYAML refuses such recursion later)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        sizes[key] = total
        return total

    seen: set[int] = set()
    direct = aliased = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            aliased += size(node, 0)
            continue
        seen.add(id(node))
        direct += 1
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                stack += [k, v]
    total = direct + aliased
    if aliased > 100 and total > 1000 and aliased / total > _allowed_alias_ratio(total):
        raise YamlFileError(path=name, problem=f"document contains excessive aliasing ({aliased} of {total} nodes "
                            "come from aliases); helm refuses it too")


def _allowed_alias_ratio(total: int) -> float:
    if total <= _ALIAS_LOW:
        return 0.99
    if total >= _ALIAS_HIGH:
        return 0.10
    return 0.99 - 0.89 * (total - _ALIAS_LOW) / (_ALIAS_HIGH - _ALIAS_LOW)


def _key_text(key: Any, where: str, path: str) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float) and math.isfinite(key):
        return repr(key)
    raise YamlFileError(path=where, problem=f"{path or 'the top level'}: a key of type {type(key).__name__} is not "
                        "allowed; keys are strings")


def plain(data: Any, *, where: str, path: str = "", depth: int = 0, json_numbers: bool = True) -> Any:
    """``data`` as values JSON can hold, as helm sees them: string keys, finite numbers, UTF-8 strings.

    With ``json_numbers`` (files and --set-json, which helm reads through JSON), every number is a float64 as in
    helm: integers beyond 2**53 lose their last digits there, and here too. Whole floats become ints either way.

    Raises:
        YamlFileError: A value JSON cannot hold (NaN, infinity, binary, sets, dates), or nesting deeper than MAX_DEPTH.
    """
    if depth > MAX_DEPTH:
        raise YamlFileError(path=where, problem=f"{clip(path, 80)}: nested deeper than {MAX_DEPTH} levels")
    if data is None or isinstance(data, bool):
        return data
    if isinstance(data, int):
        return float(data) if json_numbers and abs(data) > 2**53 else data
    if isinstance(data, float):
        if not math.isfinite(data):
            raise YamlFileError(path=where, problem=f"{path or 'the value'}: {data} is not a number JSON can hold")
        return int(data) if data.is_integer() and abs(data) <= 2**53 else data
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise YamlFileError(path=where, problem=f"{path or 'the value'}: not UTF-8 text") from None
        return data
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            text = _key_text(key, where, path)
            sub = f"{path}.{text}" if path else text
            out[plain(text, where=where, path=sub)] = plain(value, where=where, path=sub, depth=depth + 1,
                                                            json_numbers=json_numbers)
        return out
    if isinstance(data, (list, tuple)):
        return [plain(v, where=where, path=f"{path}[{i}]", depth=depth + 1, json_numbers=json_numbers)
                for i, v in enumerate(data)]
    raise YamlFileError(path=where, problem=f"{path or 'the value'}: a value of type {type(data).__name__} is not "
                        "allowed in values (binary data, sets and dates are not)")


@cache
def load_json_schema(path: Path) -> dict[str, Any]:
    """Load a JSON Schema that ships with the package (cached: schemas never change at run time)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
