"""TRACE scoring: per-constraint judge scores -> IF-S / IF-M and their breakdowns (protocols.md §1.5).

An instruction is followed only when the judge gives every one of its constraints the full 10 points.
A failed judgement contributes to no metric: it is counted in the failures, never scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iopo_eval.data.trace import TraceItem, classify, load_trace, parse_row
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import (
    BenchmarkResult,
    ItemRecord,
    MetricSpec,
    compute_metrics,
    cost_of,
    count_failures,
    mean_response_chars,
)
from iopo_eval.scoring.judged import JudgedBenchmark, effective_scores, register_benchmark

SCORING_VERSION = "trace-scoring-1"
FULL_MARKS = 10.0

METRICS = [
    MetricSpec("if_s", "IF-S", headline=True),
    MetricSpec("if_m", "IF-M", headline=True),
    MetricSpec("if_all", "IF (all instructions)"),
    MetricSpec("constraint_pass", "Constraints at 10"),
    MetricSpec("mean_score", "Mean constraint score (0-10)", scale=1.0),
    MetricSpec("mean_overall", "Mean overall score (0-10)", scale=1.0),
    MetricSpec("empty_response", "Empty responses (rated 0)", higher_is_better=False),
]
BREAKDOWN_PREFIXES = ("category/", "dimension/", "version/", "n_constraints/")


def task_for(item: TraceItem) -> str:
    return "trace_ifs" if item.subset == "single" else "trace_ifm"


NO_INPUT = "(none)"


def judge_request(item: TraceItem, response: str) -> JudgeRequest:
    """The judge sees the task description, the task input, the gold constraint list and the response.

    Upstream fills its query with ``description`` and, where the row has one, the task input; the
    constraints come from ``constraints_splits`` (the gold checklist), numbered by the template.
    """
    return JudgeRequest(
        key=item.id,
        fields={
            "query": item.description,
            "input": item.input if item.input is not None else NO_INPUT,
            "constraints": list(item.constraints_splits),
            "response": response,
        },
        n_expected=len(item.constraints_splits),
    )


def item_values(
    item: TraceItem, scores: Sequence[float], overall: float | None, empty: bool = False
) -> dict[str, Any]:
    """Metric contributions of one rated item (``empty``: the model answered nothing, rated 0)."""
    passed = [s >= FULL_MARKS for s in scores]
    followed = float(all(passed))
    values: dict[str, Any] = {
        "if_s" if item.subset == "single" else "if_m": followed,
        "empty_response": float(empty),
        "if_all": followed,
        "constraint_pass": [float(sum(passed)), float(len(passed))],
        "mean_score": [float(sum(scores)), float(len(scores))],
        f"version/{item.category}": followed,
        f"n_constraints/{len(scores):02d}": followed,
    }
    if overall is not None:
        values["mean_overall"] = float(overall)
    per_cat: dict[str, list[float]] = {}
    per_dim: dict[str, list[float]] = {}
    for label, ok in zip(item.levels2, passed, strict=True):
        category, dimension = classify(label)
        for table, key in ((per_cat, f"category/{category}"), (per_dim, f"dimension/{dimension}")):
            num_den = table.setdefault(key, [0.0, 0.0])
            num_den[0] += float(ok)
            num_den[1] += 1.0
    values.update(per_cat)
    values.update(per_dim)
    return values


def item_record(
    item: TraceItem, response: str, outcome: JudgeOutcome, raw_response: str | None = None
) -> ItemRecord:
    scores = effective_scores(outcome, len(item.constraints_splits))
    ok = scores is not None
    empty = outcome.error_kind == "empty_response"
    groups = {
        "subset": item.subset,
        "version": item.category,
        "n_constraints": len(item.constraints_splits),
        "categories": sorted({classify(label)[0] for label in item.levels2}),
    }
    extra: dict[str, Any] = {
        "constraints": item.constraints_splits,
        "dimensions": [classify(label)[1] for label in item.levels2],
    }
    if raw_response is not None and raw_response != response:
        extra["raw_response"] = raw_response
    if empty:
        extra["empty_response"] = True
    return ItemRecord(
        benchmark="trace",
        task=task_for(item),
        item_id=item.id,
        status="ok" if ok else ("not_judged" if outcome.status == "skipped" else "judge_failed"),
        values={} if scores is None else item_values(item, scores, outcome.overall, empty),
        groups=groups,
        response=response,
        judge=outcome.to_json(),
        extra=extra,
    )


def benchmark_result(
    records: list[ItemRecord],
    *,
    task_versions: dict[str, Any],
    protocol: dict[str, Any],
    judge: dict[str, Any] | None,
    smoke_test: bool,
    items_file: str = "trace.items.jsonl",
    bootstrap_iters: int = 1000,
) -> BenchmarkResult:
    metrics = compute_metrics(records, METRICS, BREAKDOWN_PREFIXES, bootstrap_iters=bootstrap_iters)
    return BenchmarkResult(
        benchmark="trace",
        tasks=task_versions,
        protocol={"scoring_version": SCORING_VERSION, **protocol},
        metrics=metrics,
        headline=[s.name for s in METRICS if s.headline],
        n_items=len(records),
        n_scored=sum(r.status == "ok" for r in records),
        failures=count_failures(records),
        cost=cost_of([r.judge or {} for r in records]),
        judge=judge,
        smoke_test=smoke_test,
        items_file=items_file,
        mean_response_chars=mean_response_chars(records),
    )


def _requests_from_doc(doc: dict[str, Any], response: str) -> list[JudgeRequest]:
    return [judge_request(parse_row(doc, f"trace doc {doc.get('id')!r}"), response)]


DEFAULT_JUDGE = "trace-gpt4o"
register_benchmark(JudgedBenchmark(name="trace", default_judge=DEFAULT_JUDGE, requests=_requests_from_doc))


def from_samples(
    samples: dict[str, list[dict[str, Any]]],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None,
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Item records and results from lm-eval's logged samples of trace_ifs / trace_ifm."""
    records = []
    for task in ("trace_ifs", "trace_ifm"):
        for sample in samples.get(task, []):
            item = parse_row(sample["doc"], f"{task} sample {sample.get('doc_id')}")
            judged = sample["filtered_resps"][0]
            outcome = JudgeOutcome.from_json(judged["judgements"][0])
            judge = judge or judged.get("judge")
            records.append(item_record(item, judged["response"], outcome, judged.get("raw_response")))
    return records, result_for(records, task_versions, judge)


def result_for(
    records: list[ItemRecord], task_versions: dict[str, Any], judge: dict[str, Any] | None
) -> BenchmarkResult:
    from iopo_eval.data.registry import get_file

    protocol = {
        "data_sha256": get_file("trace/eval").sha256,
        "judge_identity": (judge or {}).get("identity_hash"),
        "judge_prompt_version": (judge or {}).get("prompt_version"),
        "strict_rule": "every constraint scored 10",
    }
    return benchmark_result(
        records,
        task_versions=task_versions,
        protocol=protocol,
        judge=judge,
        smoke_test=bool((judge or {}).get("smoke_test")),
    )


def lm_eval_doc(item: TraceItem) -> dict[str, Any]:
    """The document lm-eval sees: the upstream row plus the system and user turns as flat fields."""
    doc = item.to_doc()
    doc["system"] = next((m["content"] for m in item.messages if m["role"] == "system"), "")
    doc["prompt"] = item.user_prompt
    return doc


def docs_by_id(mirror: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every TRACE document by id, with the task it belongs to."""
    return {item.id: (task_for(item), lm_eval_doc(item)) for item in load_trace(mirror=mirror)}


def rescore(
    records: list[ItemRecord],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None,
    mirror: str | None = None,
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Recompute every value from the stored judgements (no judge calls), with the current scoring code."""
    docs = docs_by_id(mirror)
    fresh = []
    for rec in records:
        if rec.item_id not in docs:
            raise KeyError(f"trace item {rec.item_id!r} is not in the TRACE data")
        item = parse_row(docs[rec.item_id][1], f"trace item {rec.item_id!r}")
        outcome = JudgeOutcome.from_json(rec.judge or {"key": rec.item_id, "status": "failed"})
        fresh.append(item_record(item, rec.response, outcome, rec.extra.get("raw_response")))
    return fresh, result_for(fresh, task_versions, judge)
