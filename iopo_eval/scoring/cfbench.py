"""CFBench scoring: 0/1 checkpoint verdicts -> CSR, ISR and PSR exactly as upstream computes them
(protocols.md §3.3), for the full set and the easy and hard halves.

Per item: CSR = mean of the 0/1 scores rounded to 2 decimals; ISR = 1 iff CSR == 1; PSR by the
priority rules in ``item_scores``. Dataset metrics are plain means of the rounded per-item values.
Two sources of verdicts:
- our judge (the ``cfbench_checkpoints`` JSON parser): every judgement that parses is a strict parse;
  a judgement that fails after the engine's retries is counted as a failure, never scored;
- files judged with upstream's own script (``iopo-eval score cfbench --judged FILE``): the stored
  ``judge_response`` is read again exactly as upstream reads it (``parse_cfbench_upstream``: checkpoint
  texts compared verbatim), keeping the zeros that upstream's fallback drops unless asked not to (see
  tasks/cfbench/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iopo_eval.benchmark import (
    Benchmark,
    ChartGroup,
    Doc,
    Judged,
    JudgeRole,
    LeaderboardColumn,
    effective_scores,
    judgements_of,
    status_of,
)
from iopo_eval.data.cfbench import CFBenchItem, load_cfbench, parse_row
from iopo_eval.data.registry import get_file
from iopo_eval.judges.parse_cfbench_upstream import FAILED, FALLBACK, STRICT, parse_upstream_reply
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import ItemRecord, MetricSpec

BENCHMARK = "cfbench"
TASK = "cfbench"
SCORING_VERSION = "cfbench-scoring-1"
DEFAULT_JUDGE = "cfbench-gpt4o"
NO_REFERENCE = "（无参考答案）"  # the template tells the judge to ignore a reference block saying this
PASS_THRESHOLD = 0.8  # upstream's "> 0.8" for CSR and for the primary/secondary blend

DATA_KEY = "cfbench/data"
METRICS = (
    MetricSpec("csr", "CSR", headline=True),
    MetricSpec("isr", "ISR", headline=True),
    MetricSpec("psr", "PSR", headline=True),
    *(
        MetricSpec(f"{split}/{m}", f"{m.upper()} ({split})")
        for split in ("easy", "hard")
        for m in ("csr", "isr", "psr")
    ),
)
BREAKDOWN_PREFIXES = ("type/", "priority/")


# ---------------------------------------------------------------- per-item metrics (pure)


@dataclass(frozen=True)
class ItemScores:
    csr: float
    isr: float
    psr: float


def rounded_mean(values: Sequence[float]) -> float:
    """Upstream rounds every per-item mean to 2 decimals with Python's round (halves go to even)."""
    return round(sum(values) / len(values), 2)


def item_scores(scores: Sequence[float], state: str, primary: Sequence[bool] | None) -> ItemScores:
    """CSR, ISR and PSR of one item from its 0/1 checkpoint scores and upstream's parse state.

    ``primary`` flags the 主需 checkpoints, aligned with ``scores``; it is only read for a strict parse
    (a fallback parse's scores are not aligned with the checkpoints)."""
    if not scores:
        raise ValueError("an item needs at least one checkpoint score")
    csr = rounded_mean(scores)
    isr = 1.0 if csr == 1 else 0.0
    if state == FAILED:
        psr = 0.0
    elif state == FALLBACK:
        psr = float(csr > PASS_THRESHOLD)
    elif state == STRICT:
        if primary is None or len(primary) != len(scores):
            raise ValueError("a strict parse needs one priority flag per checkpoint score")
        main = [s for s, p in zip(scores, primary, strict=True) if p]
        secondary = [s for s, p in zip(scores, primary, strict=True) if not p]
        if any(s == 0 for s in main):
            psr = 0.0
        elif not main:
            psr = float(csr > PASS_THRESHOLD)
        elif not secondary:
            psr = 1.0
        else:
            psr = float(0.5 + 0.5 * rounded_mean(secondary) > PASS_THRESHOLD)
    else:
        raise ValueError(f"unknown parse state {state!r}")
    return ItemScores(csr=csr, isr=isr, psr=psr)


def item_values(item: CFBenchItem, scores: Sequence[float], state: str = STRICT) -> dict[str, Any]:
    """Metric contributions of one scored item: the rounded per-item values (averaged over items),
    and, where the scores are aligned with the checkpoints, [satisfied, total] per type and priority."""
    primary = [c.is_primary for c in item.criteria] if state == STRICT else None
    if state == STRICT and len(scores) != len(item.criteria):
        raise ValueError(f"cfbench item {item.id}: {len(scores)} scores for {len(item.criteria)} checkpoints")
    got = item_scores(scores, state, primary)
    values: dict[str, Any] = {}
    for name, value in (("csr", got.csr), ("isr", got.isr), ("psr", got.psr)):
        values[name] = value
        values[f"{item.split}/{name}"] = value
    if state == STRICT:
        for checkpoint, score in zip(item.criteria, scores, strict=True):
            for key in (
                f"type/{checkpoint.type_label}",
                f"priority/{'primary' if checkpoint.is_primary else 'secondary'}",
            ):
                pair = values.setdefault(key, [0.0, 0.0])
                pair[0] += float(score)
                pair[1] += 1.0
    return values


# ---------------------------------------------------------------- our judge


def judge_request(item: CFBenchItem, response: str) -> JudgeRequest:
    """The judge sees the instruction, the gold answer (when there is one), the response and the
    numbered checkpoints, in upstream's order."""
    return JudgeRequest(
        key=item.id,
        fields={
            "instruction": item.prompt,
            "reference": item.gold if item.has_gold else NO_REFERENCE,
            "response": response,
            "checkpoints": [c.text for c in item.criteria],
        },
        n_expected=len(item.criteria),
    )


def _groups(item: CFBenchItem) -> dict[str, Any]:
    return {
        "split": item.split,
        "source": item.source,
        "domain": item.domain,
        "scenario": item.scenario,
        "n_checkpoints": len(item.criteria),
        "types": sorted({c.type_label for c in item.criteria}),
    }


def _checkpoint_rows(item: CFBenchItem) -> list[list[str]]:
    return [[c.text, c.priority, c.type_label] for c in item.criteria]


def item_record(
    item: CFBenchItem, response: str, outcome: JudgeOutcome, raw_response: str | None = None
) -> ItemRecord:
    """The record of an item judged by our judge: a parsed judgement is always a strict parse."""
    scores = effective_scores(outcome, len(item.criteria))
    ok = scores is not None
    extra: dict[str, Any] = {"checkpoints": _checkpoint_rows(item)}
    if ok:
        extra["parse_state"] = STRICT
    if outcome.error_kind == "empty_response":
        extra["empty_response"] = True
    if raw_response is not None and raw_response != response:
        extra["raw_response"] = raw_response
    return ItemRecord(
        benchmark=BENCHMARK,
        task=TASK,
        item_id=item.id,
        status=status_of(outcome, ok),
        values=item_values(item, scores, STRICT) if scores is not None else {},
        groups=_groups(item),
        response=response,
        judge=outcome.to_json(),
        extra=extra,
    )


# ---------------------------------------------------------------- files judged with upstream's script


def upstream_protocol(extra: dict[str, Any]) -> dict[str, Any]:
    failed_as_zero = bool(extra.get("failed_as_zero"))
    return {
        "judge_source": "upstream judged file (judge_response parsed with upstream's rules)",
        "fallback_zeros": extra.get("fallback_zeros", "kept"),
        "failed_judgements": "scored 0 as upstream does"
        if failed_as_zero
        else "counted as failures, not scored",
    }


def _stored_matches(stored: dict[str, Any], scores: list[float], state: str) -> bool | None:
    """Whether upstream's stored judge_score / judge_parsing agree with our reading; None if absent."""
    if "judge_score" not in stored and "judge_parsing" not in stored:
        return None
    try:
        stored_scores = [float(s) for s in stored.get("judge_score", [])]
    except (TypeError, ValueError):
        return False
    return stored_scores == scores and str(stored.get("judge_parsing")) == state


def upstream_record(
    item: CFBenchItem,
    response: str,
    judge_response: str,
    *,
    keep_zeros: bool = True,
    failed_as_zero: bool = False,
    stored: dict[str, Any] | None = None,
) -> ItemRecord:
    """The record of an item judged by upstream's script, from its stored ``judge_response``.

    A reply that no rule can read (upstream's state "-1") is a judge failure unless ``failed_as_zero``,
    which scores it 0 on every metric as upstream does."""
    parsed = parse_upstream_reply(judge_response, [c.text for c in item.criteria], keep_zeros=keep_zeros)
    failed = parsed.state == FAILED and not failed_as_zero
    stored = dict(stored or {})
    extra: dict[str, Any] = {
        "judge_format": "upstream",
        "parse_state": parsed.state,
        "fallback_zeros": "kept" if keep_zeros else "dropped",
        "failed_as_zero": failed_as_zero,
        "checkpoints": _checkpoint_rows(item),
        **stored,
    }
    match = _stored_matches(stored, parsed.scores, parsed.state)
    if match is not None:
        extra["matches_stored"] = match
    judge = {
        "key": item.id,
        "status": "failed" if failed else "ok",
        "scores": None if failed else parsed.scores,
        "raw": judge_response,
        "error_kind": "parse_error" if failed else None,
        "error": "no checkpoint score could be read from judge_response" if failed else None,
    }
    return ItemRecord(
        benchmark=BENCHMARK,
        task=TASK,
        item_id=item.id,
        status="judge_failed" if failed else "ok",
        values={} if failed else item_values(item, parsed.scores, parsed.state),
        groups=_groups(item),
        response=response,
        judge=judge,
        extra=extra,
    )


# ---------------------------------------------------------------- the benchmark


class CFBench(Benchmark[CFBenchItem]):
    """CFBench: CSR, ISR and PSR over all 1,000 items and the easy and hard halves."""

    name = BENCHMARK
    title = "CFBench"
    tasks = (TASK,)
    metrics = METRICS
    scoring_version = SCORING_VERSION
    breakdown_prefixes = BREAKDOWN_PREFIXES
    judges = (JudgeRole("judge", DEFAULT_JUDGE),)
    columns = (
        LeaderboardColumn("csr", "CSR"),
        LeaderboardColumn("isr", "ISR"),
        LeaderboardColumn("psr", "PSR"),
    )
    charts = (
        ChartGroup("Easy vs hard split", ("easy/", "hard/"), False),
        ChartGroup("Constraint satisfaction by constraint type", ("type/",), True),
    )
    lm_eval_metrics = (
        "csr",
        "isr",
        "psr",
        *(f"{split}/{m}" for split in ("easy", "hard") for m in ("csr", "isr", "psr")),
    )
    in_paper = True

    def documents(self, mirror: str | None = None) -> dict[str, tuple[str, Doc]]:
        return {item.id: (TASK, item.to_doc()) for item in load_cfbench(mirror=mirror)}

    def parse(self, doc: Doc) -> CFBenchItem:
        return parse_row(doc, f"cfbench doc {doc.get('idx')!r}")

    def requests(self, item: CFBenchItem, response: str) -> list[JudgeRequest]:
        return [judge_request(item, response)]

    def record(self, item: CFBenchItem, judged: Judged) -> ItemRecord:
        return item_record(item, judged.response, judged.outcomes[0], judged.raw_response)

    def rescore(self, item: CFBenchItem, stored: ItemRecord) -> ItemRecord:
        """Items judged by upstream's script are read again from their stored ``judge_response``."""
        if stored.extra.get("judge_format") != "upstream":
            return super().rescore(item, stored)
        judge = judgements_of(stored)
        return upstream_record(
            item,
            stored.response,
            (judge[0] if judge else {}).get("raw") or "",
            keep_zeros=stored.extra.get("fallback_zeros", "kept") == "kept",
            failed_as_zero=bool(stored.extra.get("failed_as_zero")),
            stored={k: stored.extra[k] for k in ("judge_score", "judge_parsing") if k in stored.extra},
        )

    def protocol(self, records: Sequence[ItemRecord], docs: Sequence[Doc]) -> dict[str, Any]:
        out = {
            "data_sha256": get_file(DATA_KEY).sha256,
            "rounding": "per-item CSR and secondary mean rounded to 2 decimals (Python round), then plain means",
            "fallback_zeros": "kept",
            "failed_judgements": "counted as failures, not scored",
        }
        upstream = [r for r in records if r.extra.get("judge_format") == "upstream"]
        if upstream:
            out.update(upstream_protocol(upstream[0].extra))
        return out


CFBENCH = CFBench()


def parse_state_counts(records: Sequence[ItemRecord]) -> dict[str, int]:
    """Items by upstream parse state (strict, fallback, unreadable)."""
    counts = {STRICT: 0, FALLBACK: 0, FAILED: 0}
    for rec in records:
        state = rec.extra.get("parse_state")
        if state in counts:
            counts[state] += 1
    return counts
