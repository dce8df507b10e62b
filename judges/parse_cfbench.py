"""CFBench judge replies in our structured JSON answer (``judges/templates/cfbench_judge_v1.txt``).

``cfbench_checkpoints`` (registered parser) reads our judge's reply: one 0/1 score per checkpoint, in
order, as ``{"checkpoints": [{"index": 1, "score": 0|1}, ...]}``. It is strict: anything else is a
judge failure that the engine retries and then records, never a guess.

Upstream's tab-separated text format is read by ``parse_cfbench_upstream`` exactly as upstream reads it.
"""

from __future__ import annotations

import json
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
