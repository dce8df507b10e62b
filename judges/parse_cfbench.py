"""CFBench judge replies: our structured JSON answer, and upstream's tab-separated text format.

``cfbench_checkpoints`` (registered parser) reads our judge's reply: one 0/1 score per checkpoint, in
order, as ``{"checkpoints": [{"index": 1, "score": 0|1}, ...]}``. It is strict: anything else is a
judge failure that the engine retries and then records, never a guess.

``parse_upstream_reply`` reads a reply in upstream's format (protocols.md §3.3: one
``"<checkpoint>\\t<0|1>"`` per checkpoint, separated by blank lines) the way upstream's evaluate script
does, with its three parse states, so that files judged with upstream's own script can be rescored.
Upstream's fallback keeps only the 1s (``if float(score) and ...`` drops every 0); ours keeps the 0s
unless ``keep_zeros=False`` asks for upstream's behaviour, for comparison.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iopo_eval.judges.parse import (
    JudgeParseError,
    ParsedJudgement,
    ParserSpec,
    json_objects,
    numbered_entries,
    register_parser,
    strip_fences,
)

PARSER_NAME = "cfbench_checkpoints"


# --- our judge: structured JSON ---------------------------------------------------------------------
def cfbench_schema(n_expected: int) -> dict[str, Any]:
    entry = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "minimum": 1, "maximum": n_expected},
            "score": {"type": "integer", "enum": [0, 1]},
        },
        "required": ["index", "score"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "checkpoints": {"type": "array", "items": entry, "minItems": n_expected, "maxItems": n_expected}
        },
        "required": ["checkpoints"],
        "additionalProperties": False,
    }


def _binary(value: Any, where: str) -> float:
    """A JSON number equal to 0 or 1; booleans and strings are rejected (the schema asks for integers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise JudgeParseError("out_of_range", f"{where}: expected 0 or 1, got {value!r}")
    if value not in (0, 1):
        raise JudgeParseError("out_of_range", f"{where}: {value!r} is not 0 or 1")
    return float(value)


def _from_json(obj: dict[str, Any], n_expected: int) -> ParsedJudgement:
    entries = numbered_entries(obj["checkpoints"], n_expected, "checkpoint")
    scores = [_binary(entry["score"], f"checkpoint {i} score") for i, entry in enumerate(entries, start=1)]
    return ParsedJudgement(scores=scores, reasons=None, overall=None)


def parse_cfbench_checkpoints(reply: str, n_expected: int) -> ParsedJudgement:
    """Exactly ``n_expected`` scores, indices 1..n in order, each 0 or 1.

    The whole reply as JSON (structured outputs), else the last JSON object in it that has a
    ``checkpoints`` list (code fences and surrounding prose allowed: a judge asked without structured
    outputs may add them)."""
    if n_expected < 1:
        raise ValueError(f"n_expected must be at least 1, got {n_expected}")
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the judge replied with no text")
    try:
        whole = json.loads(strip_fences(reply))
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("checkpoints"), list):
        return _from_json(whole, n_expected)
    shaped = [obj for _start, obj in json_objects(reply) if isinstance(obj.get("checkpoints"), list)]
    if not shaped:
        raise JudgeParseError("parse_error", "no JSON object with a 'checkpoints' list in the reply")
    return _from_json(shaped[-1], n_expected)


register_parser(ParserSpec(name=PARSER_NAME, parse=parse_cfbench_checkpoints, schema=cfbench_schema))


# --- upstream's text format ------------------------------------------------------------------------
# Parse states as upstream's evaluate script stores them in ``judge_parsing``.
STRICT = "1"
FALLBACK = "0"
FAILED = "-1"
PARSE_STATES = (STRICT, FALLBACK, FAILED)


@dataclass(frozen=True)
class UpstreamParse:
    scores: list[float]  # aligned with the checkpoints only when state is STRICT
    state: str  # STRICT | FALLBACK | FAILED

    @property
    def aligned(self) -> bool:
        return self.state == STRICT


def parse_upstream_strict(reply: str, checkpoints: Sequence[str]) -> list[float] | None:
    """Upstream's strict reading: blocks separated by a blank line, as many as checkpoints, each
    ``<checkpoint text>\\t<score>`` with the checkpoint echoed verbatim and a score of 0 or 1.

    Surrounding whitespace of the reply, of each block and of each side of the tab is ignored (the
    data has 29 checkpoints with stray spaces at their ends). None when the reply does not conform."""
    blocks = reply.strip().split("\n\n")
    if len(blocks) != len(checkpoints):
        return None
    scores = []
    for block, checkpoint in zip(blocks, checkpoints, strict=True):
        text, tab, score = block.strip().rpartition("\t")
        if not tab or text.strip() != checkpoint.strip() or score.strip() not in ("0", "1"):
            return None
        scores.append(float(score.strip()))
    return scores


def parse_upstream_fallback(reply: str, *, keep_zeros: bool = True) -> list[float]:
    """Upstream's lenient reading: the score after the last tab of every line that has one.

    Only 0 and 1 are kept (any number equal to them, e.g. ``1.0``); other text is skipped. Upstream
    also skips every 0 (its test ``if float(score) and ...`` is false for 0), which turns a reply with
    some failed checkpoints into a perfect one; ``keep_zeros=False`` reproduces that for comparison."""
    scores = []
    for line in reply.splitlines():
        _text, tab, score = line.rpartition("\t")
        if not tab:
            continue
        try:
            value = float(score.strip())
        except ValueError:
            continue
        if not math.isfinite(value) or value not in (0.0, 1.0):
            continue
        if value == 0.0 and not keep_zeros:
            continue
        scores.append(value)
    return scores


def parse_upstream_reply(reply: str, checkpoints: Sequence[str], *, keep_zeros: bool = True) -> UpstreamParse:
    """Strict, else fallback (state "0"), else failed (state "-1" with upstream's stand-in score [0])."""
    strict = parse_upstream_strict(reply, checkpoints)
    if strict is not None:
        return UpstreamParse(strict, STRICT)
    fallback = parse_upstream_fallback(reply, keep_zeros=keep_zeros)
    if fallback:
        return UpstreamParse(fallback, FALLBACK)
    return UpstreamParse([0.0], FAILED)
