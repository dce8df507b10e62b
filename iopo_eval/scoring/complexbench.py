"""ComplexBench scoring (protocols.md §4.3): judge requests per scoring question, rule checks on the
extracted segments, dependency aggregation, DRFR with its breakdowns and the coherent test.

Every scoring question of an instance becomes one judge request, in question order: a yes/no request for
an LLM-judged question (judge role ``yesno``, configured as ``--judge complexbench=CFG``), an extraction
request for a rule question (role ``extract``, ``--judge complexbench_extract=CFG``), whose segments the
Python rules then check. An instance is scored only when
every one of its requests was judged: a failed judgement makes the whole instance a recorded failure,
since the dependency rule ties its questions together. Nothing failed is ever turned into a score.

Two benchmarks share this module: ``complexbench`` (the Chinese ``instruction``, task ``complexbench``)
and ``complexbench_en`` (``instruction_en``, task ``complexbench_en``, item ids ``en/<main_id>``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from iopo_eval.benchmark import Benchmark, ChartGroup, Doc, Judged, JudgeRole, LeaderboardColumn
from iopo_eval.data.complexbench import Instance, complexbench_path, load_instances, parse_instance
from iopo_eval.data.store import DataError, sha256_of
from iopo_eval.judges.parse_complexbench import decode_extraction
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import ItemRecord, ItemStatus, Metric, MetricSpec
from iopo_eval.scoring.complexbench_aggregation import coherent_metrics, item_values, judge_rely
from iopo_eval.scoring.complexbench_rules import check_rule, parse_rule

SCORING_VERSION = "complexbench-scoring-1"
DEFAULT_JUDGE = "complexbench-gpt4-1106"
DEFAULT_EXTRACT_JUDGE = "complexbench-extract-gpt4-1106"

# task -> (benchmark, language)
TASKS = {"complexbench": ("complexbench", "zh"), "complexbench_en": ("complexbench_en", "en")}
YESNO, EXTRACT = "yesno", "extract"  # judge roles

METRICS = (
    MetricSpec("drfr", "DRFR", headline=True),
    MetricSpec("all_pass", "Instructions with every question passed"),
    MetricSpec("empty_response", "Empty responses (every question failed)", higher_is_better=False),
)
BREAKDOWN_PREFIXES = (
    "category/",
    "category_family/",
    "task_type/",
    "nested/",
    "group/",
    "composition/",
    "dimension/",
)


def item_id(instance: Instance, language: str) -> str:
    return str(instance.main_id) if language == "zh" else f"en/{instance.main_id}"


# ---------------------------------------------------------------- documents


def lm_eval_doc(instance: Instance, language: str, data_sha256: str) -> dict[str, Any]:
    """The document lm-eval sees. The instance travels as JSON text (its nested questions have mixed
    types that Arrow cannot hold) and is validated again wherever it is read back."""
    return {
        "id": item_id(instance, language),
        "main_id": instance.main_id,
        "language": language,
        "prompt": instance.prompt(language),
        "data_sha256": data_sha256,
        "instance_json": json.dumps(dataclasses.asdict(instance), ensure_ascii=False),
    }


def instance_from_doc(doc: dict[str, Any]) -> Instance:
    try:
        row = json.loads(doc["instance_json"])
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise DataError(f"complexbench doc {doc.get('id')!r}: no valid instance_json ({exc})") from exc
    return parse_instance(row, f"complexbench doc {doc.get('id')!r}")


def docs_for(language: str, mirror: str | None = None, data_file: str | None = None) -> list[dict[str, Any]]:
    path = complexbench_path(mirror, data_file)
    digest = sha256_of(path)
    return [lm_eval_doc(inst, language, digest) for inst in load_instances(path)]


# ---------------------------------------------------------------- judge requests


def judge_requests(instance: Instance, language: str, response: str) -> list[JudgeRequest]:
    """One request per scoring question, in order; rule questions ask the extraction judge (with the field
    ``mode``), the others the yes/no judge."""
    instruction = instance.prompt(language)
    out = []
    for q in instance.scoring_questions:
        fields: dict[str, Any] = {
            "instruction": instruction,
            "response": response,
            "question": q.text(language),
        }
        if q.rule is not None:
            fields["mode"] = "each" if parse_rule(q.rule).each else "whole"
        out.append(
            JudgeRequest(
                key=f"{item_id(instance, language)}#{q.point_id}",
                fields=fields,
                n_expected=1,
                judge=YESNO if q.rule is None else EXTRACT,
            )
        )
    return out


# ---------------------------------------------------------------- verdicts and records


def question_verdicts(
    instance: Instance, response: str, outcomes: Sequence[JudgeOutcome]
) -> tuple[dict[int, bool], list[dict[str, Any]]]:
    """Raw verdict of every question from its (successful) judgement, plus per-question detail."""
    judge: dict[int, bool] = {}
    detail = []
    for q, outcome in zip(instance.scoring_questions, outcomes, strict=True):
        entry: dict[str, Any] = {"point_id": q.point_id, "dep": list(q.dep), "rule": q.rule}
        if q.rule is None:
            verdict = bool(outcome.scores and outcome.scores[0] >= 0.5)
        else:
            scope, segments = decode_extraction(outcome.reasons)
            target = [response] if scope == "all" else (segments if scope == "segments" else None)
            verdict = check_rule(parse_rule(q.rule), target)
            entry["scope"] = scope
        judge[q.point_id] = verdict
        entry["judge"] = verdict
        detail.append(entry)
    return judge, detail


def item_record(
    instance: Instance,
    language: str,
    task: str,
    response: str,
    outcomes: Sequence[JudgeOutcome],
    raw_response: str | None = None,
) -> ItemRecord:
    n = len(instance.scoring_questions)
    if len(outcomes) != n:
        raise ValueError(
            f"ComplexBench main_id {instance.main_id}: {len(outcomes)} judgements for {n} scoring questions"
        )
    # An empty response is the model's failure, not the judge's: the engine asks no judge, and every
    # question is answered "no" here (recorded as empty_response), as for TRACE and CFBench.
    empty = all(o.error_kind == "empty_response" for o in outcomes)
    bad = [] if empty else [o for o in outcomes if o.status != "ok"]
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {"empty_response": True} if empty else {}
    detail: list[dict[str, Any]]
    if not bad:
        if empty:
            judge = {q.point_id: False for q in instance.scoring_questions}
            detail = [
                {"point_id": q.point_id, "dep": list(q.dep), "rule": q.rule, "judge": False}
                for q in instance.scoring_questions
            ]
        else:
            judge, detail = question_verdicts(instance, response, outcomes)
        rely = judge_rely(instance, judge)
        for entry in detail:
            entry["rely"] = rely[entry["point_id"]]
        values = item_values(instance, rely)
        values["empty_response"] = float(empty)
        extra["questions"] = detail
    if raw_response is not None and raw_response != response:
        extra["raw_response"] = raw_response
    status: ItemStatus
    if not bad:
        status = "ok"
    elif any(o.status == "failed" for o in bad):
        status = "judge_failed"
    else:
        status = "not_judged"
    failed_first = next((o for o in bad if o.status == "failed"), bad[0] if bad else None)
    judge_blob: dict[str, Any] = {
        "judgements": [o.to_json() for o in outcomes],
        "error_kind": failed_first.error_kind if failed_first else None,
    }
    return ItemRecord(
        benchmark=TASKS[task][0],
        task=task,
        item_id=item_id(instance, language),
        status=status,
        values=values,
        groups={
            "category": instance.category,
            "category_family": instance.category_family,
            "task_types": list(instance.task_types),
            "nested": instance.nested,
            "selection_group": instance.group if instance.selection_depth is not None else None,
            "selection_depth": instance.selection_depth,
            "n_questions": n,
        },
        response=response,
        judge=judge_blob,
        extra=extra,
    )


class ComplexBench(Benchmark[Instance]):
    """ComplexBench: DRFR over every scoring question, with the dependency rule, and the coherent test."""

    metrics = METRICS
    scoring_version = SCORING_VERSION
    breakdown_prefixes = BREAKDOWN_PREFIXES
    judges = (JudgeRole(YESNO, DEFAULT_JUDGE), JudgeRole(EXTRACT, DEFAULT_EXTRACT_JUDGE))
    charts = (
        ChartGroup("DRFR by constraint group", ("group/",), True),
        ChartGroup("DRFR by instruction category", ("category/", "category_family/"), True),
        ChartGroup("DRFR by nested composition", ("nested/",), True),
        ChartGroup("DRFR by task type", ("task_type/",), True),
        ChartGroup("DRFR by dimension", ("dimension/",), True),
        ChartGroup("DRFR by composition", ("composition/",), False),
        ChartGroup("Coherent test", ("coherent/",), False),
    )
    lm_eval_metrics = ("drfr", "all_pass")

    def __init__(self, task: str) -> None:
        self.name, self.language = TASKS[task]
        self.tasks = (task,)
        self.title = "ComplexBench" if self.language == "zh" else "ComplexBench (English)"
        # The paper reports the Chinese set (Table 3); the English translation is an extra of ours.
        self.in_paper = self.language == "zh"
        self.columns = (LeaderboardColumn("drfr", "DRFR"),) if self.in_paper else ()

    def documents(self, mirror: str | None = None) -> dict[str, tuple[str, Doc]]:
        return {doc["id"]: (self.tasks[0], doc) for doc in docs_for(self.language, mirror)}

    def parse(self, doc: Doc) -> Instance:
        return instance_from_doc(doc)

    def requests(self, item: Instance, response: str) -> list[JudgeRequest]:
        return judge_requests(item, self.language, response)

    def record(self, item: Instance, judged: Judged) -> ItemRecord:
        return item_record(
            item, self.language, self.tasks[0], judged.response, judged.outcomes, judged.raw_response
        )

    def protocol(self, records: Sequence[ItemRecord], docs: Sequence[Doc]) -> dict[str, Any]:
        return {
            "language": self.language,
            "data_sha256": _one_digest({doc.get("data_sha256") for doc in docs}),
            "dependency_rule": "judge_rely = own verdict AND raw verdicts of direct dependencies",
            "coherent_test": "group-level; groups with an unscored instance left out; no interval",
        }

    def extra_metrics(self, records: Sequence[ItemRecord]) -> dict[str, Metric]:
        return coherent_metrics(records)


COMPLEXBENCH = ComplexBench("complexbench")
COMPLEXBENCH_EN = ComplexBench("complexbench_en")


def _one_digest(digests: set[Any]) -> str | None:
    digests.discard(None)
    if len(digests) > 1:
        raise ValueError(f"ComplexBench documents come from different data files: {sorted(digests)}")
    return next(iter(digests), None)
