"""Reply parsers of the two ComplexBench judges (protocols.md §4.3).

``complexbench_yesno``: one yes/no verdict for one scoring question. The structured answer is
``{"analysis": "...", "answer": true|false}`` ("是"/"否", "yes"/"no" are accepted as answers too).
A reply without such JSON is read by upstream's rule: if ``答案：是|答案：否`` matches exactly once, that
answer; otherwise yes iff "是" occurs and "否" does not. Upstream turns a reply with neither character
into "no"; here it is a parse error (retried, then a recorded failure), never a silent score.
Stored as ``scores=[1.0|0.0]``, ``reasons=[analysis]``.

``complexbench_extract``: the part of the response a rule question targets. The structured answer is
``{"analysis": "...", "scope": "segments"|"all"|"none", "segments": ["...", ...]}``; upstream's text
format ``评分对象：<seg1>||<seg2>`` (or ``all`` / ``None``) is accepted too. Stored as ``scores=[1.0]``
and ``reasons=[scope, *segments]``; :func:`decode_extraction` reads it back.
"""

from __future__ import annotations

import json
import re
from typing import Any

from iopo_eval.judges.parse import (
    JudgeParseError,
    ParsedJudgement,
    ParserSpec,
    json_objects,
    register_parser,
    strip_fences,
)

YESNO = "complexbench_yesno"
EXTRACT = "complexbench_extract"
SCOPES = ("segments", "all", "none")

_ANSWER = re.compile(r"答案：是|答案：否")
_TRUE = {"是", "yes", "true", "y"}
_FALSE = {"否", "no", "false", "n"}


def _one_expected(n_expected: int) -> None:
    if n_expected != 1:
        raise ValueError(f"ComplexBench judgements answer one question each; n_expected was {n_expected}")


def _candidate(reply: str, key: str) -> dict[str, Any] | None:
    """The whole reply as a JSON object with ``key``, else the last such object inside the reply."""
    try:
        whole = json.loads(strip_fences(reply))
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and key in whole:
        return whole
    shaped = [obj for _start, obj in json_objects(reply) if key in obj]
    return shaped[-1] if shaped else None


# ---------------------------------------------------------------- yes / no


def yesno_schema(n_expected: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"analysis": {"type": "string"}, "answer": {"type": "boolean"}},
        "required": ["analysis", "answer"],
        "additionalProperties": False,
    }


def _answer_value(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        folded = value.strip().casefold()
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    raise JudgeParseError("parse_error", f"'answer' must be true/false or 是/否, got {value!r}")


def upstream_yesno(reply: str) -> bool | None:
    """Upstream's reading of a free-text verdict; None when the reply holds neither 是 nor 否."""
    matches = _ANSWER.findall(reply)
    if len(matches) == 1:
        return matches[0].endswith("是")
    has_yes, has_no = "是" in reply, "否" in reply
    if not has_yes and not has_no:
        return None
    return has_yes and not has_no


def parse_yesno(reply: str, n_expected: int) -> ParsedJudgement:
    _one_expected(n_expected)
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the judge replied with no text")
    obj = _candidate(reply, "answer")
    if obj is not None:
        analysis = obj.get("analysis", "")
        verdict = _answer_value(obj["answer"])
        return ParsedJudgement(
            scores=[float(verdict)],
            reasons=[analysis if isinstance(analysis, str) else str(analysis)],
            overall=None,
        )
    found = upstream_yesno(reply)
    if found is None:
        raise JudgeParseError(
            "parse_error", "no JSON answer, no 答案：是/否 and neither 是 nor 否 in the reply"
        )
    return ParsedJudgement(scores=[float(found)], reasons=[reply.strip()], overall=None)


# ---------------------------------------------------------------- extraction


def extract_schema(n_expected: int) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "analysis": {"type": "string"},
            "scope": {"type": "string", "enum": list(SCOPES)},
            "segments": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["analysis", "scope", "segments"],
        "additionalProperties": False,
    }


_MARKER = re.compile(r"评分对象\s*[：:]")


def _segments(items: list[Any]) -> list[str]:
    if not all(isinstance(s, str) for s in items):
        raise JudgeParseError("parse_error", "'segments' must be a list of strings")
    return [s for s in items if s.strip()]


def _from_json(obj: dict[str, Any]) -> tuple[str, list[str]]:
    scope = obj.get("scope")
    if not isinstance(scope, str) or scope.strip().lower() not in SCOPES:
        raise JudgeParseError("parse_error", f"'scope' must be one of {SCOPES}, got {scope!r}")
    scope = scope.strip().lower()
    if scope != "segments":
        return scope, []
    raw = obj.get("segments")
    if not isinstance(raw, list):
        raise JudgeParseError("parse_error", "'segments' must be a list when scope is 'segments'")
    segments = _segments(raw)
    if not segments:
        raise JudgeParseError("parse_error", "scope 'segments' but no non-empty segment was given")
    return scope, segments


def upstream_extraction(reply: str) -> tuple[str, list[str]] | None:
    """Upstream's ``评分对象：seg1||seg2`` / ``all`` / ``None`` format; None when the reply is not in it."""
    markers = list(_MARKER.finditer(reply))
    body = reply[markers[-1].end() :].strip() if markers else reply.strip()
    if body.casefold() == "all":
        return "all", []
    if body.casefold() == "none":
        return "none", []
    if not markers:
        return None
    segments = [s.strip() for s in body.split("||") if s.strip()]
    return ("segments", segments) if segments else None


def parse_extract(reply: str, n_expected: int) -> ParsedJudgement:
    _one_expected(n_expected)
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the judge replied with no text")
    obj = _candidate(reply, "scope")
    if obj is not None:
        scope, segments = _from_json(obj)
    else:
        found = upstream_extraction(reply)
        if found is None:
            raise JudgeParseError("parse_error", "no JSON with a 'scope' and no 评分对象： line in the reply")
        scope, segments = found
    return ParsedJudgement(scores=[1.0], reasons=[scope, *segments], overall=None)


def is_structured_extraction(reply: str | None) -> bool:
    """Whether :func:`parse_extract` reads this reply as the JSON answer (else: upstream's text format)."""
    return reply is not None and _candidate(reply, "scope") is not None


def decode_extraction(reasons: list[str] | None) -> tuple[str, list[str]]:
    """(scope, segments) from a stored extraction judgement."""
    if not reasons or reasons[0] not in SCOPES:
        raise ValueError(f"not a stored ComplexBench extraction: {reasons!r}")
    return reasons[0], list(reasons[1:])


register_parser(ParserSpec(name=YESNO, parse=parse_yesno, schema=yesno_schema))
register_parser(ParserSpec(name=EXTRACT, parse=parse_extract, schema=extract_schema))
