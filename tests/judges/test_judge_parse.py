"""The trace_scores parser: strict about counts, ranges and types; tolerant only of wrapping text."""

from __future__ import annotations

import json

import pytest

from iopo_eval.judges.parse import PARSERS, JudgeParseError, parse_trace_scores


def answer(scores: list[object], overall: object = 10, **extra: object) -> dict[str, object]:
    entries = [{"index": i, "reason": f"r{i}", "score": s} for i, s in enumerate(scores, start=1)]
    return {"constraints": entries, "overall": overall, **extra}


def test_structured_reply_parses() -> None:
    parsed = parse_trace_scores(json.dumps(answer([10, 7.5, 0], overall=5.83)), 3)
    assert parsed.scores == [10.0, 7.5, 0.0]
    assert parsed.reasons == ["r1", "r2", "r3"]
    assert parsed.overall == pytest.approx(5.83)


def test_fenced_json_with_prose_around_it() -> None:
    reply = "Here is my verdict.\n```json\n" + json.dumps(answer([10, 9])) + "\n```\nThanks."
    assert parse_trace_scores(reply, 2).scores == [10.0, 9.0]


def test_last_well_formed_object_wins() -> None:
    # An object quoted early (e.g. echoing a response that contained a fake answer) is not the verdict.
    reply = (
        "The response claims " + json.dumps(answer([10, 10])) + " but really:\n" + json.dumps(answer([3, 10]))
    )
    assert parse_trace_scores(reply, 2).scores == [3.0, 10.0]


def test_upstream_text_format_fallback() -> None:
    reply = (
        "Explanation ...\n"
        'Fine Grained Score: [{"use a formal tone": 10, "under 50 words": 0}]\n'
        "Constraints Overall Score: [[5]]"
    )
    parsed = parse_trace_scores(reply, 2)
    assert parsed.scores == [10.0, 0.0]
    assert parsed.overall == 5.0
    assert parsed.reasons is None


def test_upstream_text_with_duplicate_constraint_text_keeps_both_scores() -> None:
    reply = 'Fine Grained Score: [{"same": 10, "same": 0}]\nConstraints Overall Score: [[5]]'
    assert parse_trace_scores(reply, 2).scores == [10.0, 0.0]


def test_upstream_text_with_wrong_count_is_rejected() -> None:
    reply = 'Fine Grained Score: [{"a": 10}]\nConstraints Overall Score: [[10]]'
    with pytest.raises(JudgeParseError) as err:
        parse_trace_scores(reply, 2)
    assert err.value.error_kind == "wrong_count"


@pytest.mark.parametrize(
    "reply", ["I think it is good. Score: 9/10", '{"constraints": [', "{}", '{"overall": 10}']
)
def test_malformed_reply_is_a_parse_error(reply: str) -> None:
    with pytest.raises(JudgeParseError) as err:
        parse_trace_scores(reply, 1)
    assert err.value.error_kind == "parse_error"


@pytest.mark.parametrize("reply", ["", "   \n"])
def test_empty_reply(reply: str) -> None:
    with pytest.raises(JudgeParseError) as err:
        parse_trace_scores(reply, 1)
    assert err.value.error_kind == "empty_reply"


@pytest.mark.parametrize("scores", [[10], [10, 10, 10], []])
def test_wrong_count(scores: list[object]) -> None:
    with pytest.raises(JudgeParseError) as err:
        parse_trace_scores(json.dumps(answer(scores)), 2)
    assert err.value.error_kind == "wrong_count"


@pytest.mark.parametrize("bad", [11, -1, "10", True, None, 7.3, 10.01])
def test_out_of_range_or_not_a_number(bad: object) -> None:
    with pytest.raises(JudgeParseError) as err:
        parse_trace_scores(json.dumps(answer([10, bad])), 2)
    assert err.value.error_kind == "out_of_range"
    assert "constraint 2" in str(err.value)


def test_overall_out_of_range() -> None:
    with pytest.raises(JudgeParseError) as err:
        parse_trace_scores(json.dumps(answer([10], overall=12)), 1)
    assert err.value.error_kind == "out_of_range"


@pytest.mark.parametrize("indices", [[2, 1], [1, 1], [0, 1], [True, 2]])
def test_indices_must_run_one_to_n_in_order(indices: list[object]) -> None:
    entries = [{"index": i, "reason": "r", "score": 10} for i in indices]
    with pytest.raises(JudgeParseError) as err:
        parse_trace_scores(json.dumps({"constraints": entries, "overall": 10}), 2)
    assert err.value.error_kind == "parse_error"


def test_reason_is_required() -> None:
    reply = json.dumps({"constraints": [{"index": 1, "score": 10}], "overall": 10})
    with pytest.raises(JudgeParseError):
        parse_trace_scores(reply, 1)


def test_registry_has_trace_scores_with_a_schema() -> None:
    spec = PARSERS["trace_scores"]
    schema = spec.schema(3) if spec.schema else {}
    constraints = schema["properties"]["constraints"]
    assert constraints["minItems"] == constraints["maxItems"] == 3
    # reason is listed before score so that a model decoding in schema order explains first
    assert list(constraints["items"]["properties"]) == ["index", "reason", "score"]
