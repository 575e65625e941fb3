"""The rule table (schemas/rules.yaml, read by rules.py) as Go template text: charts/vllm-rdma/templates/_rules.tpl,
with a helper per fact, a define per rule and the chart's vllm-rdma.validateValues, which includes every rule and
fails once, listing each broken rule as doctor words it. `python -m helm_rdma.dev.chart_sync` (make chart) writes it."""

from __future__ import annotations

import json
import re

from helm_rdma.checks import lookalikes
from helm_rdma.checks.rules import TABLE, Node, Rule, Table, Text, load
from helm_rdma.contract import VALIDATE_MARKER

HEADER = f"""{{{{/*
Generated from schemas/{TABLE} by `python -m helm_rdma.dev.chart_sync` (make chart): edit the table, not this file.
The chart's cross-field rules, which `helm-rdma doctor` reports in the same words (generator/helm_rdma/checks/rules.py).
*/}}}}
"""
_BARE = re.compile(r"^\$[A-Za-z_][A-Za-z0-9_]*$")


def go_template(table: Table | None = None) -> str:
    """The text of templates/_rules.tpl for ``table`` (the shipped table by default)."""
    table = table or load()
    out = [HEADER]
    for fact in table.facts.values():
        compiler = GoCompiler(table)
        body = compiler.prelude(fact.expr)
        cond = compiler.expr(fact.expr, body)
        out.append(_define(fact.name, _wrap(fact.doc), [*body, f"if {cond} }}}}true{{{{ end"]))
    for rule in table.rules:
        out.append(_define(f"rule.{rule.id}", f"Rule {rule.id} (schemas/{TABLE}): {', '.join(rule.keys)}.",
                           GoCompiler(table).rule(rule)))
    lines = ["$problems := list"]
    lines += [f'with include "vllm-rdma.rule.{r.id}" . }}}}{{{{ $problems = append $problems . }}}}{{{{ end'
              for r in table.rules if r.severity == "error"]
    lines += lookalikes.go_lines()
    lines += ["if $problems", "  " + f'fail (printf "\\n\\n{VALIDATE_MARKER}\\n  - %s\\n" (join "\\n  - " $problems))',
              "end"]
    out.append(_define("validateValues", "Every rule above, and the NCCL look-alikes of the values schema "
                       "(checks/lookalikes.py): fails once, listing each problem, its key and fix.",
                       lines))
    return "\n".join(out)


def _wrap(text: str, width: int = 118) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def _define(name: str, doc: str, body: list[str]) -> str:
    lines = "".join(f"{line[:len(line) - len(line.lstrip())]}{{{{- {line.strip()} }}}}\n" for line in body)
    head = f'{{{{/*\n{doc}\n*/}}}}\n{{{{- define "vllm-rdma.{name}" -}}}}\n'
    return f"{head}{{{{- $v := .Values }}}}\n{lines}{{{{- end }}}}\n"


def _boolean(node: Node) -> bool:
    """Whether ``node`` is a call whose Go value is a bool (others are truthy values, as `and` and `or` give)."""
    return node[0] == "call" and node[1] not in ("and", "or", "if", "get", "mul", "int", "concat", "numbered",
                                                 "quantity", "fullname", "release")


class GoCompiler:
    """Expressions of the rule table as Go template statements and expressions (sprig's functions, as helm has
    them). Statements are lines without their braces; an expression's value is a Go template operand."""

    def __init__(self, table: Table) -> None:
        self.table = table
        self._count = 0
        self._done: set[str] = set()

    def rule(self, rule: Rule) -> list[str]:
        """The body of the rule's define: its message and fix when the values break it, else nothing."""
        body = self.prelude(rule.when, *[p for p in (*rule.message, *rule.fix) if not isinstance(p, str)])
        cond = self.expr(rule.when, body)
        inner: list[str] = []
        fmt, args = self._format(f"{rule.key}: ", rule.message, inner)
        fix_fmt, fix_args = self._format("; fix: ", rule.fix, inner)
        call = " ".join([json.dumps(fmt + fix_fmt), *args, *fix_args])
        return [*body, f"if {cond}", *("  " + s for s in inner), f"  printf {call}", "end"]

    def prelude(self, *nodes: Node) -> list[str]:
        """Statements that set every term ``nodes`` use (and the terms those use), each once, dependencies first."""
        out: list[str] = []
        for node in nodes:
            for name in self._terms(node):
                if name not in self._done:
                    out += self.prelude(self.table.terms[name])
                    if name not in self._done:  # a term's own prelude may have set it
                        value = self.expr(self.table.terms[name], out)
                        out.append(f"${name} := {value}")
                        self._done.add(name)
        return out

    def _terms(self, node: Node) -> list[str]:
        kind = node[0]
        if kind == "path":
            return [node[1]] if node[1] in self.table.terms else []
        children: tuple[Node, ...] = ()
        if kind == "list":
            children = node[1]
        elif kind == "call":
            children = node[2]
        elif kind == "select":
            children = (node[2], node[3])
        return [name for child in children for name in self._terms(child)]

    def _format(self, lead: str, text: Text, stmts: list[str]) -> tuple[str, list[str]]:
        fmt, args = lead.replace("%", "%%"), []
        for part in text:
            if isinstance(part, str):
                fmt += part.replace("%", "%%")
            else:
                fmt += "%s"
                args.append(f'(join ", " {self.expr(part, stmts)})')
        return fmt, args

    def _tmp(self) -> str:
        self._count += 1
        return f"$_{self._count}"

    def expr(self, node: Node, stmts: list[str], scope: frozenset[str] = frozenset()) -> str:
        """A Go operand for ``node``; statements it needs first are appended to ``stmts``."""
        kind = node[0]
        if kind == "lit":
            return "nil" if node[1] is None else json.dumps(node[1])
        if kind == "list":
            return "(list " + " ".join(self.expr(n, stmts, scope) for n in node[1]) + ")" if node[1] else "(list)"
        if kind == "path":
            return self._path(node[1], node[2], stmts, scope)
        if kind == "select":
            _, var, source, cond = node
            out = self._tmp()
            stmts += [f"{out} := list", f"range ${var} := {self._listed(source, stmts, scope)}"]
            body: list[str] = []
            test = self.expr(cond, body, scope | {var})
            stmts += ["  " + s for s in [*body, f"if {test}", f"  {out} = append {out} ${var}", "end"]]
            stmts.append("end")
            return out
        return self._call(node[1], node[2], stmts, scope)

    def _listed(self, node: Node, stmts: list[str], scope: frozenset[str]) -> str:
        """``node`` as a list to range over or join: a missing or null value is an empty list."""
        value = self.expr(node, stmts, scope)
        return f"({value} | default list)" if node[0] == "path" and not _BARE.match(value) else value

    def _path(self, root: str, segments: tuple[str, ...], stmts: list[str], scope: frozenset[str]) -> str:
        star = segments.index("*") if "*" in segments else len(segments)
        if not root:
            value = "$v" + "".join(f".{s}" for s in segments[:star])
        else:
            if root in scope or root in self.table.terms:
                value = f"${root}"
            else:
                value = f'(include "vllm-rdma.{root}" $)'
            for s in segments[:star]:
                value = f'(get {value} "{s}")'
        if star == len(segments):
            return value
        out = self._tmp()
        stmts.append(f"{out} := list")
        self._pluck(out, value, segments[star + 1:], stmts, "")
        return out

    def _pluck(self, out: str, source: str, rest: tuple[str, ...], stmts: list[str], indent: str) -> None:
        item = self._tmp()
        stmts.append(f"{indent}range {item} := ({source} | default list)")
        value, i = item, 0
        while i < len(rest) and rest[i] != "*":
            value = f'(get {value} "{rest[i]}")'
            i += 1
        if i < len(rest):
            self._pluck(out, value, rest[i + 1:], stmts, indent + "  ")
        else:
            stmts.append(f"{indent}  {out} = append {out} {value}")
        stmts.append(f"{indent}end")

    def _call(self, name: str, args: tuple[Node, ...], stmts: list[str], scope: frozenset[str]) -> str:
        def op(i: int) -> str:
            return self.expr(args[i], stmts, scope)

        def text(i: int) -> str:  # as toString writes it; literals are written as text already
            if args[i][0] == "lit" and args[i][1] is not None:
                value = args[i][1]
                return json.dumps(("true" if value else "false") if isinstance(value, bool) else str(value))
            return f"(toString {op(i)})"

        if name in ("eq", "ne"):
            return f"({name} {text(0)} {text(1)})"
        if name in ("and", "or"):
            return f"({name} " + " ".join(op(i) for i in range(len(args))) + ")"
        if name in ("gt", "lt"):
            return f"({name} (float64 {op(0)}) (float64 {op(1)}))"
        if name == "concat":
            return "(concat " + " ".join(self._listed(a, stmts, scope) for a in args) + ")"
        if name == "repeats":
            value = self._listed(args[0], stmts, scope)
            if not _BARE.match(value):
                tmp = self._tmp()
                stmts.append(f"{tmp} := {value}")
                value = tmp
            return f"(ne (len {value}) (len (uniq {value})))"
        if name == "numbered":
            out, index, item = self._tmp(), self._tmp(), self._tmp()
            stmts += [f"{out} := list", f"range {index}, {item} := {self._listed(args[1], stmts, scope)}",
                      f'  {out} = append {out} (printf "%s%d" {op(0)} {index})', "end"]
            return out
        if name == "under":
            path, parent = text(0), text(1)
            return f'(or (eq {path} {parent}) (hasPrefix (printf "%s/" (trimSuffix "/" {parent})) {path}))'
        if name == "version_at_least":
            tag, least = text(0), str(args[1][1])
            # At most nine digits a part (as rules._VERSION): semverCompare parses each into 64 bits and fails on more.
            head = r"[0-9]{1,9}\\.[0-9]{1,9}\\.[0-9]{1,9}"
            return (f'(and (regexMatch "^v?{head}([^0-9]|$)" {tag}) '
                    f'(semverCompare ">={least}-0" (regexFind "^{head}" (trimPrefix "v" {tag}))))')
        forms = {
            "not": "(not {0})", "empty": "(empty {0})", "set": "(not (empty {0}))", "isnull": '(kindIs "invalid" {0})',
            "mul": "(mul {0} {1})", "int": "(int {0})", "if": "(ternary {1} {2} {B0})",
            "has": "(has {1} {L0})", "haskey": "(hasKey {0} {1})", "get": "(get {0} {1})",
            "hasprefix": "(hasPrefix {T1} {T0})", "matches": "(regexMatch {1} {T0})",
            "quantity": '(include "vllm-rdma.quantity" {T0} | float64)',
            "fullname": '(include "vllm-rdma.fullname" $)', "release": "$.Release.Name",
        }
        form = forms[name]
        plain = [op(i) if f"{{{i}}}" in form else "" for i in range(len(args))]
        fields = {f"T{i}": text(i) for i in range(len(args)) if f"{{T{i}}}" in form}
        fields |= {f"L{i}": self._listed(args[i], stmts, scope) for i in range(len(args)) if f"{{L{i}}}" in form}
        fields |= {f"B{i}": op(i) if _boolean(args[i]) else f"(not (empty {op(i)}))"
                   for i in range(len(args)) if f"{{B{i}}}" in form}
        return form.format(*plain, **fields)
