"""``smoke_met``: the reply format of the embedded 135M judge in ``train build-data`` smoke tests
(template ``smoke_judge_v1.txt``): ``{"constraints": [{"index": 1, "reason": "...", "met": true}, ...]}``.

A 135M model asked for 0-10 scores copies the number that opens its template's placeholder and scores
nearly every constraint 0; asked met or not, its answers split about evenly (a probe: 16 true, 14 false),
which is what a smoke test needs: every step of the build, quadruple assembly included, gets items. The
verdicts are noise and the data is labelled SMOKE TEST. ``met`` maps to 10 and not met to 0; the checks are
as strict as ``trace_scores`` (exact count, indices 1..n in order, a boolean, a reason).
"""

from __future__ import annotations

import json
from typing import Any

from iopo_eval.judges.parse import (
    JudgeParseError,
    ParsedJudgement,
    ParserSpec,
    register_parser,
    strip_fences,
)

SMOKE_MET = "smoke_met"


def smoke_met_schema(n_expected: int) -> dict[str, Any]:
    entry = {
        "type": "object",
        "properties": {
            "index": {"type": "integer", "minimum": 1, "maximum": n_expected},
            "reason": {"type": "string"},
            "met": {"type": "boolean"},
        },
        "required": ["index", "reason", "met"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "constraints": {"type": "array", "items": entry, "minItems": n_expected, "maxItems": n_expected}
        },
        "required": ["constraints"],
        "additionalProperties": False,
    }


def parse_smoke_met(reply: str, n_expected: int) -> ParsedJudgement:
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the judge replied with no text")
    try:
        obj = json.loads(strip_fences(reply))
    except json.JSONDecodeError as exc:
        raise JudgeParseError("parse_error", f"the reply is not one JSON object: {exc}") from exc
    entries = obj.get("constraints") if isinstance(obj, dict) else None
    if not isinstance(entries, list):
        raise JudgeParseError("parse_error", "no 'constraints' list in the reply")
    if len(entries) != n_expected:
        raise JudgeParseError("wrong_count", f"expected {n_expected} constraint verdicts, got {len(entries)}")
    scores: list[float] = []
    reasons: list[str] = []
    for position, entry in enumerate(entries, start=1):
        if (
            not isinstance(entry, dict)
            or entry.get("index") != position
            or isinstance(entry.get("index"), bool)
        ):
            raise JudgeParseError("parse_error", f"constraint entry {position} is not indexed {position}")
        met, reason = entry.get("met"), entry.get("reason")
        if not isinstance(met, bool):
            raise JudgeParseError(
                "out_of_range", f"constraint {position}: 'met' must be true or false, got {met!r}"
            )
        if not isinstance(reason, str):
            raise JudgeParseError("parse_error", f"constraint {position} has no reason string")
        scores.append(10.0 if met else 0.0)
        reasons.append(reason)
    return ParsedJudgement(scores=scores, reasons=reasons, overall=None)


register_parser(ParserSpec(name=SMOKE_MET, parse=parse_smoke_met, schema=smoke_met_schema))
