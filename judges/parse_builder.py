"""Reply parsers of the training-data builder's LLM calls (``iopo_eval.training.llm_builder``), which go
through the judge engine like every LLM call: the same client, cache, retries, budget and cost.

``constraint_list``: a rewritten constraint list, ``{"constraints": ["...", ...]}`` (the whole reply, or
the last such object in it). Stored as ``scores=[1.0]`` and ``reasons=[constraint, ...]``.

``free_text``: a model's answer to an instruction, taken as it is (surrounding whitespace removed). Stored
as ``scores=[1.0]`` and ``reasons=[text]``; an empty answer is an ``empty_reply`` failure (retried).

Both answer one request each (``n_expected`` 1).
"""

from __future__ import annotations

import json

from iopo_eval.judges.parse import (
    JudgeParseError,
    ParsedJudgement,
    ParserSpec,
    json_objects,
    register_parser,
    strip_fences,
)

CONSTRAINT_LIST = "constraint_list"
FREE_TEXT = "free_text"


def _nonempty(reply: str) -> str:
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the model replied with no text")
    return reply.strip()


def parse_constraint_list(reply: str, n_expected: int) -> ParsedJudgement:
    text = _nonempty(reply)
    try:
        whole = json.loads(strip_fences(text))
    except json.JSONDecodeError:
        whole = None
    candidates = [whole] if isinstance(whole, dict) else [obj for _start, obj in json_objects(text)]
    shaped = [obj for obj in candidates if "constraints" in obj]
    if not shaped:
        raise JudgeParseError("parse_error", "no JSON object with a 'constraints' list in the reply")
    items = shaped[-1]["constraints"]
    if not isinstance(items, list) or not items or not all(isinstance(c, str) and c.strip() for c in items):
        raise JudgeParseError("parse_error", "'constraints' must be a non-empty list of non-empty strings")
    return ParsedJudgement(scores=[1.0], reasons=[c.strip() for c in items], overall=None)


def parse_free_text(reply: str, n_expected: int) -> ParsedJudgement:
    return ParsedJudgement(scores=[1.0], reasons=[_nonempty(reply)], overall=None)


register_parser(ParserSpec(name=CONSTRAINT_LIST, parse=parse_constraint_list))
register_parser(ParserSpec(name=FREE_TEXT, parse=parse_free_text))
