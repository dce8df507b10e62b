"""CFBench CSR / ISR / PSR against hand-computed answers: every PSR branch, the rounding, the splits."""

from __future__ import annotations

import pytest

from iopo_eval.aggregate import build_result
from iopo_eval.data.cfbench import PRIMARY, SECONDARY, CFBenchItem, Checkpoint
from iopo_eval.judges.parse_cfbench_upstream import FAILED, FALLBACK, STRICT
from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.scoring.cfbench import (
    CFBENCH,
    ItemScores,
    item_record,
    item_scores,
    item_values,
)

P, S = True, False  # primary (主需) / secondary (次需) flags


def test_parse_failed_scores_zero_on_everything() -> None:
    # Upstream stores judge_score ["0"] with judge_parsing "-1".
    assert item_scores([0.0], FAILED, None) == ItemScores(0.0, 0.0, 0.0)


def test_fallback_parse_passes_psr_only_above_point_eight() -> None:
    assert item_scores([1, 1, 1, 1, 1], FALLBACK, None) == ItemScores(1.0, 1.0, 1.0)
    # CSR 0.8 is not > 0.8.
    assert item_scores([1, 1, 1, 1, 0], FALLBACK, None) == ItemScores(0.8, 0.0, 0.0)
    # 5/6 = 0.83 > 0.8; the priorities are not read (fallback scores are not aligned with checkpoints).
    assert item_scores([1, 1, 1, 1, 1, 0], FALLBACK, None) == ItemScores(0.83, 0.0, 1.0)


def test_any_failed_primary_fails_psr() -> None:
    assert item_scores([0, 1, 1], STRICT, [P, S, S]) == ItemScores(0.67, 0.0, 0.0)
    # Even when CSR is high: 8 of 9 satisfied, but the one miss is primary.
    assert item_scores([1] * 8 + [0], STRICT, [S] * 8 + [P]) == ItemScores(0.89, 0.0, 0.0)


def test_no_primary_checkpoints_uses_csr_above_point_eight() -> None:
    assert item_scores([1, 1, 1, 1, 0], STRICT, [S] * 5) == ItemScores(0.8, 0.0, 0.0)
    assert item_scores([1, 1, 1, 1, 1, 1, 0], STRICT, [S] * 7) == ItemScores(0.86, 0.0, 1.0)


def test_all_primary_and_all_satisfied_passes() -> None:
    assert item_scores([1, 1, 1], STRICT, [P, P, P]) == ItemScores(1.0, 1.0, 1.0)


def test_primaries_met_then_secondary_blend_must_exceed_point_eight() -> None:
    # Secondary mean 2/3 -> 0.67: 0.5 + 0.335 = 0.835 > 0.8.
    assert item_scores([1, 1, 1, 0], STRICT, [P, S, S, S]) == ItemScores(0.75, 0.0, 1.0)
    # Secondary mean 3/5 = 0.6: 0.5 + 0.3 = 0.8, not > 0.8.
    assert item_scores([1, 1, 0, 1, 0, 1], STRICT, [P, S, S, S, S, S]) == ItemScores(0.67, 0.0, 0.0)
    # All secondaries met as well.
    assert item_scores([1, 1, 1], STRICT, [P, S, P]) == ItemScores(1.0, 1.0, 1.0)


def test_rounding_is_pythons_round_to_two_decimals() -> None:
    # 5/8 = 0.625 is exact in binary: Python rounds the half to even (0.62, not 0.63); 3/8 -> 0.38.
    assert item_scores([1] * 5 + [0] * 3, STRICT, [S] * 8).csr == 0.62
    assert item_scores([1] * 3 + [0] * 5, STRICT, [S] * 8).csr == 0.38
    # ISR reads the rounded CSR: 200 of 201 rounds to 1.0, so upstream counts the item as fully met.
    assert item_scores([1] * 200 + [0], STRICT, [S] * 201) == ItemScores(1.0, 1.0, 1.0)
    # No primaries: 33/41 = 0.805 rounds to 0.8, which is not > 0.8.
    assert item_scores([1] * 33 + [0] * 8, STRICT, [S] * 41).psr == 0.0
    # The secondary mean is rounded before the blend: 26/43 = 0.605 -> 0.6 -> 0.8, not > 0.8
    # (unrounded it would give 0.802 and a pass).
    got = item_scores([1] + [1] * 26 + [0] * 17, STRICT, [P] + [S] * 43)
    assert got == ItemScores(0.61, 0.0, 0.0)


def test_strict_parse_needs_aligned_priorities() -> None:
    with pytest.raises(ValueError, match="priority flag"):
        item_scores([1, 1], STRICT, [P])
    with pytest.raises(ValueError, match="parse state"):
        item_scores([1], "2", [P])
    with pytest.raises(ValueError, match="at least one"):
        item_scores([], STRICT, [])


# ---------------------------------------------------------------- items and the dataset


def make_item(idx: int, split: str, spec: list[tuple[str, str]]) -> CFBenchItem:
    """spec: (priority, type_L1) per checkpoint."""
    return CFBenchItem(
        idx=idx,
        prompt=f"指令 {idx}",
        isanswer="否",
        gold="",
        domain="测试",
        scenario="测试",
        source="tob",
        split=split,
        criteria=tuple(
            Checkpoint(text=f"检查点 {idx}.{i}", priority=prio, type_l1=t, type_l2="")
            for i, (prio, t) in enumerate(spec, start=1)
        ),
    )


def test_item_values_has_split_keys_and_aligned_breakdowns() -> None:
    item = make_item(7, "easy", [(PRIMARY, "内容约束"), (SECONDARY, "格式约束"), (SECONDARY, "")])
    values = item_values(item, [1.0, 0.0, 1.0])
    assert values["csr"] == values["easy/csr"] == 0.67
    assert values["isr"] == values["easy/isr"] == 0.0
    assert values["psr"] == values["easy/psr"] == 0.0  # secondary mean 0.5: 0.75 is not > 0.8
    assert "hard/csr" not in values
    assert values["type/内容约束"] == [1.0, 1.0]
    assert values["type/格式约束"] == [0.0, 1.0]
    assert values["type/(unlabelled)"] == [1.0, 1.0]
    assert values["priority/primary"] == [1.0, 1.0]
    assert values["priority/secondary"] == [1.0, 2.0]
    # A fallback parse's scores are not aligned with the checkpoints: no per-type breakdown.
    fallback = item_values(item, [1.0, 1.0], FALLBACK)
    assert fallback["csr"] == 1.0 and not any(k.startswith(("type/", "priority/")) for k in fallback)
    with pytest.raises(ValueError, match="2 scores for 3 checkpoints"):
        item_values(item, [1.0, 1.0], STRICT)


def outcome(key: str, scores: list[float] | None, status: str = "ok") -> JudgeOutcome:
    return JudgeOutcome(
        key=key, status=status, scores=scores, raw="{}", error_kind=None if scores else "wrong_count"
    )


def test_dataset_metrics_are_plain_means_of_rounded_item_values() -> None:
    # Four judged items and one failed judgement (counted, never scored).
    items = [
        make_item(0, "easy", [(PRIMARY, "内容约束"), (SECONDARY, "格式约束"), (SECONDARY, "格式约束")]),
        make_item(1, "easy", [(PRIMARY, "内容约束")]),
        make_item(2, "hard", [(SECONDARY, "数值约束")] * 3),
        make_item(3, "hard", [(PRIMARY, "内容约束"), (SECONDARY, "数值约束")]),
        make_item(4, "hard", [(PRIMARY, "内容约束")]),
    ]
    judged = [[1, 1, 0], [1], [1, 1, 0], [0, 1], None]
    # item: csr, isr, psr
    # 0: 2/3 -> 0.67, 0, secondary 0.5 -> 0.75 -> 0
    # 1: 1.0, 1, all primary -> 1
    # 2: 0.67, 0, no primary, 0.67 > 0.8? no -> 0
    # 3: 0.5, 0, primary failed -> 0
    records = [
        item_record(
            item,
            "回答",
            outcome(item.id, None if s is None else [float(x) for x in s], "ok" if s else "failed"),
            counting="strict",
        )
        for item, s in zip(items, judged, strict=True)
    ]
    result = build_result(CFBENCH, records, task_versions={"cfbench": 1.0}, bootstrap_iters=50)
    m = result.metrics
    assert m["csr"].value == pytest.approx(100 * (0.67 + 1.0 + 0.67 + 0.5) / 4)
    assert m["isr"].value == pytest.approx(100 * 1 / 4)
    assert m["psr"].value == pytest.approx(100 * 1 / 4)
    assert m["easy/csr"].value == pytest.approx(100 * (0.67 + 1.0) / 2)
    assert m["easy/psr"].value == pytest.approx(50.0)
    assert m["hard/csr"].value == pytest.approx(100 * (0.67 + 0.5) / 2)
    assert m["hard/isr"].value == 0.0 and m["hard/psr"].value == 0.0
    assert m["csr"].n == 4 and m["hard/csr"].n == 2
    # Breakdowns are micro-averages over checkpoints: 内容约束 1+1+0 of 3.
    assert m["type/内容约束"].value == pytest.approx(100 * 2 / 3)
    assert m["type/数值约束"].value == pytest.approx(100 * 3 / 4)
    assert result.headline == ["csr", "isr", "psr"]
    assert result.n_items == 5 and result.n_scored == 4 and result.failures == {"wrong_count": 1}
    assert records[4].status == "judge_failed" and records[4].values == {}
    assert result.protocol["fallback_zeros"] == "kept" and result.protocol["failure_counting"] == "strict"


def test_upstream_counting_reads_a_failed_judgement_as_upstreams_script_does() -> None:
    """After the retries upstream keeps only the fallback's 1s (state "0"), or scores [0] (state "-1")
    when nothing is readable, a failed call included (its reply is then "Error"). The item is still a
    recorded judge failure, with values."""
    item = make_item(7, "hard", [(PRIMARY, "内容约束"), (SECONDARY, "格式约束"), (SECONDARY, "格式约束")])
    texts = [c.text for c in item.criteria]
    # Single newlines: the strict reading fails; the fallback keeps the two 1s and drops the 0.
    fallback = "\n".join(f"{c}\t{s}" for c, s in zip(texts, (1, 0, 1), strict=True))
    cases = {
        "fallback": JudgeOutcome(key="7", status="failed", raw=fallback, error_kind="wrong_count"),
        "unreadable": JudgeOutcome(key="7", status="failed", raw="无法评估", error_kind="wrong_count"),
        "no reply": JudgeOutcome(key="7", status="failed", raw=None, error_kind="timeout"),
    }
    got = {name: item_record(item, "回答", o, counting="upstream") for name, o in cases.items()}
    fb = got["fallback"]
    assert fb.extra["parse_state"] == "0" and fb.status == "judge_failed"
    assert (fb.values["csr"], fb.values["isr"], fb.values["psr"]) == (1.0, 1.0, 1.0)  # upstream's quirk
    assert "priority/primary" not in fb.values  # the fallback's scores are not aligned with checkpoints
    for name in ("unreadable", "no reply"):
        rec = got[name]
        assert rec.extra["parse_state"] == "-1" and rec.status == "judge_failed"
        assert (rec.values["csr"], rec.values["isr"], rec.values["psr"]) == (0.0, 0.0, 0.0)
    # The strict counting leaves every one of them unscored.
    for o in cases.values():
        assert item_record(item, "回答", o, counting="strict").values == {}
    # Not judged at all (dry run, budget) is never scored under either counting.
    skipped = JudgeOutcome(key="7", status="skipped", error_kind="budget_exhausted")
    assert item_record(item, "回答", skipped, counting="upstream").status == "not_judged"
    assert item_record(item, "回答", skipped, counting="upstream").values == {}
    result = build_result(CFBENCH, list(got.values()), task_versions={"cfbench": 2.0}, bootstrap_iters=20)
    assert (
        result.protocol["failure_counting"] == "upstream" and result.protocol["fallback_zeros"] == "dropped"
    )
    assert result.metrics["csr"].value == pytest.approx(100 / 3) and result.n_scored == 0
    assert result.failures == {"wrong_count": 2, "timeout": 1}
