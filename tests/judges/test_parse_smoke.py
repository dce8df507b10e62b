"""The embedded smoke judge's met-or-not replies (``smoke_met``): 10 for met, 0 for not, and every
malformed reply a parse failure with its kind, never a score."""

from __future__ import annotations

import json

import pytest

from iopo_eval.judges.config import load_judge_config
from iopo_eval.judges.parse import JudgeParseError, get_parser
from iopo_eval.judges.parse_smoke import parse_smoke_met, smoke_met_schema
from iopo_eval.judges.prompt import render


def _reply(*verdicts: object, indices: list[object] | None = None) -> str:
    indices = indices or list(range(1, len(verdicts) + 1))
    return json.dumps(
        {
            "constraints": [
                {"index": i, "reason": "why", "met": v} for i, v in zip(indices, verdicts, strict=True)
            ]
        }
    )


def test_met_is_ten_and_not_met_is_zero() -> None:
    parsed = parse_smoke_met(_reply(True, False, True), 3)
    assert parsed.scores == [10.0, 0.0, 10.0] and parsed.reasons == ["why"] * 3 and parsed.overall is None
    assert get_parser("smoke_met").parse(f"```json\n{_reply(False)}\n```", 1).scores == [0.0]


@pytest.mark.parametrize(
    ("reply", "n", "kind"),
    [
        ("", 1, "empty_reply"),
        ("not json", 1, "parse_error"),
        ('{"scores": [10]}', 1, "parse_error"),
        (_reply(True), 2, "wrong_count"),
        (_reply(True, True, indices=[1, 3]), 2, "parse_error"),
        (_reply(True, indices=[True]), 1, "parse_error"),
        (_reply("yes"), 1, "out_of_range"),
        (_reply(10), 1, "out_of_range"),
        ('{"constraints": [{"index": 1, "met": true}]}', 1, "parse_error"),
    ],
)
def test_malformed_replies_fail_with_their_kind(reply: str, n: int, kind: str) -> None:
    with pytest.raises(JudgeParseError) as info:
        parse_smoke_met(reply, n)
    assert info.value.error_kind == kind


def test_schema_asks_for_booleans_and_the_template_renders() -> None:
    entry = smoke_met_schema(2)["properties"]["constraints"]
    assert entry["minItems"] == entry["maxItems"] == 2
    assert entry["items"]["properties"]["met"] == {"type": "boolean"}
    config = load_judge_config("smollm2-smoke").with_overrides(
        template="smoke_judge_v1.txt", prompt_version="smoke_judge_v1", parser="smoke_met"
    )
    fields = {"query": "Q", "input": "I", "constraints": "1. a\n2. b", "response": "R"}
    text = render(config.template_text, fields, n_expected=2).text
    assert "For each of the 2 constraints" in text and "R" in text and "<0-10>" not in text
