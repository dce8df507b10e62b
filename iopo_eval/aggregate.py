"""Aggregation, written once for every benchmark: item records from lm-eval's samples, records rescored
from stored judgements, and a benchmark's results from its records.

A benchmark contributes only its declarations and its own steps (:class:`iopo_eval.benchmark.Benchmark`);
metrics, breakdowns, failures, cost, judge descriptions and protocol are assembled here the same way for
all of them, so a figure means the same thing on every benchmark.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iopo_eval.benchmark import Benchmark, Doc, judgements_of
from iopo_eval.results import (
    BenchmarkResult,
    ItemRecord,
    compute_metrics,
    cost_of,
    count_failures,
    mean_response_chars,
)
from iopo_eval.stats import DEFAULT_BOOTSTRAP

Samples = Mapping[str, Sequence[Mapping[str, Any]]]  # lm-eval task -> logged samples
JudgeDescriptions = Mapping[str, Mapping[str, Any]]  # judge role -> public description


def records_from_samples(bench: Benchmark[Any], samples: Samples) -> list[ItemRecord]:
    """Item records from lm-eval's samples, in sample order: a judged document's record was built by the
    ``iopo_judge`` filter and is read back as it is; a rule-checked task keeps the raw generation, which
    is checked here."""
    from iopo_eval.judging import judge_documents

    records: list[ItemRecord | None] = []
    unchecked: list[tuple[int, Doc, str]] = []
    for task in bench.tasks:
        for sample in samples.get(task, []):
            value = sample["filtered_resps"][0]
            if isinstance(value, Mapping) and "record" in value:
                records.append(ItemRecord.from_json(dict(value["record"])))
            elif isinstance(value, str) and not bench.judged:
                unchecked.append((len(records), dict(sample["doc"]), value))
                records.append(None)
            else:
                raise TypeError(
                    f"{task} sample {sample.get('doc_id')}: expected a generated string or a record of the "
                    f"iopo_judge filter, got {type(value).__name__}"
                )
    if unchecked:
        checked = judge_documents(bench, [d for _, d, _ in unchecked], [r for _, _, r in unchecked], None)
        for (index, _doc, _raw), record in zip(unchecked, checked, strict=True):
            records[index] = record
    return [r for r in records if r is not None]


def docs_of(samples: Samples, tasks: Sequence[str]) -> list[Doc]:
    return [dict(sample["doc"]) for task in tasks for sample in samples.get(task, [])]


def rescore(
    bench: Benchmark[Any], records: Sequence[ItemRecord], mirror: str | None = None
) -> tuple[list[ItemRecord], list[Doc]]:
    """Every record recomputed from what it stores (judgements, raw response) with the current code and
    data; no judge calls. Returns the fresh records and their documents."""
    docs = bench.documents(mirror)
    fresh, used = [], []
    for rec in records:
        if rec.item_id not in docs:
            raise KeyError(f"{bench.name} item {rec.item_id!r} is not in the {bench.title} data")
        doc = docs[rec.item_id][1]
        fresh.append(bench.rescore(bench.parse(doc), rec))
        used.append(doc)
    return fresh, used


def rescore_result(
    bench: Benchmark[Any], result: BenchmarkResult, stored: Sequence[ItemRecord], mirror: str | None = None
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """A stored benchmark result recomputed from its items with the current code (no judge calls). What
    the items file cannot say is carried over: the items the input lacked (counted in ``n_items`` and
    ``failures``, e.g. ``no_response``), the input rows that were skipped, the task versions, the judges."""
    records, docs = rescore(bench, stored, mirror)
    from_items = count_failures(stored)
    absent = {r: n - from_items.get(r, 0) for r, n in result.failures.items() if n > from_items.get(r, 0)}
    fresh = build_result(
        bench,
        records,
        task_versions=result.tasks,
        judges=stored_judges(bench, result),
        docs=docs,
        n_items=max(result.n_items, len(records)),
        extra_failures=absent,
        skipped_inputs=result.skipped_inputs,
    )
    return records, fresh


def stored_judges(bench: Benchmark[Any], result: BenchmarkResult) -> dict[str, dict[str, Any]]:
    """The judge descriptions a stored result names, by role (for rescoring it)."""
    out: dict[str, dict[str, Any]] = {}
    for role in bench.judges:
        prefix = bench.protocol_judge_prefix(role)
        desc = result.judge if prefix == "judge" else result.protocol.get(prefix)
        if desc:
            out[role.name] = dict(desc)
    return out


def build_result(
    bench: Benchmark[Any],
    records: Sequence[ItemRecord],
    *,
    task_versions: Mapping[str, Any] | None = None,
    judges: JudgeDescriptions | None = None,
    docs: Sequence[Doc] = (),
    n_items: int | None = None,
    extra_failures: Mapping[str, int] | None = None,
    skipped_inputs: Mapping[str, int] | None = None,
    protocol_extra: Mapping[str, Any] | None = None,
    bootstrap_iters: int = DEFAULT_BOOTSTRAP,
) -> BenchmarkResult:
    """A benchmark's results from its item records.

    ``judges`` describes each judge role (absent for rule-checked benchmarks); ``n_items`` and
    ``extra_failures`` let an input file that lacks some items say so (they count as failures, never as
    scores); ``skipped_inputs`` counts input rows that are not items of the benchmark."""
    records = list(records)
    judges = dict(judges or {})
    metrics = compute_metrics(
        records, bench.metrics, bench.breakdown_prefixes, bootstrap_iters=bootstrap_iters
    )
    metrics.update(bench.extra_metrics(records))
    failures = count_failures(records)
    for reason, count in (extra_failures or {}).items():
        failures[reason] = failures.get(reason, 0) + count
    protocol: dict[str, Any] = {"scoring_version": bench.scoring_version}
    protocol.update(bench.protocol(records, docs))
    for role in bench.judges:
        desc = judges.get(role.name) or {}
        prefix = bench.protocol_judge_prefix(role)
        if prefix != "judge":
            protocol[prefix] = desc or None
        protocol[f"{prefix}_identity"] = desc.get("identity_hash")
        protocol[f"{prefix}_prompt_version"] = desc.get("prompt_version")
    if bench.judges and "judge_prompt" not in protocol:
        protocol["judge_prompt"] = prompt_label(bench, judges)
    protocol.update(protocol_extra or {})
    protocol["name"] = protocol_name(protocol, judged=bench.judged)
    primary = (
        dict(judges[bench.judges[0].name]) if bench.judges and judges.get(bench.judges[0].name) else None
    )
    return BenchmarkResult(
        benchmark=bench.name,
        tasks=dict(task_versions) if task_versions else bench.task_versions(),
        protocol=protocol,
        metrics=metrics,
        headline=bench.headline,
        n_items=len(records) if n_items is None else n_items,
        n_scored=sum(r.status == "ok" for r in records),
        failures=failures,
        cost=cost_of([j for r in records for j in judgements_of(r)]),
        judge=primary,
        smoke_test=any(bool(d.get("smoke_test")) for d in judges.values()),
        items_file=bench.items_file,
        mean_response_chars=mean_response_chars(records),
        skipped_inputs=dict(skipped_inputs or {}),
    )


def prompt_label(bench: Benchmark[Any], judges: JudgeDescriptions) -> str:
    """Which prompts judged: ``upstream``, ``hardened`` or ``custom`` (``describe_config``'s
    ``prompt_kind``), one word when every judge role agrees, else ``role=kind`` for each role."""
    kinds = {role.name: _kind(judges.get(role.name) or {}) for role in bench.judges}
    if len(set(kinds.values())) == 1:
        return next(iter(kinds.values()))
    return ", ".join(f"{role}={kind}" for role, kind in kinds.items())


# The reply parsers of the bundled hardened templates, for judge descriptions written before
# ``prompt_kind`` was recorded.
_HARDENED_PARSERS = frozenset(
    {"trace_scores", "cfbench_checkpoints", "complexbench_yesno", "complexbench_extract"}
)


def _kind(desc: Mapping[str, Any]) -> str:
    if desc.get("prompt_kind"):
        return str(desc["prompt_kind"])
    parser = str(desc.get("parser") or "")
    if parser.endswith("_upstream"):
        return "upstream"
    return "hardened" if parser in _HARDENED_PARSERS else "unknown"


def protocol_name(protocol: Mapping[str, Any], *, judged: bool) -> str:
    """A result's protocol in a few words, shown per run on the leaderboard: the judge prompt and how
    failed judgements are counted (e.g. ``upstream prompt, upstream failure counting``)."""
    if not judged:
        return "rule-checked"
    prompt = protocol.get("judge_prompt") or "unknown"
    counting = protocol.get("failure_counting") or "unknown"
    return f"{prompt} prompt, {counting} failure counting"
