"""ComplexBench scoring (protocols.md §4.3): judge requests per scoring question, rule checks on the
extracted segments, dependency aggregation, DRFR with its breakdowns and the coherent test.

Every scoring question of an instance becomes one judge request, in question order: a yes/no request for
an LLM-judged question (judge ``complexbench``), an extraction request for a rule question (judge
``complexbench_extract``, whose reply is split into segments and checked by upstream's rules,
``complexbench_rules``).

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

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iopo_eval.data.complexbench import (
    Instance,
    complexbench_path,
    load_generations,
    load_instances,
    parse_instance,
)
from iopo_eval.data.store import DataError, sha256_of
from iopo_eval.judges.parse_complexbench import decode_extraction, is_structured_extraction, upstream_yesno
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
from iopo_eval.scoring.complexbench_aggregation import coherent_metrics, item_values, judge_rely
from iopo_eval.scoring.complexbench_rules import (
    UNKNOWN,
    RuleError,
    Verdict,
    judge_rule,
    split_extraction,
    uses_each_prompt,
)
from iopo_eval.scoring.judged import JudgedBenchmark, register_benchmark

SCORING_VERSION = "complexbench-scoring-2"
DEFAULT_JUDGE = "complexbench-gpt4-1106"
DEFAULT_EXTRACT_JUDGE = "complexbench-extract-gpt4-1106"

# task -> (benchmark, language); the extraction judge of a benchmark is "<benchmark>_extract".
TASKS = {"complexbench": ("complexbench", "zh"), "complexbench_en": ("complexbench_en", "en")}
TASK_OF_BENCHMARK = {bench: task for task, (bench, _lang) in TASKS.items()}

METRICS = [
    MetricSpec("drfr", "DRFR", headline=True),
    MetricSpec("drfr_judged", "DRFR over fully judged instances (judge failures left out)"),
    MetricSpec("all_pass", "Instructions with every question passed"),
    MetricSpec("empty_response", "Empty responses (every question failed)", higher_is_better=False),
    MetricSpec("unknown_rule", "Questions whose rule upstream does not know (2)", higher_is_better=False),
]
BREAKDOWN_PREFIXES = (
    "category/",
    "category_family/",
    "task_type/",
    "nested/",
    "group/",
    "composition/",
    "dimension/",
)


def extract_judge_name(benchmark: str) -> str:
    return f"{benchmark}_extract"


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


def docs_by_id(mirror: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """Every ComplexBench document of both tasks by id (Chinese ids "17", English ids "en/17")."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for task, (_bench, language) in TASKS.items():
        try:
            docs = docs_for(language, mirror)
        except DataError:
            if language == "zh":
                raise
            continue  # a data file without instruction_en has no English documents
        for doc in docs:
            out[doc["id"]] = (task, doc)
    return out


# ---------------------------------------------------------------- judge requests


def judge_requests(instance: Instance, language: str, response: str) -> list[JudgeRequest]:
    """One request per scoring question, in order; rule questions ask for extraction (field ``mode``)."""
    instruction = instance.prompt(language)
    out = []
    for q in instance.scoring_questions:
        fields: dict[str, Any] = {
            "instruction": instruction,
            "response": response,
            "question": q.text(language),
        }
        if q.rule is not None:
            fields["mode"] = "each" if uses_each_prompt(q.rule) else "whole"
        out.append(
            JudgeRequest(key=f"{item_id(instance, language)}#{q.point_id}", fields=fields, n_expected=1)
        )
    return out


def _register(benchmark: str, language: str) -> None:
    extract = extract_judge_name(benchmark)

    def requests(doc: dict[str, Any], response: str) -> list[JudgeRequest]:
        return judge_requests(instance_from_doc(doc), language, response)

    register_benchmark(
        JudgedBenchmark(
            name=benchmark,
            default_judge=DEFAULT_JUDGE,
            requests=requests,
            extra_judges={extract: DEFAULT_EXTRACT_JUDGE},
            route=lambda request: extract if "mode" in request.fields else None,
        )
    )


for _task, (_bench, _lang) in TASKS.items():
    _register(_bench, _lang)


# ---------------------------------------------------------------- verdicts and records


def rule_segments(response: str, outcome: JudgeOutcome) -> list[str]:
    """The segments a rule question's extraction gives the rules. A JSON answer (our extraction prompt)
    maps directly: ``all`` is the response, ``none`` nothing, segments stripped. Any other reply, and the
    reply of a failed judgement, is read by upstream's ``preprocess`` (no reply at all: nothing)."""
    if outcome.status == "ok" and is_structured_extraction(outcome.raw):
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
    return bool(outcome.raw) and upstream_yesno(outcome.raw) is True


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
        if q.rule is None:
            verdict: Verdict = yesno_verdict(outcome)
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
    extra_judges: dict[str, Any] | None = None,
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
    rule_error = None
    if not never_judged:
        if empty:
            judge: dict[int, Verdict] = {q.point_id: False for q in instance.scoring_questions}
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
    if extra_judges:
        judge_blob["extra_judges"] = extra_judges
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


def _all_judgements(records: Sequence[ItemRecord]) -> list[dict[str, Any]]:
    return [j for r in records for j in (r.judge or {}).get("judgements", [])]


def result_for(
    records: list[ItemRecord],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None,
    *,
    benchmark: str = "complexbench",
    data_sha256: str | None = None,
    extract_judge: dict[str, Any] | None = None,
    bootstrap_iters: int = 1000,
) -> BenchmarkResult:
    metrics = compute_metrics(records, METRICS, BREAKDOWN_PREFIXES, bootstrap_iters=bootstrap_iters)
    metrics.update(coherent_metrics(records))
    protocol = {
        "scoring_version": SCORING_VERSION,
        "language": TASKS[TASK_OF_BENCHMARK[benchmark]][1],
        "data_sha256": data_sha256,
        "judge_identity": (judge or {}).get("identity_hash"),
        "judge_prompt_version": (judge or {}).get("prompt_version"),
        "extract_judge": extract_judge,
        "extract_judge_identity": (extract_judge or {}).get("identity_hash"),
        "extract_judge_prompt_version": (extract_judge or {}).get("prompt_version"),
        "dependency_rule": "judge_rely = own verdict AND raw verdicts of direct dependencies",
        "rule_checker": "upstream con_rule.decompose_judge and rule_based_evaluation.preprocess semantics",
        "failure_counting": "upstream: a failed judgement is read from its reply text as upstream reads "
        "any reply (none: yes/no 'no', rule on no segments); drfr_judged leaves such instances out",
        "unknown_rule": "2: fails drfr/category/task_type/nested, passes dimension/group/composition and "
        "the coherent test, never fails a dependant",
        "coherent_test": "group-level; groups with an instance without values left out; no interval",
    }
    return BenchmarkResult(
        benchmark=benchmark,
        tasks=task_versions,
        protocol=protocol,
        metrics=metrics,
        headline=[s.name for s in METRICS if s.headline],
        n_items=len(records),
        n_scored=sum(r.status == "ok" for r in records),
        failures=count_failures(records),
        cost=cost_of(_all_judgements(records)),
        judge=judge,
        smoke_test=bool((judge or {}).get("smoke_test") or (extract_judge or {}).get("smoke_test")),
        items_file=f"{benchmark}.items.jsonl",
        mean_response_chars=mean_response_chars(records),
    )


def _benchmark_of(task_versions: dict[str, Any], samples: dict[str, Any]) -> str:
    tasks = [t for t in (*task_versions, *samples) if t in TASKS]
    benches = {TASKS[t][0] for t in tasks}
    if len(benches) != 1:
        raise ValueError(
            f"ComplexBench scoring needs the samples of exactly one of {sorted(TASKS)}, got {tasks}"
        )
    return benches.pop()


def from_samples(
    samples: dict[str, list[dict[str, Any]]], task_versions: dict[str, Any], judge: dict[str, Any] | None
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Item records and results from lm-eval's logged samples of one ComplexBench task."""
    benchmark = _benchmark_of(task_versions, samples)
    task = TASK_OF_BENCHMARK[benchmark]
    language = TASKS[task][1]
    records, digests, extract_judge = [], set(), None
    for sample in samples.get(task, []):
        doc = sample["doc"]
        instance = instance_from_doc(doc)
        judged = sample["filtered_resps"][0]
        outcomes = [JudgeOutcome.from_json(o) for o in judged["judgements"]]
        judge = judge or judged.get("judge")
        extras = judged.get("extra_judges") or {}
        extract_judge = extract_judge or extras.get(extract_judge_name(benchmark))
        digests.add(doc.get("data_sha256"))
        records.append(
            item_record(
                instance, language, task, judged["response"], outcomes, judged.get("raw_response"), extras
            )
        )
    return records, result_for(
        records,
        task_versions,
        judge,
        benchmark=benchmark,
        data_sha256=_one_digest(digests),
        extract_judge=extract_judge,
    )


def _one_digest(digests: set[Any]) -> str | None:
    digests.discard(None)
    if len(digests) > 1:
        raise ValueError(f"ComplexBench samples come from different data files: {sorted(digests)}")
    return next(iter(digests), None)


def rescore(
    records: list[ItemRecord],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None,
    mirror: str | None = None,
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Recompute every value from the stored judgements (no judge calls), with the current scoring code."""
    docs = docs_by_id(mirror)
    fresh, digests, extract_judge = [], set(), None
    benchmark = _benchmark_of(task_versions, {r.task: None for r in records})
    for rec in records:
        if rec.item_id not in docs:
            raise KeyError(f"complexbench item {rec.item_id!r} is not in the ComplexBench data")
        task, doc = docs[rec.item_id]
        digests.add(doc["data_sha256"])
        extras = (rec.judge or {}).get("extra_judges") or {}
        extract_judge = extract_judge or extras.get(extract_judge_name(benchmark))
        outcomes = [JudgeOutcome.from_json(o) for o in (rec.judge or {}).get("judgements", [])]
        fresh.append(
            item_record(
                instance_from_doc(doc),
                TASKS[task][1],
                task,
                rec.response,
                outcomes,
                rec.extra.get("raw_response"),
                extras,
            )
        )
    return fresh, result_for(
        fresh,
        task_versions,
        judge,
        benchmark=benchmark,
        data_sha256=_one_digest(digests),
        extract_judge=extract_judge,
    )


# ---------------------------------------------------------------- upstream generation files


def generation_responses(
    generations: Path, instances: Sequence[Instance], limit: int | None = None
) -> dict[tuple[str, str, str], str]:
    """Responses keyed as ``iopo-eval judge`` keys them, from an upstream ``llm_generations`` file.

    Without ``limit`` the file must cover exactly the data's main_ids; with it, the first ``limit``
    instances are judged and each must have a generation. The generation's ``instruction`` must be the
    instance's Chinese instruction (upstream's files are aligned by main_id; a mismatch means a different
    data version)."""
    rows = {g.main_id: g for g in load_generations(generations)}
    chosen = list(instances[:limit] if limit is not None else instances)
    wanted = {inst.main_id for inst in chosen}
    missing = sorted(wanted - set(rows))
    if missing:
        raise DataError(f"{generations}: no generation for main_id(s) {missing[:10]}")
    if limit is None and set(rows) - wanted:
        extra = sorted(set(rows) - wanted)
        raise DataError(
            f"{generations}: main_id(s) {extra[:10]} are not in the ComplexBench data (use --limit?)"
        )
    out = {}
    for inst in chosen:
        gen = rows[inst.main_id]
        if gen.instruction != inst.instruction:
            raise DataError(
                f"{generations} main_id {inst.main_id}: its instruction differs from the data's (another data version?)"
            )
        out[("complexbench", "complexbench", item_id(inst, "zh"))] = gen.generated
    return out


def register_score_subcommand(sub: argparse._SubParsersAction) -> None:
    from iopo_eval.commands.common import add_data_args, add_judge_args

    p = sub.add_parser(
        "complexbench",
        help="judge and score an upstream ComplexBench generation file (this calls the judge)",
        description="Judge the responses of an upstream llm_generations/<model>.jsonl file "
        "({main_id, model, instruction, generated} rows) on the Chinese instructions and score them exactly "
        "as `iopo-eval run` does. Judgements are cached, so a rerun pays nothing twice; --dry-run estimates.",
    )
    p.add_argument("--generations", type=Path, required=True, help="upstream generation file (JSONL)")
    p.add_argument("--limit", type=int, help="judge only the first N instances of the data")
    p.add_argument("--output", "-o", type=Path, default=Path("runs"), help="folder for the new run folder")
    add_data_args(p)
    add_judge_args(p)
    p.set_defaults(func=_score_generations)


def _score_generations(args: argparse.Namespace) -> int:
    from iopo_eval.commands.common import session_from_args
    from iopo_eval.rejudge import judge_and_score
    from iopo_eval.report import summary

    instances = load_instances(complexbench_path(args.data_mirror))
    responses = generation_responses(args.generations, instances, args.limit)
    models = {g.model for g in load_generations(args.generations)}
    model = {"name": ", ".join(sorted(models)) or "unknown", "source": str(args.generations)}
    with session_from_args(args) as session:
        results, run_dir = judge_and_score(responses, session, args.output, model, args.data_mirror)
        if args.dry_run:
            print(session.estimate_text())
    print(summary(results))
    print(f"\nresults: {run_dir / 'results.json'}")
    return 0
