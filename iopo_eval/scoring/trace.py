"""TRACE scoring: per-constraint judge scores -> IF-S / IF-M and their breakdowns (protocols.md §1.5).

Two rules say whether an instruction was followed, and both are reported:

- **the paper's** (the headline ``if_s`` / ``if_m``): every constraint scored 10, read from the judge's
  fine-grained scores (the mean of the constraint scores is 10);
- **upstream code's** (``if_s_upstream`` / ``if_m_upstream``): the overall score ``[[x]]`` equals 10, as
  upstream's ``trace.py`` reads it; a reply whose overall does not parse is not followed.

``rule_disagreements`` counts the scored items on which they differ. A failed judgement (a reply whose
fine-grained scores cannot be matched to the constraints, after the retries) contributes to no metric:
it is counted in the failures, never scored.
"""

from __future__ import annotations

import math
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
from iopo_eval.judges.upstream_prompt import TRACE_INPUT
from iopo_eval.results import ItemRecord, Metric, MetricSpec
from iopo_eval.stats import as_pair

SCORING_VERSION = "trace-scoring-2"
FULL_MARKS = 10.0

DEFAULT_JUDGE = "trace-gpt4o"
METRICS = (
    MetricSpec("if_s", "IF-S", headline=True),
    MetricSpec("if_m", "IF-M", headline=True),
    MetricSpec("if_all", "IF (all instructions)"),
    MetricSpec("if_s_upstream", "IF-S by upstream code's rule (overall == 10)"),
    MetricSpec("if_m_upstream", "IF-M by upstream code's rule (overall == 10)"),
    MetricSpec("if_all_upstream", "IF (all) by upstream code's rule (overall == 10)"),
    MetricSpec("constraint_pass", "Constraints at 10"),
    MetricSpec("mean_score", "Mean constraint score (0-10)", scale=1.0),
    MetricSpec("mean_overall", "Mean overall score (0-10; overalls outside 0-10 left out)", scale=1.0),
    MetricSpec("overall_unparsed", "Replies whose overall score does not parse", higher_is_better=False),
    MetricSpec("overall_out_of_range", "Overall scores outside 0-10", higher_is_better=False),
    MetricSpec("empty_response", "Empty responses (rated 0)", higher_is_better=False),
)
BREAKDOWN_PREFIXES = ("category/", "dimension/", "version/", "n_constraints/")
DISAGREEMENTS = "rule_disagreements"
# A judgement that failed after the retries is counted as a failure and never scored (the paper's rule
# needs every constraint's score; upstream's code would have read the overall alone).
FAILURE_COUNTING = "strict"


def task_for(item: TraceItem) -> str:
    return "trace_ifs" if item.subset == "single" else "trace_ifm"


NO_INPUT = "(none)"  # what the hardened prompt shows for a row without input
UPSTREAM_NO_INPUT = "NULL"  # the row's own sentinel, which upstream's prompt code tests for


def judge_request(item: TraceItem, response: str) -> JudgeRequest:
    """One request carrying the fields of both prompts, so that either judge can be chosen:

    - upstream's (``trace`` spec, the default judge): ``description``, ``row_input`` and
      ``row_constraints`` as the row holds them, the gold ``constraints_splits`` (the reply's scores are
      matched to them), the user ``prompt`` (for the ``question: prompt`` reading) and the response;
    - the hardened template's: ``query`` (the description), ``input`` (``(none)`` when absent) and the
      gold ``constraints`` list, numbered by the template.
    """
    return JudgeRequest(
        key=item.id,
        fields=request_fields(
            description=item.description,
            task_input=item.input,
            constraints=item.constraints,
            constraints_splits=item.constraints_splits,
            user_prompt=item.user_prompt,
            response=response,
        ),
        n_expected=len(item.constraints_splits),
    )


def request_fields(
    *,
    description: str,
    task_input: str | None,
    constraints: str,
    constraints_splits: Sequence[str],
    user_prompt: str,
    response: str,
) -> dict[str, Any]:
    """The fields of a TRACE judge request for an instruction in TRACE's row schema (``task_input`` None
    when the row has none): the one place they are made, for the evaluation and for built training data."""
    return {
        "description": description,
        TRACE_INPUT: task_input if task_input is not None else UPSTREAM_NO_INPUT,
        "row_constraints": constraints,
        "constraints_splits": list(constraints_splits),
        "prompt": user_prompt,
        "query": description,
        "input": task_input if task_input is not None else NO_INPUT,
        "constraints": list(constraints_splits),
        "response": response,
    }


def overall_in_range(overall: float | None) -> bool:
    return overall is not None and math.isfinite(overall) and 0.0 <= overall <= FULL_MARKS


def item_values(
    item: TraceItem,
    scores: Sequence[float],
    overall: float | None,
    empty: bool = False,
    replied: bool = True,
) -> dict[str, Any]:
    """Metric contributions of one rated item (``empty``: the model answered nothing, rated 0 without a
    judge reply; ``replied``: a judge reply was read, so its overall score could have parsed)."""
    passed = [s >= FULL_MARKS for s in scores]
    followed = float(all(passed))  # the paper's rule
    by_overall = float(overall == FULL_MARKS)  # upstream code's rule; no overall: not followed
    single = item.subset == "single"
    values: dict[str, Any] = {
        "if_s" if single else "if_m": followed,
        "if_s_upstream" if single else "if_m_upstream": by_overall,
        "empty_response": float(empty),
        "if_all": followed,
        "if_all_upstream": by_overall,
        "rules_disagree": float(followed != by_overall),
        "constraint_pass": [float(sum(passed)), float(len(passed))],
        "mean_score": [float(sum(scores)), float(len(scores))],
        f"version/{item.category}": followed,
        f"n_constraints/{len(scores):02d}": followed,
    }
    if replied:
        values["overall_unparsed"] = float(overall is None)
        if overall is not None:
            values["overall_out_of_range"] = float(not overall_in_range(overall))
    if overall_in_range(overall):
        assert overall is not None
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
    values = {}
    if scores is not None:
        overall = None if empty else outcome.overall
        values = item_values(item, scores, overall, empty, replied=not empty)
    return ItemRecord(
        benchmark="trace",
        task=task_for(item),
        item_id=item.id,
        status=status_of(outcome, scores is not None),
        values=values,
        groups=groups,
        response=response,
        judge=outcome.to_json(),
        extra=extra,
    )


def rule_disagreements(records: Sequence[ItemRecord]) -> Metric:
    """How many scored items the paper's rule and upstream code's rule judge differently (a count)."""
    flags = [as_pair(r.values["rules_disagree"])[0] for r in records if "rules_disagree" in r.values]
    return Metric(
        value=float(sum(flags)),
        ci_low=math.nan,
        ci_high=math.nan,
        n=len(flags),
        label="Items where the paper's rule and upstream code's rule disagree (count)",
        scale=1.0,
        higher_is_better=False,
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

    def requests(self, item: TraceItem, response: str) -> list[JudgeRequest]:
        return [judge_request(item, response)]

    def record(self, item: TraceItem, judged: Judged) -> ItemRecord:
        return item_record(item, judged.response, judged.outcomes[0], judged.raw_response)

    def protocol(self, records: Sequence[ItemRecord], docs: Sequence[Doc]) -> dict[str, Any]:
        return {
            "data_sha256": get_file(TRACE_FILE_KEY).sha256,
            "strict_rule": "every constraint scored 10",
            "upstream_rule": "overall == 10 (a reply whose overall does not parse: not followed)",
            "failure_counting": FAILURE_COUNTING,
        }

    def extra_metrics(self, records: Sequence[ItemRecord]) -> dict[str, Metric]:
        return {DISAGREEMENTS: rule_disagreements(records)}

    def lm_eval_values(self, record: ItemRecord) -> dict[str, Any]:
        """trace_ifs reports IF-S, trace_ifm IF-M (each by both rules); both the item's mean constraint
        score (0-1)."""
        rate = "if_s" if record.task == "trace_ifs" else "if_m"
        mean_score = record.values.get("mean_score")
        return {
            rate: record.values.get(rate),
            f"{rate}_upstream": record.values.get(f"{rate}_upstream"),
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
