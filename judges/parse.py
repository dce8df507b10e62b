"""Parsers of judge replies, by name. A judge config names its parser; a parser turns the judge's reply
text into scores or raises :class:`JudgeParseError` with one of the error kinds of ``types.ERROR_KINDS``.
A parser also gives the JSON schema that structured outputs ask the endpoint to follow.

Parsers are strict on purpose: a missing score, a wrong number of scores or a value outside the scale is
a judge failure (retried, then recorded), never a guess.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from iopo_eval.judges.types import ErrorKind


class JudgeParseError(ValueError):
    def __init__(self, error_kind: ErrorKind, message: str) -> None:
        super().__init__(message)
        self.error_kind = error_kind


@dataclass(frozen=True)
class ParsedJudgement:
    scores: list[float]
    reasons: list[str] | None
    overall: float | None


@dataclass(frozen=True)
class ParserSpec:
    name: str
    parse: Callable[[str, int], ParsedJudgement]
    schema: Callable[[int], dict[str, Any]] | None = None  # JSON schema for structured outputs
    # Parsers of upstream reply formats check the reply against the request (CFBench echoes each checkpoint's
    # text): called with the request's fields instead of ``parse`` where the engine has them (``for_request``).
    parse_in_context: Callable[[str, Mapping[str, Any], int], ParsedJudgement] | None = None

    def for_request(self, fields: Mapping[str, Any]) -> ParserSpec:
        """This parser with one request's fields bound (itself when it does not read them)."""
        if self.parse_in_context is None:
            return self
        read = self.parse_in_context
        return dataclasses.replace(self, parse=lambda reply, n_expected: read(reply, fields, n_expected))


PARSERS: dict[str, ParserSpec] = {}


def register_parser(spec: ParserSpec) -> ParserSpec:
    if spec.name in PARSERS:
        raise ValueError(f"a judge reply parser named {spec.name!r} is already registered")
    PARSERS[spec.name] = spec
    return spec


def get_parser(name: str) -> ParserSpec:
    try:
        return PARSERS[name]
    except KeyError:
        raise KeyError(f"no judge reply parser named {name!r} (known: {sorted(PARSERS)})") from None


# --- helpers shared by parsers ----------------------------------------------------------------------
_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```\s*$", re.DOTALL)


def strip_fences(text: str) -> str:
    match = _FENCE.match(text.strip())
    return match.group(1) if match else text.strip()


def json_objects(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Every well-formed JSON object in ``text`` with its start offset (nested ones included).

    Scanning each ``{`` with ``raw_decode`` is quadratic in the worst case, which is fine for judge
    replies (a few KB)."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, dict[str, Any]]] = []
    for match in re.finditer(r"\{", text):
        try:
            obj, _end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            found.append((match.start(), obj))
    return found


def check_score(value: Any, where: str, *, half_steps: bool = True) -> float:
    """A score on the 0-10 scale: a JSON number (not a boolean or a string), optionally in 0.5 steps."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JudgeParseError("out_of_range", f"{where}: expected a number from 0 to 10, got {value!r}")
    score = float(value)
    if not math.isfinite(score) or not 0.0 <= score <= 10.0:
        raise JudgeParseError("out_of_range", f"{where}: {value!r} is outside 0-10")
    if half_steps and score * 2 != int(score * 2):
        raise JudgeParseError("out_of_range", f"{where}: {value!r} is not a whole or half point")
    return score


# --- trace_scores ---------------------------------------------------------------------------------
def trace_schema(n_expected: int) -> dict[str, Any]:
    """``reason`` precedes ``score`` so that a model decoding in schema order explains before scoring."""
    entry = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "minimum": 1, "maximum": n_expected},
            "reason": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 10},
        },
        "required": ["index", "reason", "score"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "constraints": {
                "type": "array",
                "items": entry,
                "minItems": n_expected,
                "maxItems": n_expected,
            },
            "overall": {"type": "number", "minimum": 0, "maximum": 10},
        },
        "required": ["constraints", "overall"],
        "additionalProperties": False,
    }


def numbered_entries(entries: list[Any], n_expected: int, noun: str) -> list[dict[str, Any]]:
    """The judge's per-item answers: exactly ``n_expected`` objects, ``index`` 1..n in order, each with a
    ``score`` (its value is checked by the caller). Anything else is a parse failure, never a score."""
    if len(entries) != n_expected:
        raise JudgeParseError("wrong_count", f"expected {n_expected} {noun} scores, got {len(entries)}")
    for position, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise JudgeParseError("parse_error", f"{noun} entry {position} is not an object: {entry!r}")
        index = entry.get("index")
        if isinstance(index, bool) or not isinstance(index, int) or index != position:
            raise JudgeParseError("parse_error", f"{noun} entry {position} has index {index!r}")
        if "score" not in entry:
            raise JudgeParseError("parse_error", f"{noun} {position} has no score")
    return entries


def _has_trace_shape(obj: dict[str, Any]) -> bool:
    return isinstance(obj.get("constraints"), list)


def _trace_from_json(obj: dict[str, Any], n_expected: int) -> ParsedJudgement:
    scores: list[float] = []
    reasons: list[str] = []
    for position, entry in enumerate(numbered_entries(obj["constraints"], n_expected, "constraint"), start=1):
        scores.append(check_score(entry["score"], f"constraint {position} score"))
        reason = entry.get("reason")
        if not isinstance(reason, str):
            raise JudgeParseError("parse_error", f"constraint {position} has no reason string")
        reasons.append(reason)
    if "overall" not in obj:
        raise JudgeParseError("parse_error", "no overall score")
    overall = check_score(obj["overall"], "overall score", half_steps=False)
    return ParsedJudgement(scores=scores, reasons=reasons, overall=overall)


_FINE = re.compile(r"Fine[ _-]?Grained Score\s*:\s*", re.IGNORECASE)
_OVERALL = re.compile(r"Constraints Overall Score\s*:\s*\[\[\s*([0-9]+(?:\.[0-9]+)?)\s*\]\]", re.IGNORECASE)


def _trace_from_upstream_text(reply: str, n_expected: int) -> ParsedJudgement | None:
    """Upstream's format: ``Fine Grained Score: [{"<constraint>": s, ...}]`` then
    ``Constraints Overall Score: [[d]]``. Returns None when the reply is not in that format."""
    fine = list(_FINE.finditer(reply))
    overall = list(_OVERALL.finditer(reply))
    if not fine or not overall:
        return None
    start = fine[-1].end()
    try:
        # Keep duplicate keys (two constraints with the same text) as separate scores.
        value, _ = json.JSONDecoder(object_pairs_hook=list).raw_decode(reply, start)
    except json.JSONDecodeError as exc:
        raise JudgeParseError("parse_error", f"Fine Grained Score is not valid JSON: {exc}") from exc
    groups = (
        value if isinstance(value, list) and value and all(isinstance(g, list) for g in value) else [value]
    )
    pairs: list[tuple[str, Any]] = []
    for group in groups:
        if not isinstance(group, list) or not all(isinstance(p, tuple) and len(p) == 2 for p in group):
            raise JudgeParseError(
                "parse_error", "Fine Grained Score is not a list of {constraint: score} objects"
            )
        pairs.extend(group)
    if len(pairs) != n_expected:
        raise JudgeParseError("wrong_count", f"expected {n_expected} constraint scores, got {len(pairs)}")
    scores = [check_score(score, f"constraint {i} score") for i, (_k, score) in enumerate(pairs, start=1)]
    total = check_score(float(overall[-1].group(1)), "overall score", half_steps=False)
    return ParsedJudgement(scores=scores, reasons=None, overall=total)


def _shaped_objects(text: str) -> list[tuple[int, dict[str, Any]]]:
    """Trace-shaped JSON objects (a ``constraints`` list) in ``text`` with their start offsets, leaving
    out any found inside another one (a fake answer quoted in a reason is not a second answer)."""
    decoder = json.JSONDecoder()
    found: list[tuple[int, dict[str, Any]]] = []
    inside_until = -1
    for match in re.finditer(r"\{", text):
        if match.start() < inside_until:
            continue
        try:
            obj, end = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and _has_trace_shape(obj):
            found.append((match.start(), obj))
            inside_until = end
    return found


def parse_trace_scores(reply: str, n_expected: int) -> ParsedJudgement:
    """Per-constraint 0-10 scores with reasons, plus an overall score.

    The judge's own answer is the whole reply when the reply is one JSON object (structured outputs, code
    fences allowed); otherwise it is the last structured answer in the reply: the last JSON object with a
    ``constraints`` list, or upstream's ``Fine Grained Score`` / ``Constraints Overall Score`` lines if
    they come later. Anything before it is quoted material (a judge that quotes a response's fake score
    block before answering is not credited with it), and an answer that fails the checks is a failure,
    never replaced by an earlier candidate. Exactly ``n_expected`` scores, indices 1..n in order, each a
    JSON number from 0 to 10 in whole or half points."""
    if n_expected < 1:
        raise ValueError(f"n_expected must be at least 1, got {n_expected}")
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the judge replied with no text")
    body = strip_fences(reply)
    try:
        whole = json.loads(body)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and _has_trace_shape(whole):
        return _trace_from_json(whole, n_expected)
    shaped = _shaped_objects(reply)
    fine = list(_FINE.finditer(reply))
    if fine and (not shaped or fine[-1].start() > shaped[-1][0]):
        parsed = _trace_from_upstream_text(reply[fine[-1].start() :], n_expected)
        if parsed is not None:
            return parsed
        raise JudgeParseError(
            "parse_error", "a Fine Grained Score line without a Constraints Overall Score after it"
        )
    if shaped:
        return _trace_from_json(shaped[-1][1], n_expected)
    raise JudgeParseError(
        "parse_error", "no JSON object with a 'constraints' list and no upstream score lines"
    )


register_parser(ParserSpec(name="trace_scores", parse=parse_trace_scores, schema=trace_schema))
