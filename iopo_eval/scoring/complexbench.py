"""ComplexBench scoring (protocols.md §4.3): judge requests per scoring question, rule checks on the
extracted segments, dependency aggregation, DRFR with its breakdowns and the coherent test.

Every scoring question of an instance becomes one judge request, in question order: a yes/no request for
an LLM-judged question (judge role ``yesno``, configured as ``--judge complexbench=CFG``), an extraction
request for a rule question (role ``extract``, ``--judge complexbench_extract=CFG``), whose reply is split
into segments and checked by upstream's rules (``complexbench_rules``).

Failures are counted as upstream's pipeline counts them (the headline), and recorded: a judgement that
failed after the retries is read from whatever reply text it got, as upstream reads any reply (no reply:
upstream's fallback, "no" for a yes/no question and no segments for a rule question); its instance keeps
status ``judge_failed`` (counted in ``failures`` by reason) and is left out of ``drfr_judged``. An instance
with a judgement that was never made (dry run, budget cap) or a rule upstream's checker cannot evaluate
has no values at all. A rule upstream does not know gives 2, counted where upstream counts it
(complexbench_aggregation).

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
from iopo_eval.judges.parse_complexbench import decode_extraction, is_structured_extraction, upstream_yesno
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import ItemRecord, ItemStatus, Metric, MetricSpec
from iopo_eval.scoring.complexbench_aggregation import coherent_metrics, item_values, judge_rely
from iopo_eval.scoring.complexbench_rules import (
    UNKNOWN,
    RuleError,
    Verdict,
    judge_rule,
    split_extraction,
    uses_each_prompt,
)

SCORING_VERSION = "complexbench-scoring-3"
DEFAULT_JUDGE = "complexbench-gpt4-1106"
DEFAULT_EXTRACT_JUDGE = "complexbench-extract-gpt4-1106"

# task -> (benchmark, language)
TASKS = {"complexbench": ("complexbench", "zh"), "complexbench_en": ("complexbench_en", "en")}
YESNO, EXTRACT = "yesno", "extract"  # judge roles

METRICS = (
    MetricSpec("drfr", "DRFR", headline=True),
    MetricSpec("drfr_judged", "DRFR over fully judged instances (judge failures left out)"),
    MetricSpec("all_pass", "Instructions with every question passed"),
    MetricSpec("empty_response", "Empty responses (every question failed)", higher_is_better=False),
    MetricSpec("unknown_rule", "Questions whose rule upstream does not know (2)", higher_is_better=False),
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
    """One request per scoring question, in order; rule questions ask the extraction judge, the others the
    yes/no judge. The fields serve both prompts: ``instruction``, ``question`` (the task's language) and
    ``response`` for both; an extraction request adds ``rule`` (upstream's prompt picks its ``_EACH``
    variant by it) and ``mode`` (the same choice, for the hardened template)."""
    instruction = instance.prompt(language)
    out = []
    for q in instance.scoring_questions:
        fields: dict[str, Any] = {
            "instruction": instruction,
            "response": response,
            "question": q.text(language),
        }
        if q.rule is not None:
            fields["rule"] = q.rule
            fields["mode"] = "each" if uses_each_prompt(q.rule) else "whole"
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


def rule_segments(response: str, outcome: JudgeOutcome) -> list[str]:
    """The segments a rule question's extraction gives the rules. A JSON answer of the hardened extraction
    prompt (its parser stores the scope and segments as the reasons) maps directly: ``all`` is the
    response, ``none`` nothing, segments stripped. Any other reply (upstream's prompt, the default: its
    parser keeps the raw text), and the reply of a failed judgement, is read by upstream's ``preprocess``
    (no reply at all: nothing)."""
    if outcome.status == "ok" and outcome.reasons and is_structured_extraction(outcome.raw):
        scope, segments = decode_extraction(outcome.reasons)
        if scope == "all":
            return [response]
        return [] if scope == "none" else [s.strip() for s in segments]
    return split_extraction(response, outcome.raw)


def yesno_verdict(outcome: JudgeOutcome) -> bool:
    """A yes/no question's verdict; a failed judgement is read from its reply by upstream's rule, and
    is "no" without one (upstream's fallback after its retries)."""
    if outcome.status == "ok":
        return bool(outcome.scores and outcome.scores[0] >= 0.5)
    return outcome.raw is not None and upstream_yesno(outcome.raw) is True


def question_verdicts(
    instance: Instance, response: str, outcomes: Sequence[JudgeOutcome]
) -> tuple[dict[int, Verdict], list[dict[str, Any]]]:
    """Raw verdict of every question (True, False, or 2 for an unknown rule), plus per-question detail.
    Raises RuleError (naming the question) where upstream's rule checker would fail."""
    judge: dict[int, Verdict] = {}
    detail = []
    for q, outcome in zip(instance.scoring_questions, outcomes, strict=True):
        entry: dict[str, Any] = {"point_id": q.point_id, "dep": list(q.dep), "rule": q.rule}
        if outcome.status != "ok":
            entry["failed"] = outcome.error_kind or outcome.status
        verdict: Verdict
        if q.rule is None:
            verdict = yesno_verdict(outcome)
        else:
            segments = rule_segments(response, outcome)
            try:
                verdict = judge_rule(q.rule, segments)
            except RuleError as exc:
                raise RuleError(
                    f"ComplexBench main_id {instance.main_id} point_id {q.point_id}: {exc}"
                ) from exc
            entry["n_segments"] = len(segments)
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
    never_judged = any(o.status == "skipped" for o in bad)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {"empty_response": True} if empty else {}
    detail: list[dict[str, Any]] = []
    judge: dict[int, Verdict] = {}
    rule_error = None
    if not never_judged:
        if empty:
            judge = {q.point_id: False for q in instance.scoring_questions}
            detail = [
                {"point_id": q.point_id, "dep": list(q.dep), "rule": q.rule, "judge": False}
                for q in instance.scoring_questions
            ]
        else:
            try:
                judge, detail = question_verdicts(instance, response, outcomes)
            except RuleError as exc:
                rule_error = str(exc)
        if rule_error is None:
            rely = judge_rely(instance, judge)
            for entry in detail:
                entry["rely"] = rely[entry["point_id"]]
            values = item_values(instance, rely)
            if not bad:
                values["drfr_judged"] = values["drfr"]
            values["empty_response"] = float(empty)
            values["unknown_rule"] = [float(sum(v is UNKNOWN for v in judge.values())), float(n)]
            extra["questions"] = detail
    if raw_response is not None and raw_response != response:
        extra["raw_response"] = raw_response
    status: ItemStatus
    error_kind: str | None
    if rule_error is not None:
        # Upstream's checker stops on such a rule; there is no upstream count to follow.
        status, error_kind = "error", "rule_error"
        extra["rule_error"] = rule_error
    elif not bad:
        status, error_kind = "ok", None
    else:
        failed_first = next((o for o in bad if o.status == "failed"), None)
        status = "judge_failed" if failed_first is not None else "not_judged"
        error_kind = (failed_first or bad[0]).error_kind
    judge_blob: dict[str, Any] = {
        "judgements": [o.to_json() for o in outcomes],
        "error_kind": error_kind,
    }
    return ItemRecord(
        benchmark=TASKS[task][0],
        task=task,
        item_id=item_id(instance, language),
        status=status,
        values=values,
        groups=record_groups(instance),
        response=response,
        judge=judge_blob,
        extra=extra,
    )


def record_groups(instance: Instance) -> dict[str, Any]:
    """What an instance's record says about it: its labels, and what the coherent test groups by."""
    return {
        "category": instance.category,
        "category_family": instance.category_family,
        "task_types": list(instance.task_types),
        "nested": instance.nested,
        "main_id": instance.main_id,
        "group": instance.group,  # the coherent test's grouping (upstream's), None included
        "selection_questions": instance.selection_questions,
        "n_questions": len(instance.scoring_questions),
    }


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
            "rule_checker": "upstream con_rule.decompose_judge and rule_based_evaluation.preprocess semantics",
            "failure_counting": "upstream",
            "failed_judgements": "read from the reply text as upstream reads any reply (none: yes/no 'no', "
            "rule on no segments); drfr_judged leaves such instances out",
            "unknown_rule": "2: fails drfr/category/task_type/nested, passes dimension/group/composition and "
            "the coherent test, never fails a dependant",
            "aggregation": "upstream aggregation.py: group/dimension/composition once per listed entry, "
            "nesting label with repeats",
            "coherent_test": "upstream grouping: by group value, depth = Selection questions of the group's "
            "first instance; groups with an instance without values left out; no interval",
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
