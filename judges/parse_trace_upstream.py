"""TRACE judge replies in upstream's format (the reply format that ``trace/upstream/template.py`` asks for):

    Explanation:
    1. <reason> ... 10
    2. <reason> ... 0
    Fine Grained Score: [{"<constraint>": 10, "<constraint>": 0}]
    Constraints Overall Score: [[5]]

Three things are read (parser ``trace_upstream``):

- **The overall score, exactly as upstream's ``trace.py`` reads it**: the *first* match of
  ``Constraints Overall Score:`` + whitespace + ``[[`` digits-and-dots ``]]``, converted with ``float``;
  when there is no match or the number does not convert (``[[1.2.3]]``), there is no overall
  (``overall_parsed`` false), as upstream's ``matched = None``. No range check: upstream has none.
- **The fine-grained scores** (upstream never reads them; the paper's all-10 rule needs them): the JSON
  after the last ``Fine Grained Score`` label (``**bold**``, a code fence or a newline before the JSON are
  fine). Accepted shapes: upstream's ``[{text: score, ...}]``, several one-key objects, a bare object, a
  bare list of numbers, or objects with a ``score`` key. When the JSON does not decode (GPT-4o sometimes
  leaves a quote inside a Chinese key unescaped), the ``: <number>`` values inside the brackets are read
  in order instead, and only by order. Scores are numbers (or numeric strings) from 0 to 10; anything
  else is a parse failure, never a guess.
- **The per-constraint explanations**: the numbered items before the scores, when they are numbered
  exactly 1..n; otherwise none (the raw reply keeps them).

Matching scores to the row's constraints: by order, unless the keys name the constraints in another
order. A key "names" a constraint when it equals the constraint's text after both lose their leading
number, surrounding whitespace and trailing punctuation (upstream's own example abbreviates the
constraints, so keys are usually not exact). If every key names a different constraint, scores go to
the constraints they name; if some key names a constraint other than the one at its position but the
keys do not name every constraint once, the reply cannot be matched and is a parse failure. A count
that differs from the number of constraints is a failure too (``wrong_count``): the engine asks again,
then records the failure.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iopo_eval.judges.parse import JudgeParseError, ParsedJudgement, ParserSpec, register_parser

PARSER_NAME = "trace_upstream"

# trace.py's reading of the overall score: a literal label, whitespace, [[, ASCII digits and dots, ]].
_UPSTREAM_OVERALL = re.compile(r"Constraints Overall Score:\s*\[\[([0-9.]+)\]\]")
_FINE_LABEL = re.compile(r"Fine[ _-]?Grained[ _-]?Scores?\s*(?:\*\*)?\s*[:：]", re.IGNORECASE)
_OVERALL_LABEL = re.compile(r"Constraints?\s+Overall\s+Score", re.IGNORECASE)
_EXPLANATION_LABEL = re.compile(r"Explanations?\s*(?:\*\*)?\s*[:：]", re.IGNORECASE)
_NUMBERED = re.compile(r"^[ \t]*(?:[-*][ \t]*)?(?:\*\*)?[ \t]*(\d+)[ \t]*[.、．)）]", re.MULTILINE)
_LOOSE_SCORE = re.compile(r"""["'”’]\s*[:：]\s*(-?\d+(?:\.\d+)?)\s*(?=[,，}\]\n])""")
_NUMERIC = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_LEADING_NUMBER = re.compile(r"^\s*\d+\s*[.、．)）]\s*")
_TRAILING_PUNCT = re.compile(r"[\s；;。.，,！!]+$")
_SCORE_KEYS = ("score", "得分", "分数")


@dataclass(frozen=True)
class TraceUpstreamReply:
    scores: list[float]  # one per constraint, in the row's order
    explanations: list[str] | None  # one per constraint when the judge numbered them 1..n
    overall: float | None  # upstream's reading; None when it does not parse
    matched_by: str  # "order" | "text"
    fine_format: str  # "json" | "loose" (values read in order from JSON that does not decode)

    @property
    def overall_parsed(self) -> bool:
        return self.overall is not None


def upstream_overall(reply: str) -> float | None:
    """The overall score as upstream's trace.py reads it: first match, ``float``, None on failure."""
    match = _UPSTREAM_OVERALL.search(reply)
    if match is None:
        return None
    try:
        return float(match.group(1).strip())
    except ValueError:
        return None


def normalise(text: str) -> str:
    """A constraint or key as compared: no leading number, surrounding whitespace or trailing punctuation."""
    text = _LEADING_NUMBER.sub("", text.strip())
    return " ".join(_TRAILING_PUNCT.sub("", text).split()).casefold()


def _score(value: Any, where: str) -> float:
    if isinstance(value, str) and _NUMERIC.match(value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JudgeParseError("out_of_range", f"{where}: expected a number from 0 to 10, got {value!r}")
    score = float(value)
    if not math.isfinite(score) or not 0.0 <= score <= 10.0:
        raise JudgeParseError("out_of_range", f"{where}: {value!r} is outside 0-10")
    return score


def _entries(value: Any) -> list[tuple[str | None, Any]]:
    """(key, score) pairs from the decoded JSON (objects decoded as lists of pairs, keeping order and
    duplicate keys)."""

    def is_object(v: Any) -> bool:
        return isinstance(v, list) and all(isinstance(p, tuple) and len(p) == 2 for p in v) and bool(v)

    def from_object(pairs: list[tuple[str, Any]]) -> list[tuple[str | None, Any]]:
        keys = [k for k, _ in pairs]
        score_key = next((k for k in keys if k.strip().casefold() in _SCORE_KEYS), None)
        if score_key is not None and len(pairs) == 2:  # {"constraint": "...", "score": 10}
            other = next(v for k, v in pairs if k != score_key)
            return [(other if isinstance(other, str) else None, dict(pairs)[score_key])]
        return list(pairs)

    if is_object(value):
        return from_object(value)
    if isinstance(value, list) and value:
        out: list[tuple[str | None, Any]] = []
        for item in value:
            if is_object(item):
                out.extend(from_object(item))
            elif isinstance(item, list) and not item:
                raise JudgeParseError("parse_error", "Fine Grained Score holds an empty object")
            else:
                out.append((None, item))  # a bare list of scores
        return out
    raise JudgeParseError("parse_error", "Fine Grained Score is neither a list nor an object of scores")


def _fine_grained(reply: str) -> tuple[list[tuple[str | None, Any]], str, int]:
    """The entries after the last Fine Grained Score label, how they were read, and where the label is."""
    labels = list(_FINE_LABEL.finditer(reply))
    if not labels:
        raise JudgeParseError("parse_error", "no 'Fine Grained Score' in the reply")
    label = labels[-1]
    overall = _OVERALL_LABEL.search(reply, label.end())
    block = reply[label.end() : overall.start() if overall else len(reply)]
    start = next((i for i, ch in enumerate(block) if ch in "[{"), None)
    if start is None:
        raise JudgeParseError("parse_error", "no JSON after 'Fine Grained Score'")
    try:
        value, _end = json.JSONDecoder(object_pairs_hook=list).raw_decode(block, start)
    except json.JSONDecodeError:
        loose: list[tuple[str | None, Any]] = [
            (None, float(m.group(1))) for m in _LOOSE_SCORE.finditer(block, start)
        ]
        if not loose:
            raise JudgeParseError(
                "parse_error", "Fine Grained Score is not JSON and holds no scores"
            ) from None
        return loose, "loose", label.start()
    return _entries(value), "json", label.start()


def _explanations(reply: str, end: int, n: int) -> list[str] | None:
    first = _EXPLANATION_LABEL.search(reply, 0, end)  # the first: a judge may label each item again
    start = first.end() if first else 0
    text = reply[start:end]
    items = list(_NUMBERED.finditer(text))
    if [int(m.group(1)) for m in items] != list(range(1, n + 1)):
        return None
    bounds = [m.start() for m in items] + [len(text)]
    return [text[a:b].strip() for a, b in itertools.pairwise(bounds)]


def _match(keys: list[str | None], constraints: Sequence[str] | None) -> list[int] | None:
    """For each entry the constraint it belongs to, when the keys name the constraints in another order;
    None to match by order. Raises when the keys contradict the order without naming every constraint."""
    if constraints is None or any(k is None for k in keys):
        return None
    wanted = [normalise(c) for c in constraints]
    named: list[int | None] = []
    taken: set[int] = set()
    for key in keys:
        assert key is not None
        hit = next((j for j, w in enumerate(wanted) if w == normalise(key) and j not in taken), None)
        named.append(hit)
        if hit is not None:
            taken.add(hit)
    if all(j is not None for j in named):
        order = [j for j in named if j is not None]
        return None if order == list(range(len(keys))) else order
    crossed = [i for i, j in enumerate(named) if j is not None and j != i]
    if crossed:
        i = crossed[0]
        hit = named[i]
        raise JudgeParseError(
            "parse_error",
            f"score {i + 1} is keyed by constraint {hit + 1 if hit is not None else '?'}'s text but "
            "the keys do not name every constraint once: the scores cannot be matched",
        )
    return None


def parse_trace_upstream_reply(
    reply: str, *, constraints: Sequence[str] | None = None, n_expected: int | None = None
) -> TraceUpstreamReply:
    """Read a reply in upstream's format against the row's ``constraints`` (its ``constraints_splits``),
    or only their number when the texts are not at hand."""
    n = len(constraints) if constraints is not None else n_expected
    if n is None or n < 1:
        raise ValueError("give the row's constraints (or at least their number)")
    if n_expected is not None and n_expected != n:
        raise ValueError(f"n_expected {n_expected} differs from the {n} constraints given")
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the judge replied with no text")
    entries, fine_format, label_at = _fine_grained(reply)
    if len(entries) != n:
        raise JudgeParseError("wrong_count", f"expected {n} constraint scores, got {len(entries)}")
    scores = [_score(value, f"constraint {i} score") for i, (_k, value) in enumerate(entries, start=1)]
    order = _match([k for k, _ in entries], constraints) if fine_format == "json" else None
    if order is not None:
        placed = [0.0] * n
        for score, j in zip(scores, order, strict=True):
            placed[j] = score
        scores = placed
    return TraceUpstreamReply(
        scores=scores,
        explanations=_explanations(reply, label_at, n) if order is None else None,
        overall=upstream_overall(reply),
        matched_by="text" if order is not None else "order",
        fine_format=fine_format,
    )


def _judgement(parsed: TraceUpstreamReply) -> ParsedJudgement:
    return ParsedJudgement(scores=parsed.scores, reasons=parsed.explanations, overall=parsed.overall)


def parse_by_count(reply: str, n_expected: int) -> ParsedJudgement:
    """Without the request: scores matched by order only."""
    return _judgement(parse_trace_upstream_reply(reply, n_expected=n_expected))


def parse_in_context(reply: str, fields: Mapping[str, Any], n_expected: int) -> ParsedJudgement:
    """With the request's ``constraints_splits``: scores matched by order or by text (module docstring)."""
    constraints = fields.get("constraints_splits")
    if not isinstance(constraints, list) or not all(isinstance(c, str) for c in constraints):
        raise ValueError("a trace_upstream request needs 'constraints_splits', a list of strings")
    return _judgement(parse_trace_upstream_reply(reply, constraints=constraints, n_expected=n_expected))


register_parser(ParserSpec(name=PARSER_NAME, parse=parse_by_count, parse_in_context=parse_in_context))
