"""ComplexBench rule checks (protocols.md §4.3, "Rule-Augmented LLM" evaluation).

A rule question carries a rule string ``<name>:<arguments>``, e.g. ``model_length:[300,10000]``. The judge
first extracts the part of the response the question targets (whole response, segments, or nothing);
the rule is then checked here, in Python, on those segments.

Argument forms (upstream's README names the rules, not their argument syntax; ours, checked strictly):

==============================================  ==========================================================
rule                                            arguments
==============================================  ==========================================================
model_length[_each], model_length_word          ``[min, max]`` characters (words: whitespace-separated)
model_keyword[_each]                            a string or a list of strings: every one must occur
model_keyword_num[_each]                        ``[keyword, min]`` or ``[keyword, min, max]`` occurrences
model_forbidden_word[_each]                     a string or a list of strings: none may occur
model_startswith/endswith[_each]                a string or a list of strings: starts/ends with one of them
model_not_startswith/endswith                   a string or a list of strings: starts/ends with none
model_constraint_punc                           a string or a list of punctuation marks: none may occur
model_number_each                               ``[min, max]`` segments
Json                                            none, or a list of keys the JSON object(s) must hold
==============================================  ==========================================================

Arguments are JSON (Python literals such as single-quoted strings are accepted too). Non-``_each``
rules check the segments joined together; ``_each`` rules check every segment on its own. When the
judge found nothing to check (``None``), every rule fails: the response lacks what the question targets.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class RuleError(ValueError):
    """A rule string that is unknown or has malformed arguments."""


@dataclass(frozen=True)
class Rule:
    name: str
    args: tuple[Any, ...]
    text: str  # the rule string as given

    @property
    def each(self) -> bool:
        """Upstream uses its ``_each`` extraction prompt for every rule whose name contains "each"."""
        return "each" in self.name


# ---------------------------------------------------------------- normalisation

_LINE_MARKUP = re.compile(r"^[ \t]*(?:#{1,6}[ \t]*|[-*+>•][ \t]+|\d+[.、)）][ \t]*)", re.MULTILINE)
_INLINE_MARKUP = re.compile(r"[*_`#]")
_SPACE = re.compile(r"\s+")


def decom(text: str) -> str:
    """The normalised form for length checks: markdown line markers (headings, bullets, numbering),
    emphasis and code marks, and all whitespace removed. A length rule passes if the raw text or this
    form fits, so formatting the judge copied along with the content never decides a length check."""
    text = _LINE_MARKUP.sub("", text)
    text = _INLINE_MARKUP.sub("", text)
    return _SPACE.sub("", text)


def _in_range(value: int, low: int, high: int | None) -> bool:
    return value >= low and (high is None or value <= high)


# ---------------------------------------------------------------- argument parsing


def _literal(raw: str, rule_text: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise RuleError(f"rule {rule_text!r}: arguments {raw!r} are not a JSON or Python literal") from exc


def _strings(value: Any, rule_text: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise RuleError(f"rule {rule_text!r}: expected a string or a non-empty list of strings")
    if not all(isinstance(s, str) and s for s in items):
        raise RuleError(f"rule {rule_text!r}: every argument must be a non-empty string")
    return tuple(items)


def _count(value: Any, rule_text: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < 0:
        raise RuleError(f"rule {rule_text!r}: {what} must be a whole number >= 0, got {value!r}")
    return int(value)


def _range(value: Any, rule_text: str) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise RuleError(f"rule {rule_text!r}: expected [min, max]")
    low, high = _count(value[0], rule_text, "min"), _count(value[1], rule_text, "max")
    if low > high:
        raise RuleError(f"rule {rule_text!r}: min {low} is greater than max {high}")
    return low, high


def _keyword_num(value: Any, rule_text: str) -> tuple[str, int, int | None]:
    if not isinstance(value, (list, tuple)) or len(value) not in (2, 3):
        raise RuleError(f"rule {rule_text!r}: expected [keyword, min] or [keyword, min, max]")
    keyword = value[0]
    if not isinstance(keyword, str) or not keyword:
        raise RuleError(f"rule {rule_text!r}: the keyword must be a non-empty string")
    low = _count(value[1], rule_text, "min")
    high = _count(value[2], rule_text, "max") if len(value) == 3 and value[2] is not None else None
    if high is not None and low > high:
        raise RuleError(f"rule {rule_text!r}: min {low} is greater than max {high}")
    return keyword, low, high


def _json_keys(value: Any, rule_text: str) -> tuple[str, ...]:
    if value is None or value == []:
        return ()
    return _strings(value, rule_text)


_ARG_PARSERS: dict[str, Callable[[Any, str], Any]] = {
    "model_length": _range,
    "model_length_each": _range,
    "model_length_word": _range,
    "model_keyword": _strings,
    "model_keyword_each": _strings,
    "model_keyword_num": _keyword_num,
    "model_keyword_num_each": _keyword_num,
    "model_forbidden_word": _strings,
    "model_forbidden_word_each": _strings,
    "model_startswith": _strings,
    "model_startswith_each": _strings,
    "model_endswith": _strings,
    "model_endswith_each": _strings,
    "model_not_startswith": _strings,
    "model_not_endswith": _strings,
    "model_constraint_punc": _strings,
    "model_number_each": _range,
    "Json": _json_keys,
}
RULE_NAMES = tuple(_ARG_PARSERS)


def parse_rule(text: str) -> Rule:
    """Parse and validate a rule string; unknown names and malformed arguments raise RuleError."""
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"rule {text!r}: not a non-empty string")
    name, sep, raw_args = text.strip().partition(":")
    name = name.strip()
    if name not in _ARG_PARSERS:
        raise RuleError(f"unknown rule {name!r} in {text!r} (known: {', '.join(RULE_NAMES)})")
    if not sep or not raw_args.strip():
        if name != "Json":
            raise RuleError(f"rule {text!r}: {name} needs arguments ({name}:<arguments>)")
        return Rule(name=name, args=(), text=text)
    parsed = _ARG_PARSERS[name](_literal(raw_args.strip(), text), text)
    return Rule(name=name, args=parsed if isinstance(parsed, tuple) else (parsed,), text=text)


# ---------------------------------------------------------------- checks on one text


def _length_ok(text: str, low: int, high: int) -> bool:
    return _in_range(len(text), low, high) or _in_range(len(decom(text)), low, high)


def _json_ok(text: str, keys: Sequence[str]) -> bool:
    """Valid JSON (the text itself, else its first fenced block, else its outermost {...} or [...])
    whose object, or every object of its list, holds every key."""
    candidates = [text.strip()]
    fence = re.search(r"```(?:json|JSON)?\s*\n?(.*?)```", text, re.DOTALL)
    if fence:
        candidates.append(fence.group(1).strip())
    for opener, closer in (("{", "}"), ("[", "]")):
        start, end = text.find(opener), text.rfind(closer)
        if 0 <= start < end:
            candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if not keys:
            return True
        objects = value if isinstance(value, list) else [value]
        return bool(objects) and all(isinstance(o, dict) and all(k in o for k in keys) for o in objects)
    return False


def _check_one(name: str, args: tuple[Any, ...], text: str) -> bool:
    base = name.removesuffix("_each")
    stripped = text.strip()
    if base == "model_length":
        return _length_ok(text, args[0], args[1])
    if base == "model_length_word":
        return _in_range(len(text.split()), args[0], args[1])
    if base == "model_keyword":
        return all(k in text for k in args)
    if base == "model_keyword_num":
        keyword, low, high = args
        return _in_range(text.count(keyword), low, high)
    if base in ("model_forbidden_word", "model_constraint_punc"):
        return not any(k in text for k in args)
    if base == "model_startswith":
        return any(stripped.startswith(p.strip()) for p in args)
    if base == "model_endswith":
        return any(stripped.endswith(p.strip()) for p in args)
    if base == "model_not_startswith":
        return not any(stripped.startswith(p.strip()) for p in args)
    if base == "model_not_endswith":
        return not any(stripped.endswith(p.strip()) for p in args)
    if base == "Json":
        return _json_ok(text, args)
    raise RuleError(f"rule {name!r} has no check")  # unreachable: parse_rule knows the same names


def check_rule(rule: Rule, segments: Sequence[str] | None) -> bool:
    """Whether the extracted ``segments`` satisfy ``rule``. ``None`` or no segments: nothing to check, False."""
    if not segments:
        return False
    if rule.name == "model_number_each":
        return _in_range(len(segments), rule.args[0], rule.args[1])
    if rule.each:
        return all(_check_one(rule.name, rule.args, seg) for seg in segments)
    if rule.name in ("model_length", "model_length_word"):
        joined = ("" if rule.name == "model_length" else " ").join(segments)
    else:
        joined = "\n".join(segments)
    return _check_one(rule.name, rule.args, joined)
