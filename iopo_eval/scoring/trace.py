"""TRACE scoring: per-constraint judge scores -> IF-S / IF-M and their breakdowns (protocols.md §1.5).

An instruction is followed only when the judge gives every one of its constraints the full 10 points.
A failed judgement contributes to no metric: it is counted in the failures, never scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from iopo_eval.benchmark import (
    Benchmark,
    ChartGroup,
    Doc,
    Judged,
    JudgeRole,
    LeaderboardColumn,
    effective_scores,
    status_of,
)
from iopo_eval.data.registry import get_file
from iopo_eval.data.trace import TRACE_FILE_KEY, TraceItem, classify, load_trace, parse_row
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import ItemRecord, MetricSpec

SCORING_VERSION = "trace-scoring-1"
FULL_MARKS = 10.0

DEFAULT_JUDGE = "trace-gpt4o"
METRICS = (
    MetricSpec("if_s", "IF-S", headline=True),
    MetricSpec("if_m", "IF-M", headline=True),
    MetricSpec("if_all", "IF (all instructions)"),
    MetricSpec("constraint_pass", "Constraints at 10"),
    MetricSpec("mean_score", "Mean constraint score (0-10)", scale=1.0),
    MetricSpec("mean_overall", "Mean overall score (0-10)", scale=1.0),
    MetricSpec("empty_response", "Empty responses (rated 0)", higher_is_better=False),
)
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
        status=status_of(outcome, scores is not None),
        values={} if scores is None else item_values(item, scores, outcome.overall, empty),
        groups=groups,
        response=response,
        judge=outcome.to_json(),
        extra=extra,
    )


class Trace(Benchmark[TraceItem]):
    """TRACE: IF-S on the single-constraint instructions, IF-M on the multi-constraint ones."""

    name = "trace"
    title = "TRACE"
    tasks = ("trace_ifs", "trace_ifm")
    metrics = METRICS
    scoring_version = SCORING_VERSION
    breakdown_prefixes = BREAKDOWN_PREFIXES
    judges = (JudgeRole("judge", DEFAULT_JUDGE),)
    columns = (LeaderboardColumn("if_s", "IF-S"), LeaderboardColumn("if_m", "IF-M"))
    charts = (
        ChartGroup("Pass rate by constraint category", ("category/",), False),
        ChartGroup("Pass rate by constraint dimension", ("dimension/",), True),
        ChartGroup("Instructions followed by TRACE version", ("version/",), False),
        ChartGroup("Instructions followed by number of constraints", ("n_constraints/",), False),
    )
    in_paper = True

    def documents(self, mirror: str | None = None) -> dict[str, tuple[str, Doc]]:
        """Every TRACE document by id, with the task it belongs to."""
        return {item.id: (task_for(item), lm_eval_doc(item)) for item in load_trace(mirror=mirror)}

    def parse(self, doc: Doc) -> TraceItem:
        return parse_row(doc, f"trace doc {doc.get('id')!r}")

    def task_of(self, item: TraceItem) -> str:
        return task_for(item)

    def requests(self, item: TraceItem, response: str) -> list[JudgeRequest]:
        return [judge_request(item, response)]

    def record(self, item: TraceItem, judged: Judged) -> ItemRecord:
        return item_record(item, judged.response, judged.outcomes[0], judged.raw_response)

    def protocol(self, records: Sequence[ItemRecord], docs: Sequence[Doc]) -> dict[str, Any]:
        return {"data_sha256": get_file(TRACE_FILE_KEY).sha256, "strict_rule": "every constraint scored 10"}

    def lm_eval_values(self, record: ItemRecord) -> dict[str, Any]:
        """trace_ifs reports IF-S, trace_ifm IF-M; both the item's mean constraint score (0-1)."""
        rate = "if_s" if record.task == "trace_ifs" else "if_m"
        mean_score = record.values.get("mean_score")
        return {
            rate: record.values.get(rate),
            "mean_score": None if not isinstance(mean_score, list) else mean_score[0] / mean_score[1],
            "judge_failures": int(record.status != "ok"),
        }


TRACE = Trace()


def lm_eval_doc(item: TraceItem) -> dict[str, Any]:
    """The document lm-eval sees: the upstream row plus the system and user turns as flat fields."""
    doc = item.to_doc()
    doc["system"] = next((m["content"] for m in item.messages if m["role"] == "system"), "")
    doc["prompt"] = item.user_prompt
    return doc
