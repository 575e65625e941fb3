"""The cross-field rules the chart enforces, read from one table (schemas/rules.yaml): evaluated here for
`helm-rdma doctor`, and compiled to the chart's templates/_rules.tpl (one define per rule, and the validateValues
that includes them all), so that doctor and plain helm refuse the same values in the same words.

A rule's condition, the facts and terms it uses and the placeholders of its message and fix are calls in a small
expression language (see the head of schemas/rules.yaml). ``Evaluator`` gives them their meaning in Python and
rulestemplate.GoCompiler writes the same meaning as Go template text; tests/test_rules.py holds the two against each
other with every rule's example and real helm binaries.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from helm_rdma import contract
from helm_rdma.datafiles import schema_path

TABLE = "rules.yaml"
TEMPLATE = "templates/_rules.tpl"
# Terms the table reads from the chart's contract with Python rather than writing them again.
CONTRACT_TERMS = {
    "servingContainers": json.dumps([contract.SERVING_CONTAINER, contract.PREFLIGHT_CONTAINER,
                                     contract.PREFLIGHT_VERDICT_CONTAINER, contract.BARRIER_CONTAINER,
                                     contract.DOWNLOAD_CONTAINER]),
}

# Expression trees: ("lit", value) ("list", items) ("path", root, segments) ("call", name, args)
# ("select", var, source, condition). A path's root is "" for the values, else a variable, term or fact.
Node = tuple[Any, ...]
Text = tuple[str | Node, ...]
# Functions and how many arguments each takes (None: one or more).
FUNCTIONS: dict[str, int | None] = {
    "eq": 2, "ne": 2, "and": None, "or": None, "not": 1, "empty": 1, "set": 1, "isnull": 1, "gt": 2, "lt": 2,
    "mul": 2, "int": 1, "if": 3, "concat": None, "has": 2, "haskey": 2, "get": 2, "repeats": 1, "numbered": 2,
    "hasprefix": 2, "matches": 2, "under": 2, "version_at_least": 2, "quantity": 1, "fullname": 0, "release": 0,
}
_TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?[0-9]+(?:\.[0-9]+)?)'
                    r"|(?P<path>\$?[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\*\])*)|(?P<punct>[(),\[\]]))")
# A version X.Y.Z at the start of an image tag, nine digits a part at most (what Go's semverCompare parses without
# overflow, as rulestemplate compiles version_at_least); a longer number is no version.
_VERSION = re.compile(r"v?([0-9]{1,9})\.([0-9]{1,9})\.([0-9]{1,9})(?![0-9])")


class RuleTableError(ValueError):
    """schemas/rules.yaml does not parse: the rule or term and what is wrong (a bug in the table, not in values)."""


@dataclass(frozen=True)
class Fact:
    """A named boolean the templates use too: the chart's helper vllm-rdma.NAME."""

    name: str
    doc: str
    expr: Node


@dataclass(frozen=True)
class Rule:
    """One cross-field rule: its condition, and the message and fix that name what to change."""

    id: str
    keys: tuple[str, ...]
    severity: str
    when: Node
    message: Text
    fix: Text
    example: dict[str, Any]
    release: str | None = None

    @property
    def key(self) -> str:
        """The key a finding names."""
        return self.keys[0]


@dataclass(frozen=True)
class Broken:
    """A rule the values break, with its message and fix filled in."""

    rule: Rule
    message: str
    fix: str

    def problem(self) -> str:
        """The line validateValues prints for it."""
        return f"{self.rule.key}: {self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class Table:
    """The rule table: facts, shared terms and rules, in the table's order."""

    facts: dict[str, Fact]
    terms: dict[str, Node]
    rules: tuple[Rule, ...]


# -- parsing ---------------------------------------------------------------------------------------------------------

def parse(text: str) -> Node:
    """The expression tree of ``text``.

    Raises:
        RuleTableError: It is not an expression.
    """
    tokens = _tokens(text)
    node, rest = _parse(tokens, text)
    if rest:
        raise RuleTableError(f"{text!r}: unexpected {rest[0][1]!r}")
    return node


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if not m:
            raise RuleTableError(f"{text!r}: cannot read from {text[pos:].strip()[:20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _parse(tokens: list[tuple[str, str]], text: str) -> tuple[Node, list[tuple[str, str]]]:
    if not tokens:
        raise RuleTableError(f"{text!r}: ends early")
    (kind, value), rest = tokens[0], tokens[1:]
    if kind == "str":
        return ("lit", json.loads(value)), rest
    if kind == "num":
        return ("lit", float(value) if "." in value else int(value)), rest
    if value == "[":
        items, rest = _arguments(rest, "]", text)
        return ("list", tuple(items)), rest
    if kind != "path":
        raise RuleTableError(f"{text!r}: unexpected {value!r}")
    if value in ("true", "false", "null"):
        return ("lit", {"true": True, "false": False, "null": None}[value]), rest
    if rest and rest[0][1] == "(":
        if value == "select":
            return _select(rest[1:], text)
        if value not in FUNCTIONS:
            raise RuleTableError(f"{text!r}: unknown function {value}")
        args, rest = _arguments(rest[1:], ")", text)
        arity = FUNCTIONS[value]
        if (arity is None and not args) or (arity is not None and len(args) != arity):
            raise RuleTableError(f"{text!r}: {value} takes {arity or 'one or more'} argument(s)")
        return ("call", value, tuple(args)), rest
    parts = re.findall(r"\[\*\]|[^.\[\]]+", value)
    root = parts[0][1:] if parts[0].startswith("$") else ""
    segments = tuple("*" if p == "[*]" else p for p in (parts[1:] if root else parts))
    return ("path", root, segments), rest


def _arguments(tokens: list[tuple[str, str]], close: str, text: str) -> tuple[list[Node], list[tuple[str, str]]]:
    items: list[Node] = []
    while tokens and tokens[0][1] != close:
        item, tokens = _parse(tokens, text)
        items.append(item)
        if tokens and tokens[0][1] == ",":
            tokens = tokens[1:]
    if not tokens:
        raise RuleTableError(f"{text!r}: no closing {close}")
    return items, tokens[1:]


def _select(tokens: list[tuple[str, str]], text: str) -> tuple[Node, list[tuple[str, str]]]:
    if len(tokens) < 2 or not tokens[0][1].startswith("$") or tokens[1][1] != "in":
        raise RuleTableError(f"{text!r}: select reads select($x in LIST, CONDITION)")
    args, rest = _arguments(tokens[2:], ")", text)
    if len(args) != 2:
        raise RuleTableError(f"{text!r}: select reads select($x in LIST, CONDITION)")
    return ("select", tokens[0][1][1:], args[0], args[1]), rest


def parse_text(text: str) -> Text:
    """A message or fix: plain text and {expression} placeholders."""
    parts: list[str | Node] = []
    for i, piece in enumerate(re.split(r"\{([^{}]*)\}", text)):
        if i % 2:
            parts.append(parse(piece))
        elif piece:
            parts.append(piece)
    return tuple(parts)


@functools.lru_cache(maxsize=1)
@functools.cache
def load() -> Table:
    """The rule table (schemas/rules.yaml), checked against schemas/rules.schema.json, with CONTRACT_TERMS."""
    import jsonschema

    raw = yaml.safe_load(schema_path(TABLE).read_text(encoding="utf-8"))
    schema = json.loads(schema_path("rules.schema.json").read_text(encoding="utf-8"))
    for error in jsonschema.Draft7Validator(schema).iter_errors(raw):
        raise RuleTableError(f"schemas/{TABLE}: {'.'.join(map(str, error.absolute_path))}: {error.message}")
    facts = {f["name"]: Fact(f["name"], f["doc"], parse(f["is"])) for f in raw["facts"]}
    terms = {name: parse(text) for name, text in {**CONTRACT_TERMS, **raw["terms"]}.items()}
    rules = tuple(Rule(id=r["id"], keys=tuple(r["keys"]), severity=r.get("severity", "error"), when=parse(r["when"]),
                       message=parse_text(r["message"]), fix=parse_text(r["fix"]), example=r["example"],
                       release=r.get("release")) for r in raw["rules"])
    return Table(facts=facts, terms=terms, rules=rules)


# -- Python ----------------------------------------------------------------------------------------------------------

def check(values: dict[str, Any], *, release: str) -> list[Broken]:
    """Every rule of the table that ``values`` (of release ``release``) break, in the table's order."""
    table = load()
    evaluator = Evaluator(table, values, release)
    return [Broken(rule, evaluator.text(rule.message), evaluator.text(rule.fix))
            for rule in table.rules if truth(evaluator.eval(rule.when))]


def fact(name: str, values: dict[str, Any]) -> bool:
    """The fact ``name`` (the chart's helper vllm-rdma.NAME) for ``values``."""
    return truth(Evaluator(load(), values, "").ref(name, {}))


def truth(value: Any) -> bool:
    """Truthy as in a template: not null, false, 0, "", [] or {}."""
    return bool(value)


def gostr(value: Any) -> str:
    """``value`` as helm's toString writes it."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return str(value)


def gotext(value: Any) -> str:
    """``value`` as `join ", "` writes it: a list's items (nulls left out), anything else as toString."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(gostr(v) for v in value if v is not None)
    return gostr(value)


def _number(value: Any, kind: type) -> Any:
    try:
        return kind(float(value)) if not isinstance(value, bool) else kind(value)
    except (TypeError, ValueError):
        return kind(0)


def quantity(text: str) -> float | None:
    """The number a Kubernetes quantity such as 1Ti, 900G, 512Mi or 500m stands for (bytes, cores); None when it is
    not one. The chart's vllm-rdma.quantity reads it the same way."""
    m = re.fullmatch(r"([0-9.]+)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P|m)?", str(text))
    if not m:
        return None
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "k": 1e3, "M": 1e6, "G": 1e9,
             "T": 1e12, "P": 1e15, "m": 1e-3, None: 1}
    return float(m.group(1)) * units[m.group(2)]


def fullname(values: dict[str, Any], release: str) -> str:
    """The full name of the release's objects, as the chart's vllm-rdma.fullname writes it."""
    if values.get("fullnameOverride"):
        return str(values["fullnameOverride"])[:contract.FULLNAME_MAX].removesuffix("-")
    name = str(values.get("nameOverride") or contract.NAME)[:63].removesuffix("-")
    full = release if name in release else f"{release}-{name}"
    return full[:contract.FULLNAME_MAX].removesuffix("-")


class Evaluator:
    """The meaning of the table's expressions in Python, for one set of values."""

    def __init__(self, table: Table, values: dict[str, Any], release: str) -> None:
        self.table, self.values, self.release = table, values, release
        self._memo: dict[str, Any] = {}

    def text(self, text: Text) -> str:
        return "".join(p if isinstance(p, str) else gotext(self.eval(p)) for p in text)

    def ref(self, name: str, scope: dict[str, Any]) -> Any:
        if name in scope:
            return scope[name]
        if name not in self._memo:
            if name in self.table.terms:
                self._memo[name] = self.eval(self.table.terms[name])
            else:
                self._memo[name] = truth(self.eval(self.table.facts[name].expr))
        return self._memo[name]

    def eval(self, node: Node, scope: dict[str, Any] | None = None) -> Any:
        scope = scope or {}
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "list":
            return [self.eval(n, scope) for n in node[1]]
        if kind == "path":
            _, root, segments = node
            start = self.ref(root, scope) if root else self.values
            return _walk(start, segments, by_get=bool(root))
        if kind == "select":
            _, var, source, cond = node
            return [x for x in self.eval(source, scope) or [] if truth(self.eval(cond, {**scope, var: x}))]
        return self._call(node[1], node[2], scope)

    def _call(self, name: str, args: tuple[Node, ...], scope: dict[str, Any]) -> Any:
        if name in ("and", "or"):
            value: Any = None
            for arg in args:
                value = self.eval(arg, scope)
                if truth(value) != (name == "and"):
                    return value
            return value
        if name == "if":
            return self.eval(args[1] if truth(self.eval(args[0], scope)) else args[2], scope)
        a = [self.eval(arg, scope) for arg in args]
        if name in ("eq", "ne"):
            return (gostr(a[0]) == gostr(a[1])) == (name == "eq")
        simple: dict[str, Callable[[], Any]] = {
            "not": lambda: not truth(a[0]), "empty": lambda: not truth(a[0]), "set": lambda: truth(a[0]),
            "isnull": lambda: a[0] is None, "gt": lambda: _number(a[0], float) > _number(a[1], float),
            "lt": lambda: _number(a[0], float) < _number(a[1], float),
            "mul": lambda: _number(a[0], int) * _number(a[1], int), "int": lambda: _number(a[0], int),
            "concat": lambda: [x for part in a for x in (part or [])], "has": lambda: a[1] in (a[0] or []),
            "haskey": lambda: isinstance(a[0], dict) and a[1] in a[0],
            "get": lambda: a[0].get(a[1], "") if isinstance(a[0], dict) else "",
            "repeats": lambda: any(x in (a[0] or [])[:i] for i, x in enumerate(a[0] or [])),
            "numbered": lambda: [f"{a[0]}{i}" for i in range(len(a[1] or []))],
            "hasprefix": lambda: gostr(a[0]).startswith(gostr(a[1])),
            "matches": lambda: re.search(gostr(a[1]), gostr(a[0])) is not None,
            "under": lambda: gostr(a[0]) == gostr(a[1])
            or gostr(a[0]).startswith(gostr(a[1]).removesuffix("/") + "/"),
            "version_at_least": lambda: _version_at_least(gostr(a[0]), gostr(a[1])),
            "quantity": lambda: quantity(gostr(a[0])) or 0.0,
            "fullname": lambda: fullname(self.values, self.release), "release": lambda: self.release,
        }
        return simple[name]()


def _walk(node: Any, segments: tuple[str, ...], *, by_get: bool) -> Any:
    """Follow ``segments`` from ``node``: fields (by `get` after a [*] or from a variable), and [*] over lists."""
    for i, segment in enumerate(segments):
        if segment == "*":
            rest = segments[i + 1:]
            items = [_walk(item, rest, by_get=True) for item in node or []]
            return [x for item in items for x in item] if "*" in rest else items
        node = (node.get(segment, "" if by_get else None) if isinstance(node, dict) else
                ("" if by_get else None))
    return node


def _version_at_least(tag: str, least: str) -> bool:
    have, want = _VERSION.match(tag), _VERSION.match(least)
    if not have or not want:
        return False
    return tuple(map(int, have.groups())) >= tuple(map(int, want.groups()))
