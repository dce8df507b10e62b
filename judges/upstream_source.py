"""Reading a prompt out of an upstream evaluator's Python file without executing it.

The file is parsed with :mod:`ast`; nothing in it is imported, compiled or run. Two shapes are read:

- a string assigned to a name, at module level or inside a function (``NAME = '''...'''``), to be filled
  the way ``str.format`` fills it (TRACE's and ComplexBench's prompts): :class:`FormatTemplate`;
- a lambda bound to a name, or a function, whose body is an f-string over its parameters (CFBench's
  ``gpt_judge_for_cfbench``): :class:`FStringTemplate`, filled the way Python evaluates that f-string.

A value that upstream's function computes before formatting (TRACE's ``format_str``: ``json.dumps`` of a
literal assigned in the same function) is read by :func:`function_value`, which understands literals,
names assigned earlier in the same function, and ``json.dumps`` with literal keyword arguments, and
refuses anything else. Upstream's text stays in the pinned file; this module holds none of it.
"""

from __future__ import annotations

import ast
import json
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class UpstreamSourceError(ValueError):
    """The upstream file does not hold what the locator says, in a shape that can be read safely."""


# ---------------------------------------------------------------- locators (declarative)


@dataclass(frozen=True)
class StringAssignment:
    """``name = <string literal>`` at module level (``function`` None) or in a function's body
    (``function`` = ``"func"`` or ``"Class.method"``); filled like ``str.format``."""

    name: str
    function: str | None = None


@dataclass(frozen=True)
class FStringFunction:
    """``name = lambda p1, p2: f'...'`` or ``def name(p1, p2): return f'...'`` at module level."""

    name: str


Locator = StringAssignment | FStringFunction


# ---------------------------------------------------------------- templates read from a file


@dataclass(frozen=True)
class FormatTemplate:
    """A ``str.format`` template. Its replacement fields are plain names (no attribute or index access,
    no positional fields), so filling it can only insert the given values."""

    text: str
    fields: frozenset[str]

    def fill(self, values: Mapping[str, Any]) -> str:
        _check_names(self.fields, values)
        return self.text.format(**{name: values[name] for name in self.fields})


@dataclass(frozen=True)
class Slot:
    """A ``{name!conversion:spec}`` part of an f-string; ``name`` is one of the function's parameters."""

    name: str
    conversion: int  # -1 none, else ord of "s", "r" or "a" (as ast.FormattedValue stores it)
    format_spec: str


@dataclass(frozen=True)
class FStringTemplate:
    """An f-string over a function's parameters, kept as literal parts and slots."""

    params: tuple[str, ...]
    parts: tuple[str | Slot, ...]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.params)

    def fill(self, values: Mapping[str, Any]) -> str:
        _check_names(self.fields, values)
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = values[part.name]
            if part.conversion == ord("s"):
                value = str(value)
            elif part.conversion == ord("r"):
                value = repr(value)
            elif part.conversion == ord("a"):
                value = ascii(value)
            out.append(format(value, part.format_spec))  # what Python does for each f-string field
        return "".join(out)


Template = FormatTemplate | FStringTemplate


def _check_names(fields: frozenset[str], values: Mapping[str, Any]) -> None:
    missing = sorted(fields - set(values))
    extra = sorted(set(values) - fields)
    if missing or extra:
        raise UpstreamSourceError(
            f"the upstream template's fields are {sorted(fields)}; missing {missing}, unknown {extra}"
        )


# ---------------------------------------------------------------- reading


def parse_module(source: str, where: str) -> ast.Module:
    try:
        return ast.parse(source, filename=where)
    except SyntaxError as exc:
        raise UpstreamSourceError(f"{where}: not Python that this interpreter can parse: {exc}") from exc


def _function_body(tree: ast.Module, qualname: str, where: str) -> list[ast.stmt]:
    scope: list[ast.stmt] = tree.body
    found: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | None = None
    for part in qualname.split("."):
        found = next(
            (
                node
                for node in scope
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and node.name == part
            ),
            None,
        )
        if found is None:
            raise UpstreamSourceError(f"{where}: no function or class {part!r} (looking for {qualname!r})")
        scope = found.body
    if not isinstance(found, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise UpstreamSourceError(f"{where}: {qualname!r} is not a function")
    return scope


def _assignments(body: list[ast.stmt], name: str) -> list[ast.Assign]:
    """Top-level ``name = value`` statements of a body (one target, a plain name)."""
    return [
        node
        for node in body
        if isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == name
    ]


def _only_assignment(body: list[ast.stmt], name: str, where: str) -> ast.Assign:
    found = _assignments(body, name)
    if len(found) != 1:
        raise UpstreamSourceError(f"{where}: expected exactly one assignment to {name!r}, found {len(found)}")
    return found[0]


def format_fields(text: str, where: str) -> frozenset[str]:
    """The names ``str.format`` would fill in ``text``; anything but plain names is refused."""
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise UpstreamSourceError(f"{where}: not a valid str.format template: {exc}") from exc
    for _literal, field, _spec, _conversion in parsed:
        if field is None:
            continue
        if not field.isidentifier():
            raise UpstreamSourceError(
                f"{where}: replacement field {{{field}}} is not a plain name; refusing to fill it"
            )
        names.add(field)
    return frozenset(names)


def read_string_assignment(tree: ast.Module, locator: StringAssignment, where: str) -> FormatTemplate:
    body = tree.body if locator.function is None else _function_body(tree, locator.function, where)
    node = _only_assignment(body, locator.name, where)
    if not isinstance(node.value, ast.Constant) or not isinstance(node.value.value, str):
        raise UpstreamSourceError(f"{where}: {locator.name!r} is not assigned a string literal")
    text = node.value.value
    return FormatTemplate(text=text, fields=format_fields(text, f"{where}: {locator.name}"))


def _fstring_parts(node: ast.expr, params: tuple[str, ...], where: str) -> tuple[str | Slot, ...]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return (node.value,)
    if not isinstance(node, ast.JoinedStr):
        raise UpstreamSourceError(f"{where}: the function does not return an f-string")
    parts: list[str | Slot] = []
    for value in node.values:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            parts.append(value.value)
            continue
        if not isinstance(value, ast.FormattedValue):
            raise UpstreamSourceError(f"{where}: unexpected part {ast.dump(value)[:60]} in the f-string")
        if not isinstance(value.value, ast.Name) or value.value.id not in params:
            raise UpstreamSourceError(
                f"{where}: an f-string field is not one of the parameters {list(params)}; refusing to evaluate it"
            )
        spec = ""
        if value.format_spec is not None:
            spec_parts = _fstring_parts(value.format_spec, (), where)
            if not all(isinstance(p, str) for p in spec_parts):
                raise UpstreamSourceError(f"{where}: a nested format spec cannot be read safely")
            spec = "".join(p for p in spec_parts if isinstance(p, str))
        parts.append(Slot(name=value.value.id, conversion=value.conversion, format_spec=spec))
    return tuple(parts)


def _plain_params(args: ast.arguments, where: str) -> tuple[str, ...]:
    if args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs:
        raise UpstreamSourceError(f"{where}: only plain positional parameters are supported")
    return tuple(a.arg for a in args.args)


def read_fstring_function(tree: ast.Module, locator: FStringFunction, where: str) -> FStringTemplate:
    where = f"{where}: {locator.name}"
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == locator.name]
    lambdas = _assignments(tree.body, locator.name)
    if len(defs) + len(lambdas) != 1:
        raise UpstreamSourceError(
            f"{where}: expected exactly one definition, found {len(defs) + len(lambdas)}"
        )
    if lambdas:
        value = lambdas[0].value
        if not isinstance(value, ast.Lambda):
            raise UpstreamSourceError(f"{where}: not assigned a lambda")
        params = _plain_params(value.args, where)
        body = value.body
    else:
        func = defs[0]
        params = _plain_params(func.args, where)
        statements = [
            s for s in func.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
        ]
        if len(statements) != 1 or not isinstance(statements[0], ast.Return) or statements[0].value is None:
            raise UpstreamSourceError(f"{where}: the function must consist of one return statement")
        body = statements[0].value
    return FStringTemplate(params=params, parts=_fstring_parts(body, params, where))


def read_template(tree: ast.Module, locator: Locator, where: str) -> Template:
    if isinstance(locator, StringAssignment):
        return read_string_assignment(tree, locator, where)
    return read_fstring_function(tree, locator, where)


# ---------------------------------------------------------------- values computed by upstream's function

# json.dumps keyword arguments whose literal values are understood; anything else is refused.
_JSON_DUMPS_KEYWORDS = frozenset({"ensure_ascii", "indent", "sort_keys", "separators"})


def _imports_json(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.Import) and any(a.name == "json" and a.asname is None for a in node.names)
        for node in tree.body
    )


def function_value(tree: ast.Module, function: str, name: str, where: str) -> Any:
    """The value a function binds to ``name`` before its prompt is formatted, read from the source:
    the expression may be a literal, a name assigned earlier in the same function, or
    ``json.dumps(<such an expression>, <literal keywords>)``."""
    body = _function_body(tree, function, where)
    uses_json = _imports_json(tree)

    def value_of(var: str, before: int) -> Any:
        earlier = [n for n in _assignments(body, var) if n.lineno < before]
        if not earlier:
            raise UpstreamSourceError(f"{where}: {function} assigns no {var!r} before line {before}")
        node = earlier[-1]
        return evaluate(node.value, node.lineno)

    def evaluate(node: ast.expr, line: int) -> Any:
        if isinstance(node, ast.Name):
            return value_of(node.id, line)
        if isinstance(node, ast.Call):
            func = node.func
            is_dumps = (
                isinstance(func, ast.Attribute)
                and func.attr == "dumps"
                and isinstance(func.value, ast.Name)
                and func.value.id == "json"
            )
            if not (is_dumps and uses_json) or len(node.args) != 1:
                raise UpstreamSourceError(
                    f"{where}: line {line}: only json.dumps(value, ...) of the json module can be read"
                )
            kwargs: dict[str, Any] = {}
            for keyword in node.keywords:
                if keyword.arg not in _JSON_DUMPS_KEYWORDS:
                    raise UpstreamSourceError(f"{where}: line {line}: json.dumps keyword {keyword.arg!r}")
                kwargs[keyword.arg] = ast.literal_eval(keyword.value)
            return json.dumps(evaluate(node.args[0], line), **kwargs)
        try:
            return ast.literal_eval(node)
        except ValueError as exc:
            raise UpstreamSourceError(
                f"{where}: line {line}: {ast.dump(node)[:80]} is neither a literal nor json.dumps of one"
            ) from exc

    target = _assignments(body, name)
    if len(target) != 1:
        raise UpstreamSourceError(f"{where}: expected exactly one assignment to {name!r} in {function}")
    return evaluate(target[0].value, target[0].lineno)
