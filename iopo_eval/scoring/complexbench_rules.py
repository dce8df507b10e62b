"""ComplexBench rule checks, with the semantics of upstream's checker (protocols.md §4.3).

A rule question carries a rule string such as ``model_length:[300,10000]``, ``model_keyword:[春天, 花]``
or ``model_startswith:以下为修正内容``. The extraction judge copies the part of the response that the
question targets; :func:`split_extraction` turns its reply into segments the way upstream's
``rule_based_evaluation.preprocess`` does, and :func:`judge_rule` checks the rule on those segments,
returning what upstream's ``con_rule.decompose_judge`` returns: True, False, or 2 (:data:`UNKNOWN`) for a
rule upstream does not know. Where upstream's code raises (a rule whose arguments its code cannot read,
or a text its helpers cannot handle) :func:`judge_rule` raises :class:`RuleError`.

The semantics follow upstream's code, not its intent; the quirks that matter (tasks/complexbench/README.md
lists them all):

- The rule is recognised by substring tests on the whole string, arguments included, in upstream's
  order: a rule is read by the first family whose name occurs in it. Any other rule mentioning "model" or
  "each" is unknown (2); a rule without the ``model_`` prefix goes to a second set of checks
  (``keyword:``, ``forbidden_word:``, ``match:``, ``constraint_punc:``, ``startswith:``, ``not endswith:``,
  ``endswith:``, ``length_word:``, ``length:``, ``Json:``), unknown ones again 2.
- List arguments are the text between the outer brackets split on ASCII commas, parts stripped of
  whitespace (``model_keyword_num_each`` keeps the whitespace); nothing is quoted. Start/end arguments
  are the raw text after the colon. Numeric ranges are Python literals (read here with
  :func:`ast.literal_eval`: never executed; an expression that is not a literal is a :class:`RuleError`,
  where upstream would have evaluated it).
- ASCII punctuation is turned full-width (and curly double quotes straight) in the arguments, and in
  the segments only where upstream converts them (``_each`` checks, start/end checks, the un-prefixed
  rules), so e.g. ``model_keyword:[Hi!]`` never matches ``Hi!``.
- Nothing extracted (no segment, or one empty segment) fails every rule except the forbidden-word and
  not-starts/ends-with ones, which pass. Non-``_each`` rules read the first segment only;
  ``model_endswith_each`` ignores the last of several segments; ``_each`` rules skip empty segments.
- ``model_keyword_num[_each]:[L, R, k1, k2, ...]`` counts how many of the listed keywords occur.
- ``model_constraint_punc`` lists the punctuation marks that are *allowed*; ``Json:[...]`` wants a JSON
  object (the first balanced ``{...}`` of the text) with exactly the listed keys.
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections.abc import Callable, Sequence
from typing import Any

UNKNOWN = 2  # upstream's verdict for a rule it cannot check; its aggregation gives it its own meaning

Verdict = bool | int  # True, False or UNKNOWN


class RuleError(ValueError):
    """Upstream's checker would raise here: the rule's arguments cannot be read as upstream reads them,
    or a helper of upstream's fails on this text (e.g. a segment made of newlines only)."""


# ---------------------------------------------------------------- text helpers

# The 15 ASCII marks upstream turns into Chinese (full-width) forms; the other 17 ASCII marks stay.
# "." becomes the ideographic full stop, the rest their full-width form (code point + 0xFEE0).
_TO_CHINESE_MARKS = {c: chr(ord(c) + 0xFEE0) for c in "!#$%&()*,:;?\\^"} | {".": "\u3002"}
_CHINESE_PUNCTUATION = str.maketrans(_TO_CHINESE_MARKS | {"\u201c": '"', "\u201d": '"'})
# Every mark a punctuation constraint looks for: the 32 ASCII marks after that conversion.
_CHECKED_MARKS = tuple(_TO_CHINESE_MARKS.get(c, c) for c in string.punctuation)


def to_chinese_punctuation(text: str) -> str:
    """ASCII punctuation in upstream's full-width forms, curly double quotes straightened."""
    return text.translate(_CHINESE_PUNCTUATION)


def decom(text: str) -> str:
    """Upstream's normalisation for a second try of some checks: leading newlines dropped, then one
    pair of wrapping quotes or backticks removed. A text of newlines only makes upstream fail."""
    if not text:
        return ""
    body = text.lstrip("\n")
    if not body:
        raise RuleError("upstream's decom fails on a text made of newlines only")
    if body[0] in '"\u201c`' and body[-1] in '"\u201d`':
        return body[1:-1]
    return body


def _starts(text: str, prefix: str) -> bool:
    # Upstream also tries prefix + "。" and prefix + "？", which can only match when prefix itself does.
    return text.startswith(to_chinese_punctuation(prefix))


def _ends(text: str, suffix: str) -> bool:
    """Ends with the (converted) suffix, or with it followed by 。 or ？."""
    tail = to_chinese_punctuation(suffix)
    return any(text.endswith(tail + extra) for extra in ("", "\u3002", "\uff1f"))


def _has_all(text: str, words: Sequence[str]) -> bool:
    return all(to_chinese_punctuation(w) in text for w in words)


def _has_none(text: str, words: Sequence[str]) -> bool:
    return not any(to_chinese_punctuation(w) in text for w in words)


def _how_many(text: str, words: Sequence[str]) -> int:
    return sum(to_chinese_punctuation(w) in text for w in words)


def _only_allowed_marks(text: str, allowed: Sequence[str]) -> bool:
    allowed_marks = [to_chinese_punctuation(a) for a in allowed]
    return not any(mark in text and mark not in allowed_marks for mark in _CHECKED_MARKS)


def _in_range(value: int, bounds: Any) -> bool:
    # Evaluated lazily as upstream does: the upper bound is read only when the lower one holds.
    return value >= bounds[0] and value <= bounds[1]


def _word_count(text: str) -> int:
    return len(text.split())


def _first_braced(text: str) -> str:
    """The first balanced {...} block, counting braces only (strings are not understood); else ""."""
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return ""


def _json_with_keys(text: str, keys: Any) -> bool:
    """A JSON object holding every listed key, and no other key when keys are listed ("" is ignored)."""
    wanted = [k for k in keys if k != ""]
    try:
        value = json.loads(_first_braced(text))
        if type(value) is not dict:
            return False
        if any(k not in value for k in wanted):
            return False
        return len(value) == len(wanted) or not wanted
    except (ValueError, TypeError, RecursionError):
        return False


# ---------------------------------------------------------------- reading the arguments


def _argument(rule: str, pattern: re.Pattern[str], group: int = 1) -> str:
    found = pattern.search(rule)
    if found is None:
        raise RuleError(
            f"rule {rule!r}: upstream cannot read its arguments (no match for {pattern.pattern!r})"
        )
    return found.group(group)


def _bracketed(name: str, dotall: bool = False) -> re.Pattern[str]:
    """``<name>:[...]`` ending the rule (the last line, unless dotall lets it span lines)."""
    return re.compile(re.escape(name) + r":(\[.*?\])$", re.DOTALL if dotall else 0)


def _text_after(name: str) -> re.Pattern[str]:
    """``<name>:<text>`` up to the end of the rule (the text may span lines)."""
    return re.compile(re.escape(name) + r":(.*?)$", re.DOTALL)


def _items(bracketed: str, strip: bool = True) -> list[str]:
    parts = bracketed.strip("[]").split(",")
    return [p.strip() for p in parts] if strip else parts


def _literal(rule: str, text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise RuleError(f"rule {rule!r}: {text!r} is not a Python literal") from exc


def _bounds_and_keywords(bracketed: str, strip: bool) -> tuple[int, int, list[str]]:
    parts = _items(bracketed, strip)
    return int(parts[0]), int(parts[1]), parts[2:]


# ---------------------------------------------------------------- the model_ rules

Segments = list[str]


def _nothing(segments: Segments) -> bool:
    """Upstream's "nothing extracted": no segment, or a single empty one."""
    return len(segments) == 0 or (len(segments) == 1 and segments[0] == "")


def _each(segments: Segments, check: Callable[[str], bool]) -> bool:
    # Every non-empty segment is checked, even after a failure: upstream's loop has no early exit, so a
    # later segment can still make it raise.
    return all([check(s) for s in segments if s != ""])


def _keyword_each(rule: str, segs: Segments) -> Verdict:
    def ok(s: str) -> bool:
        return _has_all(to_chinese_punctuation(s), _items(_argument(rule, _P["model_keyword_each"])))

    return _each(segs, ok)


def _keyword_num_forbidden_each(rule: str, segs: Segments) -> Verdict:
    found = _P["keyword_num_forbidden_each"].search(rule)
    if found is None:
        raise RuleError(
            f"rule {rule!r}: expected model_keyword_num_each:[...] and model_forbidden_word_each:[...]"
        )
    low, high, keywords = _bounds_and_keywords(found.group(1), strip=False)
    forbidden = _items(found.group(2), strip=False)
    return _each(segs, lambda s: low <= _how_many(s, keywords) <= high and _how_many(s, forbidden) == 0)


def _keyword_num_each(rule: str, segs: Segments) -> Verdict:
    low, high, keywords = _bounds_and_keywords(_argument(rule, _P["model_keyword_num_each"]), strip=False)
    return _each(segs, lambda s: low <= _how_many(s, keywords) <= high)


def _keyword_num(rule: str, segs: Segments) -> Verdict:
    low, high, keywords = _bounds_and_keywords(_argument(rule, _P["model_keyword_num"]), strip=True)
    return low <= _how_many(segs[0], keywords) <= high


def _keyword(rule: str, segs: Segments) -> Verdict:
    return _has_all(segs[0], _items(_argument(rule, _P["model_keyword"])))


def _forbidden_each(rule: str, segs: Segments) -> Verdict:
    def ok(s: str) -> bool:
        return _has_none(to_chinese_punctuation(s), _items(_argument(rule, _P["model_forbidden_word_each"])))

    return _each(segs, ok)


def _forbidden(rule: str, segs: Segments) -> Verdict:
    return _has_none(segs[0], _items(_argument(rule, _P["model_forbidden_word"])))


def _number_each(rule: str, segs: Segments) -> Verdict:
    return _in_range(len(segs), _literal(rule, _argument(rule, _P["model_number_each"])))


def _length_each(rule: str, segs: Segments) -> Verdict:
    bounds = _literal(rule, _argument(rule, _P["model_length_each"]))
    return _each(segs, lambda s: _in_range(len(s), bounds) or _in_range(len(decom(s)), bounds))


def _length_word_each(rule: str, segs: Segments) -> Verdict:
    bounds = _literal(rule, _argument(rule, _P["model_length_word_each"]))
    return _each(
        segs, lambda s: _in_range(_word_count(s), bounds) or _in_range(_word_count(decom(s)), bounds)
    )


def _length_word(rule: str, segs: Segments) -> Verdict:
    bounds = _literal(rule, _argument(rule, _P["model_length_word"]))
    first = segs[0]
    return _in_range(_word_count(first), bounds) or _in_range(_word_count(decom(first)), bounds)


def _length(rule: str, segs: Segments) -> Verdict:
    bounds = _literal(rule, _argument(rule, _P["model_length"]))
    first = segs[0]
    return _in_range(len(decom(first)), bounds) or _in_range(len(first), bounds)


def _startswith_each(rule: str, segs: Segments) -> Verdict:
    return _each(
        segs, lambda s: _starts(to_chinese_punctuation(s), _argument(rule, _P["model_startswith_each"]))
    )


def _starts_with_list_each(rule: str, segs: Segments) -> Verdict:
    prefixes = _items(_argument(rule, _P["model_starts_with_list_each"]))
    if len(segs) != len(prefixes):
        return False
    # Segment i must start with prefix i.
    return all(
        [_starts(to_chinese_punctuation(s), p) for s, p in zip(segs, prefixes, strict=True) if s != ""]
    )


def _startswith_and_endswith(rule: str, segs: Segments) -> Verdict:
    first = to_chinese_punctuation(segs[0])
    prefix = _argument(rule, _P["startswith_endswith"], 1)
    suffix = _argument(rule, _P["startswith_endswith"], 2)
    return _starts(first, prefix) and _ends(first, suffix)


def _startswith(rule: str, segs: Segments) -> Verdict:
    return _starts(to_chinese_punctuation(segs[0]), _argument(rule, _P["model_startswith"]))


def _endswith_each(rule: str, segs: Segments) -> Verdict:
    checked = segs if len(segs) == 1 else segs[:-1]  # upstream leaves the last of several segments out

    def ok(s: str) -> bool:
        s = to_chinese_punctuation(s)
        return _ends(decom(s), _argument(rule, _P["model_endswith_each"])) or _ends(
            s, _argument(rule, _P["model_endswith_each"])
        )

    return _each(checked, ok)


def _endswith(rule: str, segs: Segments) -> Verdict:
    return _ends(to_chinese_punctuation(segs[0]), _argument(rule, _P["model_endswith"]))


def _constraint_punc_each(rule: str, segs: Segments) -> Verdict:
    def ok(s: str) -> bool:
        s = to_chinese_punctuation(s)
        allowed = _items(_argument(rule, _P["model_constraint_punc_each"]))
        return _only_allowed_marks(decom(s), allowed) or _only_allowed_marks(s, allowed)

    return _each(segs, ok)


def _constraint_punc(rule: str, segs: Segments) -> Verdict:
    allowed = _items(_argument(rule, _P["model_constraint_punc"]))
    return _only_allowed_marks(decom(segs[0]), allowed)


def _not_startswith(rule: str, segs: Segments) -> Verdict:
    return not _starts(to_chinese_punctuation(segs[0]), _argument(rule, _P["model_not_startswith"]))


def _not_endswith_each(rule: str, segs: Segments) -> Verdict:
    return _each(
        segs, lambda s: not _ends(to_chinese_punctuation(s), _argument(rule, _P["model_not_endswith_each"]))
    )


def _not_endswith(rule: str, segs: Segments) -> Verdict:
    return not _ends(to_chinese_punctuation(segs[0]), _argument(rule, _P["model_not_endswith"]))


_P: dict[str, re.Pattern[str]] = {
    **{
        name: _bracketed(name)
        for name in (
            "model_keyword_each",
            "model_keyword_num",
            "model_keyword",
            "model_forbidden_word_each",
            "model_forbidden_word",
            "model_number_each",
            "model_length_each",
            "model_length_word_each",
            "model_length_word",
            "model_length",
            "model_starts_with_list_each",
            "model_constraint_punc_each",
            "model_constraint_punc",
        )
    },
    "model_keyword_num_each": _bracketed("model_keyword_num_each", dotall=True),
    "keyword_num_forbidden_each": re.compile(
        r"model_keyword_num_each:(\[.*?\])\nmodel_forbidden_word_each:(\[.*?\])$", re.DOTALL
    ),
    "startswith_endswith": re.compile(r"model_startswith:(.*?)\nmodel_endswith:(.*?)$", re.DOTALL),
    **{
        name: _text_after(name)
        for name in (
            "model_startswith_each",
            "model_startswith",
            "model_endswith_each",
            "model_endswith",
            "model_not_startswith",
            "model_not_endswith_each",
            "model_not_endswith",
        )
    },
}

# (names that must all occur in the rule, check, verdict when nothing was extracted), in upstream's order.
_MODEL_RULES: tuple[tuple[tuple[str, ...], Callable[[str, Segments], Verdict], bool], ...] = (
    (("model_keyword_each",), _keyword_each, False),
    (("model_keyword_num_each", "model_forbidden_word_each"), _keyword_num_forbidden_each, False),
    (("model_keyword_num_each",), _keyword_num_each, False),
    (("model_keyword_num",), _keyword_num, False),
    (("model_keyword",), _keyword, False),
    (("model_forbidden_word_each",), _forbidden_each, True),
    (("model_forbidden_word",), _forbidden, True),
    (("model_number_each",), _number_each, False),
    (("model_length_each",), _length_each, False),
    (("model_length_word_each",), _length_word_each, False),
    (("model_length_word",), _length_word, False),
    (("model_length:",), _length, False),
    (("model_startswith_each",), _startswith_each, False),
    (("model_starts_with_list_each",), _starts_with_list_each, False),
    (("model_startswith", "model_endswith"), _startswith_and_endswith, False),
    (("model_startswith",), _startswith, False),
    (("model_endswith_each",), _endswith_each, False),
    (("model_endswith",), _endswith, False),
    (("model_constraint_punc_each",), _constraint_punc_each, False),
    (("model_constraint_punc",), _constraint_punc, False),
    (("model_not_startswith",), _not_startswith, True),
    (("model_not_endswith_each",), _not_endswith_each, True),
    (("model_not_endswith",), _not_endswith, True),
)


# ---------------------------------------------------------------- the rules without the model_ prefix


def _plain_keyword_and_forbidden(rule: str, text: str) -> Verdict:
    keywords = _items(_argument(rule, _Q["keyword"]))
    forbidden = _items(_argument(rule, _Q["forbidden_word"]))
    return _has_all(text, keywords) and _has_none(text, forbidden)


def _plain_match(rule: str, text: str) -> Verdict:
    target = _argument(rule, _Q["match"])  # not converted: ASCII punctuation in it never matches
    return text in (target, target + "\u3002", target + ".")


def _plain_startswith_and_endswith(rule: str, text: str) -> Verdict:
    prefix = _argument(rule, _Q["startswith_endswith"], 1)
    suffix = _argument(rule, _Q["startswith_endswith"], 2)
    return _starts(text, prefix) and _ends(text, suffix)


def _plain_json(rule: str, text: str) -> Verdict:
    found = _Q["Json"].search(rule.strip())
    if found is None:
        raise RuleError(f"rule {rule!r}: upstream cannot read its arguments (expected Json:[...])")
    return _json_with_keys(text, _literal(rule, found.group(1)))


_Q: dict[str, re.Pattern[str]] = {
    "keyword": _bracketed("keyword"),
    "forbidden_word": _bracketed("forbidden_word"),
    "match": re.compile(r"match:(.*?)$"),
    "constraint_punc": _bracketed("constraint_punc"),
    "startswith_endswith": re.compile(r"startswith:(.*?)\nendswith:(.*?)$", re.DOTALL),
    "startswith": _text_after("startswith"),
    "not endswith": _text_after("not endswith"),
    "endswith": _text_after("endswith"),
    "length_word": _bracketed("length_word", dotall=True),
    "length": _bracketed("length", dotall=True),
    "Json": _bracketed("Json", dotall=True),
}

# (test on the rule, check on the converted text, verdict when the text is empty or holds "None").
# The JSON check reads the text before conversion, so it is handled apart.
_PLAIN_RULES: tuple[tuple[Callable[[str], bool], Callable[[str, str], Verdict], bool], ...] = (
    (lambda r: "keyword" in r and "forbidden_word" in r, _plain_keyword_and_forbidden, False),
    (
        lambda r: "keyword" in r and "keyword_num" not in r,
        lambda rule, t: _has_all(t, _items(_argument(rule, _Q["keyword"]))),
        False,
    ),
    (lambda r: "match" in r, _plain_match, False),
    (
        lambda r: "constraint_punc" in r,
        lambda rule, t: _only_allowed_marks(t, _items(_argument(rule, _Q["constraint_punc"]))),
        False,
    ),
    (
        lambda r: "forbidden_word" in r,
        lambda rule, t: _has_none(t, _items(_argument(rule, _Q["forbidden_word"]))),
        True,
    ),
    (lambda r: "startswith" in r and "endswith" in r, _plain_startswith_and_endswith, False),
    (lambda r: "startswith" in r, lambda rule, t: _starts(t, _argument(rule, _Q["startswith"])), False),
    (lambda r: "not endswith" in r, lambda rule, t: not _ends(t, _argument(rule, _Q["not endswith"])), True),
    (lambda r: "endswith" in r, lambda rule, t: _ends(t, _argument(rule, _Q["endswith"])), False),
    (
        lambda r: "length_word:" in r,
        lambda rule, t: _in_range(_word_count(t), _literal(rule, _argument(rule, _Q["length_word"]))),
        False,
    ),
    (
        lambda r: "length:" in r,
        lambda rule, t: _in_range(len(t), _literal(rule, _argument(rule, _Q["length"]))),
        False,
    ),
)


def _plain_rule(rule: str, text: str) -> Verdict:
    """One un-prefixed rule on one text (upstream's ``rule``)."""
    for applies, check, when_empty in _PLAIN_RULES:
        if applies(rule):
            if text == "" or "None" in text:
                return when_empty
            return check(rule, to_chinese_punctuation(text))
    if "Json" in rule:
        if text == "" or "None" in text:
            return False
        return _plain_json(rule, text)
    return UNKNOWN


# ---------------------------------------------------------------- entry points


def judge_rule(rule: str, segments: Sequence[str]) -> Verdict:
    """Upstream's ``decompose_judge(rule, segments)``: True, False or :data:`UNKNOWN` (2).

    Raises :class:`RuleError` exactly where upstream's function raises. ``segments`` is not modified."""
    segs = list(segments)
    try:
        for names, check, when_nothing in _MODEL_RULES:
            if all(name in rule for name in names):
                return when_nothing if _nothing(segs) else check(rule, segs)
        if "model" in rule or "each" in rule:
            return UNKNOWN
        if not segs:
            return _plain_rule(rule, "")
        # The normalised first segment first, then the raw one; a 2 from the first stands.
        return _plain_rule(rule, decom(segs[0])) or _plain_rule(rule, segs[0])
    except (IndexError, TypeError, ValueError, KeyError, RecursionError) as exc:
        if isinstance(exc, RuleError):
            raise
        raise RuleError(
            f"rule {rule!r}: upstream's checker fails on it ({type(exc).__name__}: {exc})"
        ) from exc


# Markers of upstream's extraction reply format (RAL_extractor's output format).
_ANSWER_HEADER = "【模型回复中评分问题的评测对象】\n"
_NOTE_TRAILERS = ("\n\n请注意", "\n\n**注意", "\n\n注意")
_SEGMENT_MARKERS = ("评分对象：", "评测对象：", "：")


def split_extraction(response: str | None, extraction: str | None) -> list[str]:
    """The segments upstream's ``preprocess(response, extraction)`` gives the rules.

    After the last answer header, before the last trailing note, after the last segment marker
    (评分对象：, else 评测对象：, else the last full-width colon): text starting with "all" means the whole
    response, text containing "None" means nothing, anything else is split on "||" and each part
    stripped (empty parts kept). A missing reply (None) is nothing."""
    if extraction is None or response is None:
        return []
    text = extraction
    if _ANSWER_HEADER in text:
        text = text.rsplit(_ANSWER_HEADER, 1)[1]
    for trailer in _NOTE_TRAILERS:
        text = text.rsplit(trailer, 1)[0]
    marker = next((m for m in _SEGMENT_MARKERS if m in text), None)
    if marker is not None:
        text = text.rsplit(marker, 1)[1]
    if text.startswith("all"):
        return [response]
    if "None" in text:
        return []
    return [part.strip() for part in text.split("||")]


def uses_each_prompt(rule: str) -> bool:
    """Upstream extracts with its ``_each`` prompt when the rule string contains "each" anywhere."""
    return "each" in rule
