"""IF-S / IF-M and breakdowns on a fixture with hand-computed answers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from iopo_eval.aggregate import build_result
from iopo_eval.data.trace import TraceItem, load_trace
from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.results import RunResults, load_results, read_items, write_items, write_results
from iopo_eval.scoring.trace import TRACE, item_record, judge_request


@pytest.fixture(scope="module")
def items() -> dict[str, TraceItem]:
    return {i.id: i for i in load_trace()}


def ok(key: str, scores: list[float], overall: float | None = None) -> JudgeOutcome:
    return JudgeOutcome(
        key=key, status="ok", scores=scores, reasons=["r"] * len(scores), overall=overall, attempts=1
    )


def failed(key: str, kind: str) -> JudgeOutcome:
    return JudgeOutcome(key=key, status="failed", error_kind=kind, error="boom", attempts=3, raw="not json")


def _pick(items: dict[str, TraceItem], n_constraints: int, count: int) -> list[TraceItem]:
    chosen = [i for i in items.values() if len(i.constraints_splits) == n_constraints][:count]
    assert len(chosen) == count
    return chosen


def test_strict_all_ten_rule_and_failures(items: dict[str, TraceItem]) -> None:
    singles = _pick(items, 1, 4)
    pairs = _pick(items, 2, 3)
    outcomes = [
        ok(singles[0].id, [10], 10),
        ok(singles[1].id, [9.5], 9.5),  # one half point short: not followed
        ok(singles[2].id, [10], 10),
        failed(singles[3].id, "parse_error"),
        ok(pairs[0].id, [10, 10], 10),
        ok(pairs[1].id, [10, 8], 9),
        failed(pairs[2].id, "rate_limited"),
    ]
    by_id = {**{i.id: i for i in singles}, **{i.id: i for i in pairs}}
    records = [item_record(by_id[o.key], "answer", o) for o in outcomes]
    result = build_result(TRACE, records, task_versions={"trace_ifs": 1.0})
    m = result.metrics
    assert m["if_s"].value == pytest.approx(100 * 2 / 3)
    assert m["if_s"].n == 3
    assert m["if_m"].value == pytest.approx(50.0)
    assert m["if_m"].n == 2
    assert m["if_all"].value == pytest.approx(100 * 3 / 5)
    # constraints at 10: singles 10, 9.5, 10 + pairs 10,10,10,8 -> 5 of 7
    assert m["constraint_pass"].value == pytest.approx(100 * 5 / 7)
    assert m["mean_score"].value == pytest.approx((10 + 9.5 + 10 + 10 + 10 + 10 + 8) / 7)
    assert m["mean_score"].scale == 1.0
    assert m["mean_overall"].value == pytest.approx((10 + 9.5 + 10 + 10 + 9) / 5)
    # Failures are counted by reason and contribute to no metric.
    assert result.failures == {"parse_error": 1, "rate_limited": 1}
    assert result.n_scored == 5 and result.n_items == 7
    assert records[3].values == {} and records[3].status == "judge_failed"
    # Category breakdown by hand: every constraint's levels2 label, passed iff 10.
    from iopo_eval.data.trace import classify

    expected: dict[str, list[int]] = {}
    judged = [(by_id[o.key], o.scores) for o in outcomes if o.status == "ok"]
    for item, scores in judged:
        for label, score in zip(item.levels2, scores, strict=True):
            cat = classify(label)[0]
            expected.setdefault(cat, [0, 0])
            expected[cat][0] += score == 10
            expected[cat][1] += 1
    for cat, (num, den) in expected.items():
        assert m[f"category/{cat}"].value == pytest.approx(100 * num / den)
    assert math.isfinite(m["if_s"].ci_low) and m["if_s"].ci_low <= m["if_s"].value <= m["if_s"].ci_high


def test_request_carries_the_gold_checklist(items: dict[str, TraceItem]) -> None:
    item = _pick(items, 3, 1)[0]
    req = judge_request(item, "resp")
    assert req.n_expected == 3
    assert req.fields["constraints"] == item.constraints_splits
    assert req.fields["query"] == item.description


def test_results_round_trip(tmp_path: Path, items: dict[str, TraceItem]) -> None:
    item = _pick(items, 1, 1)[0]
    rec = item_record(item, "answer", ok(item.id, [10], 10))
    smoke_judge = {"name": "smoke", "identity_hash": "abc", "smoke_test": True}
    result = build_result(TRACE, [rec], task_versions={"trace_ifs": 1.0}, judges={"judge": smoke_judge})
    run = RunResults(run_id="r1", created_at="now", model={"name": "m"}, benchmarks={"trace": result})
    write_items(tmp_path / result.items_file, [rec])
    write_results(tmp_path, run)
    loaded, run_dir = load_results(tmp_path)
    assert loaded.smoke_test
    assert loaded.benchmarks["trace"].metrics["if_s"].value == 100.0
    assert read_items(run_dir / result.items_file)[0].values == rec.values


def test_an_empty_response_is_rated_zero_not_dropped(items: dict[str, TraceItem]) -> None:
    single, other = _pick(items, 1, 2)
    empty = JudgeOutcome(key=single.id, status="failed", error_kind="empty_response", error="empty")
    records = [item_record(single, "", empty), item_record(other, "answer", ok(other.id, [10], 10))]
    result = build_result(TRACE, records)
    assert records[0].status == "ok" and records[0].extra["empty_response"] is True
    assert result.metrics["if_s"].value == pytest.approx(50.0)  # not 100: silence cannot raise the rate
    assert result.metrics["empty_response"].value == pytest.approx(50.0)
    assert result.failures == {}


def test_the_papers_rule_and_upstream_codes_rule_are_both_reported(items: dict[str, TraceItem]) -> None:
    """Headline IF by the paper's rule (every constraint at 10, from the fine-grained scores); upstream
    code's rule (overall == 10) beside it, and how many items the two judge differently. The overall is
    used as upstream reads it: no range check (99 is not 10), none when it did not parse (not followed);
    mean_overall leaves out overalls outside 0-10 instead of averaging them in."""
    singles = _pick(items, 1, 5)
    pairs = _pick(items, 2, 3)
    outcomes = [
        ok(singles[0].id, [10], 10),  # both rules: followed
        ok(singles[1].id, [10], 9),  # paper: followed; upstream: not (overall 9)
        ok(singles[2].id, [8], 10),  # paper: not; upstream: followed
        ok(singles[3].id, [10], None),  # the overall did not parse: upstream, not followed
        ok(singles[4].id, [10], 99.0),  # outside 0-10 (upstream does not range-check): not 10
        ok(pairs[0].id, [10, 10], 10),
        ok(pairs[1].id, [10, 9], 10),  # paper: not; upstream: followed
        ok(pairs[2].id, [7, 7], 7),
    ]
    by_id = {i.id: i for i in [*singles, *pairs]}
    records = [item_record(by_id[o.key], "answer", o) for o in outcomes]
    result = build_result(TRACE, records, task_versions={"trace_ifs": 2.0, "trace_ifm": 2.0})
    m = result.metrics
    assert m["if_s"].value == pytest.approx(100 * 4 / 5) and m["if_s_upstream"].value == pytest.approx(40.0)
    assert m["if_m"].value == pytest.approx(100 / 3) and m["if_m_upstream"].value == pytest.approx(200 / 3)
    assert m["if_all"].value == pytest.approx(100 * 5 / 8)
    assert m["if_all_upstream"].value == pytest.approx(100 * 4 / 8)
    assert m["rule_disagreements"].value == 5 and m["rule_disagreements"].n == 8
    assert math.isnan(m["rule_disagreements"].ci_low) and m["rule_disagreements"].scale == 1.0
    assert m["overall_unparsed"].value == pytest.approx(100 / 8)
    assert m["overall_out_of_range"].value == pytest.approx(100 / 7) and m["overall_out_of_range"].n == 7
    assert m["mean_overall"].value == pytest.approx((10 + 9 + 10 + 10 + 10 + 7) / 6)
    assert m["mean_overall"].n == 6
    assert result.headline == ["if_s", "if_m"]
    assert result.protocol["failure_counting"] == "strict"
    assert result.protocol["upstream_rule"].startswith("overall == 10")
    # lm-eval reports each task's rate by both rules.
    first = TRACE.lm_eval_values(records[1])
    assert first["if_s"] == 1.0 and first["if_s_upstream"] == 0.0


def test_an_empty_response_fails_both_rules(items: dict[str, TraceItem]) -> None:
    """No judge is asked (the engine's rule): every constraint 0 and no overall, so neither rule follows
    it; nothing is counted as an unparsed overall, since no reply was read."""
    single = _pick(items, 1, 1)[0]
    empty = JudgeOutcome(key=single.id, status="failed", error_kind="empty_response", error="empty")
    rec = item_record(single, "", empty)
    assert rec.values["if_s"] == 0.0 and rec.values["if_s_upstream"] == 0.0
    assert rec.values["rules_disagree"] == 0.0 and "overall_unparsed" not in rec.values


def test_request_carries_both_prompts_fields(items: dict[str, TraceItem]) -> None:
    """Upstream's prompt reads the row as it is (``"NULL"`` for no input, the constraint block); the
    hardened template its own fields (``(none)``, the gold list): one request serves either judge."""
    without = next(i for i in items.values() if i.input is None)
    req = judge_request(without, "resp")
    assert req.fields["row_input"] == "NULL" and req.fields["input"] == "(none)"
    assert req.fields["row_constraints"] == without.constraints
    assert req.fields["constraints_splits"] == without.constraints_splits == req.fields["constraints"]
    assert req.fields["description"] == without.description and req.fields["prompt"] == without.user_prompt
    with_input = next(i for i in items.values() if i.input is not None)
    assert judge_request(with_input, "r").fields["row_input"] == with_input.input
