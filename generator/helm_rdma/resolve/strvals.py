"""helm's --set family, read by helm's own rules (its pkg/strvals), into plain data.

The rules, as helm 3.17 and 4.1 apply them:
- ``a.b=v`` nests maps, ``a[0]=v`` and ``a[0].b=v`` set list items (missing items become null), ``a={x,y}`` is a
  list; several assignments are joined by commas; a backslash makes the next character plain (``\\.`` in a key,
  ``\\,`` in a value), except under --set-literal.
- --set types a value only when it is an integer without a leading zero (``0`` itself included), or ``true``,
  ``false`` or ``null`` in any case; everything else (``1.10``, ``no``, ``007``, ``1e3``) stays a string.
  --set-string never types, --set-json reads JSON, --set-file reads the named file's text, --set-literal takes the
  rest of the argument as one string.
- A list index above 65536 and names nested deeper than 30 levels are refused, as helm refuses them.
- A key that already holds a value of another kind (a string where a map is wanted) is an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from helm_rdma.errors import ArgumentEnd, StrvalsError

MAX_INDEX = 65536  # helm's strvals.MaxIndex
MAX_NESTED_NAME_LEVEL = 30  # helm's strvals.MaxNestedNameLevel
_INT64 = 2**63
_GO_INT = re.compile(r"[+-]?[0-9]+")
_JSON_SPACE = " \t\n\r"


class Parser:
    """One --set-family argument, parsed into ``data`` (which earlier arguments may already fill).

    ``mode`` is "set", "string", "json", "file" or "literal". ``touched`` collects the dotted path of every value set,
    so that messages can name the flag a key came from.
    """

    def __init__(self, text: str, data: dict[str, Any], *, mode: str = "set",
                 read_file: Callable[[str], str] | None = None) -> None:
        self.text = text
        self.pos = 0
        self.data = data
        self.mode = mode
        self.read_file = read_file
        self.touched: list[str] = []

    def parse(self) -> None:
        """Apply every assignment of the argument.

        Raises:
            StrvalsError: The argument breaks helm's rules (the message says where).
        """
        try:
            while True:
                self._key(self.data, 0, "")
        except ArgumentEnd:
            return
        except RecursionError:
            raise StrvalsError("nested too deeply") from None

    # -- reading ----------------------------------------------------------------------------------------------------

    def _read(self) -> str | None:
        if self.pos >= len(self.text):
            return None
        char = self.text[self.pos]
        self.pos += 1
        return char

    def _until(self, stop: str) -> tuple[str, str | None]:
        """Characters up to one of ``stop`` (consumed, returned second; None at the end of the text)."""
        out: list[str] = []
        escapes = self.mode != "literal"
        while True:
            char = self._read()
            if char is None or char in stop:
                return "".join(out), char
            if escapes and char == "\\":
                char = self._read()
                if char is None:
                    return "".join(out), None
            out.append(char)

    # -- values -----------------------------------------------------------------------------------------------------

    def _typed(self, raw: str) -> Any:
        if self.mode == "file":
            assert self.read_file is not None
            return self.read_file(raw)
        if self.mode in ("string", "literal"):
            return raw
        return typed_value(raw)

    def _empty_value(self) -> bool:
        """--set-json: skip blanks; True at the end or at a comma (both consumed)."""
        while True:
            char = self._read()
            if char is None or char == ",":
                return True
            if not char.isspace():
                self.pos -= 1
                return False

    def _json_value(self) -> Any:
        start = self.pos
        while start < len(self.text) and self.text[start] in _JSON_SPACE:
            start += 1
        try:
            value, end = _JSON.raw_decode(self.text, start)
        except (ValueError, RecursionError) as exc:
            raise StrvalsError(f"invalid JSON at character {start + 1}: {exc}") from None
        self.pos = end
        self._empty_value()
        return value

    def _list_value(self) -> list[Any] | None:
        """A ``{a,b}`` list, or None when the value does not start with ``{``; ArgumentEnd for an empty value."""
        char = self._read()
        if char is None:
            raise ArgumentEnd
        if char != "{":
            self.pos -= 1
            return None
        items = []
        while True:
            raw, last = self._until(",}")
            if last is None:
                raise StrvalsError("a list must end with '}'")
            items.append(self._typed(raw))
            if last == "}":
                after = self._read()
                if after is not None and after != ",":
                    self.pos -= 1
                return items

    def _value(self) -> tuple[Any, bool]:
        """The value after "=": the rest of the argument (--set-literal), JSON (--set-json), a ``{a,b}`` list or a
        plain value; and whether the argument ended where the value was due (the value is then "")."""
        if self.mode == "literal":
            value, self.pos = self.text[self.pos:], len(self.text)
            return value, False
        if self.mode == "json":
            return (None if self._empty_value() else self._json_value()), False
        try:
            listed = self._list_value()
        except ArgumentEnd:
            return "", True
        return (self._typed(self._until(",")[0]) if listed is None else listed), False

    # -- keys -------------------------------------------------------------------------------------------------------

    def _record_tree(self, value: dict[str, Any], path: str) -> None:
        if not value:
            self.touched.append(path)
        for key, sub in value.items():
            if isinstance(sub, dict):
                self._record_tree(sub, f"{path}.{key}")
            else:
                self.touched.append(f"{path}.{key}")

    def _set(self, data: dict[str, Any], key: str, value: Any, path: str) -> None:
        if key == "":  # helm ignores an empty key
            return
        data[key] = value
        if not isinstance(value, dict):  # a map's own keys are recorded as they are set
            self.touched.append(path)

    def _key(self, data: dict[str, Any], level: int, prefix: str) -> None:
        stop = "=[." if self.mode == "literal" else "=[,."
        key, last = self._until(stop)
        path = f"{prefix}.{key}" if prefix else key
        if last is None:
            if not key:
                raise ArgumentEnd
            raise StrvalsError(f'key "{path}" has no value')
        if last == "[":
            index = self._index(path)
            items: list[Any] = []
            if key in data:
                items = _want(list, data[key], path)
            try:
                items = self._list_item(items, index, level, path)
            finally:
                self._set(data, key, items, path)
            return
        if last == "=":
            self._assign(data, key, path)
            return
        if last == ",":
            raise StrvalsError(f'key "{path}" has no value (it cannot end with ",")')
        # last == "."
        level += 1
        if level > MAX_NESTED_NAME_LEVEL:
            raise StrvalsError(f"key names nest deeper than helm's limit of {MAX_NESTED_NAME_LEVEL} levels")
        inner: dict[str, Any] = {}
        if key in data:
            inner = _want(dict, data[key], path)
        try:
            self._key(inner, level, path)
        except ArgumentEnd:
            if inner:
                self._set(data, key, inner, path)
            raise
        if not inner:
            raise StrvalsError(f'key map "{path}" has no value')
        self._set(data, key, inner, path)

    def _assign(self, data: dict[str, Any], key: str, path: str) -> None:
        value, ended = self._value()
        self._set(data, key, value, path)
        if self.mode == "json" and isinstance(value, dict) and key:
            self._record_tree(value, path)
        if ended:
            raise ArgumentEnd

    def _index(self, path: str) -> int:
        raw, last = self._until("]")
        if last is None:
            raise StrvalsError(f'"{path}[": the index has no closing "]"')
        if not _GO_INT.fullmatch(raw) or abs(int(raw)) >= _INT64:
            raise StrvalsError(f'"{path}[{raw}]": the index is not an integer')
        return int(raw)

    def _list_item(self, items: list[Any], index: int, level: int, path: str) -> list[Any]:
        if index < 0:
            raise StrvalsError(f'"{path}[{index}]": a negative index is not allowed')
        here = f"{path}[{index}]"
        rest, last = self._until("[.=")
        if rest:
            raise StrvalsError(f'"{here}": unexpected "{rest}" after the index')
        if last is None:
            raise ArgumentEnd
        if last == "=":
            value, _ = self._value()
            self.touched.append(here)
            return _set_index(items, index, value, here)
        if last == "[":
            inner_index = self._index(here)
            current: list[Any] = []
            if len(items) > index and items[index] is not None:
                current = _want(list, items[index], here)
            inner_list = self._list_item(current, inner_index, level, here)
            return _set_index(items, index, inner_list, here)
        # last == "."
        inner: dict[str, Any] = {}
        if len(items) > index:
            if isinstance(items[index], dict):
                inner = items[index]
            else:  # helm replaces a non-map item by a fresh map here
                items[index] = inner
        self._key(inner, level, here)
        return _set_index(items, index, inner, here)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return f"the {type(value).__name__} {json.dumps(value)[:40]}"


def _want(kind: type, value: Any, path: str) -> Any:
    """``value`` when it is a ``kind`` (dict or list), as the key about to be set inside it needs."""
    if not isinstance(value, kind):
        what, inside = ("a map", ".KEY") if kind is dict else ("a list", "[N]")
        raise StrvalsError(f'"{path}" is {_kind(value)} in earlier values, not {what}, so "{path}{inside}" cannot be '
                           "set")
    return value


def _set_index(items: list[Any], index: int, value: Any, path: str) -> list[Any]:
    if index > MAX_INDEX:
        raise StrvalsError(f'"{path}": the index is above helm\'s limit of {MAX_INDEX}')
    if len(items) <= index:
        items.extend([None] * (index + 1 - len(items)))
    items[index] = value
    return items


_WORDS = {"true": True, "false": False, "null": None}


def typed_value(raw: str) -> Any:
    """A --set value as helm types it: bool, null or int for those exact spellings, else the string itself."""
    # helm compares with Go's strings.EqualFold, which for these three words is Unicode case folding (ſ is s, and
    # no character folds to two of their letters)
    if raw.casefold() in _WORDS:
        return _WORDS[raw.casefold()]
    if raw == "0":
        return 0
    if raw and raw[0] != "0" and _GO_INT.fullmatch(raw):
        number = int(raw)
        if -_INT64 <= number < _INT64:
            return number
    return raw


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_no_constants)


def parse_json_object(text: str) -> dict[str, Any]:
    """--set-json given a whole JSON object (helm 4's form): the object itself.

    Raises:
        StrvalsError: Not one JSON object.
    """
    try:
        value = _JSON.decode(text.strip())
    except (ValueError, RecursionError) as exc:
        raise StrvalsError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise StrvalsError("expected a JSON object")
    return value
