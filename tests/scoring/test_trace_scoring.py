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
