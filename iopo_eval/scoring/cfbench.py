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

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iopo_eval.data.cfbench import CFBenchItem, load_cfbench, parse_row
from iopo_eval.data.rows import read_json_list
from iopo_eval.data.store import DataError, sha256_of
from iopo_eval.judges.parse_cfbench_upstream import FAILED, FALLBACK, STRICT, parse_upstream_reply
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import (
    BenchmarkResult,
    ItemRecord,
    MetricSpec,
    RunResults,
    compute_metrics,
    cost_of,
    count_failures,
    mean_response_chars,
    new_run_id,
    write_single_run,
)
from iopo_eval.scoring.judged import JudgedBenchmark, effective_scores, register_benchmark

BENCHMARK = "cfbench"
TASK = "cfbench"
TASK_VERSION = 1.0
ITEMS_FILE = "cfbench.items.jsonl"
SCORING_VERSION = "cfbench-scoring-1"
DEFAULT_JUDGE = "cfbench-gpt4o"
NO_REFERENCE = "（无参考答案）"  # the template tells the judge to ignore a reference block saying this
PASS_THRESHOLD = 0.8  # upstream's "> 0.8" for CSR and for the primary/secondary blend

METRICS = [
    MetricSpec("csr", "CSR", headline=True),
    MetricSpec("isr", "ISR", headline=True),
    MetricSpec("psr", "PSR", headline=True),
    *(
        MetricSpec(f"{split}/{m}", f"{m.upper()} ({split})")
        for split in ("easy", "hard")
        for m in ("csr", "isr", "psr")
    ),
]
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
        status="ok" if ok else ("not_judged" if outcome.status == "skipped" else "judge_failed"),
        values=item_values(item, scores, STRICT) if scores is not None else {},
        groups=_groups(item),
        response=response,
        judge=outcome.to_json(),
        extra=extra,
    )


def _requests_from_doc(doc: dict[str, Any], response: str) -> list[JudgeRequest]:
    return [judge_request(parse_row(doc, f"cfbench doc {doc.get('idx')!r}"), response)]


register_benchmark(JudgedBenchmark(name=BENCHMARK, default_judge=DEFAULT_JUDGE, requests=_requests_from_doc))


# ---------------------------------------------------------------- results


def protocol(judge: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    from iopo_eval.data.registry import get_file

    return {
        "scoring_version": SCORING_VERSION,
        "data_sha256": get_file("cfbench/data").sha256,
        "judge_identity": (judge or {}).get("identity_hash"),
        "judge_prompt_version": (judge or {}).get("prompt_version"),
        "rounding": "per-item CSR and secondary mean rounded to 2 decimals (Python round), then plain means",
        "fallback_zeros": "kept",
        "failed_judgements": "counted as failures, not scored",
        **extra,
    }


def benchmark_result(
    records: list[ItemRecord],
    *,
    task_versions: dict[str, Any] | None,
    judge: dict[str, Any] | None,
    protocol_extra: dict[str, Any] | None = None,
    n_items: int | None = None,
    extra_failures: dict[str, int] | None = None,
    bootstrap_iters: int = 1000,
) -> BenchmarkResult:
    failures = count_failures(records)
    for reason, count in (extra_failures or {}).items():
        failures[reason] = failures.get(reason, 0) + count
    return BenchmarkResult(
        benchmark=BENCHMARK,
        tasks=dict(task_versions or {TASK: TASK_VERSION}),
        protocol=protocol(judge, **(protocol_extra or {})),
        metrics=compute_metrics(records, METRICS, BREAKDOWN_PREFIXES, bootstrap_iters=bootstrap_iters),
        headline=[s.name for s in METRICS if s.headline],
        n_items=len(records) if n_items is None else n_items,
        n_scored=sum(r.status == "ok" for r in records),
        failures=failures,
        cost=cost_of([r.judge or {} for r in records]),
        judge=judge,
        smoke_test=bool((judge or {}).get("smoke_test")),
        items_file=ITEMS_FILE,
        mean_response_chars=mean_response_chars(records),
    )


def result_for(
    records: list[ItemRecord], task_versions: dict[str, Any], judge: dict[str, Any] | None
) -> BenchmarkResult:
    upstream = [r for r in records if r.extra.get("judge_format") == "upstream"]
    extra = _upstream_protocol(upstream[0].extra) if upstream else None
    return benchmark_result(records, task_versions=task_versions, judge=judge, protocol_extra=extra)


def from_samples(
    samples: dict[str, list[dict[str, Any]]],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None,
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Item records and results from lm-eval's logged samples of the cfbench task."""
    records = []
    for sample in samples.get(TASK, []):
        item = parse_row(sample["doc"], f"{TASK} sample {sample.get('doc_id')}")
        judged = sample["filtered_resps"][0]
        outcome = JudgeOutcome.from_json(judged["judgements"][0])
        judge = judge or judged.get("judge")
        records.append(item_record(item, judged["response"], outcome, judged.get("raw_response")))
    return records, result_for(records, task_versions, judge)


def docs_by_id(mirror: str | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    return {item.id: (TASK, item.to_doc()) for item in load_cfbench(mirror=mirror)}


def rescore(
    records: list[ItemRecord],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None,
    mirror: str | None = None,
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Recompute every value from the stored judgements (no judge calls), with the current code."""
    items = {item.id: item for item in load_cfbench(mirror=mirror)}
    fresh = []
    for rec in records:
        if rec.item_id not in items:
            raise KeyError(f"cfbench item {rec.item_id!r} is not in the CFBench data")
        item = items[rec.item_id]
        if rec.extra.get("judge_format") == "upstream":
            fresh.append(
                upstream_record(
                    item,
                    rec.response,
                    (rec.judge or {}).get("raw") or "",
                    keep_zeros=rec.extra.get("fallback_zeros", "kept") == "kept",
                    failed_as_zero=bool(rec.extra.get("failed_as_zero")),
                    stored={k: rec.extra[k] for k in ("judge_score", "judge_parsing") if k in rec.extra},
                )
            )
        else:
            outcome = JudgeOutcome.from_json(rec.judge or {"key": rec.item_id, "status": "failed"})
            fresh.append(item_record(item, rec.response, outcome, rec.extra.get("raw_response")))
    return fresh, result_for(fresh, task_versions, judge)


# ---------------------------------------------------------------- files judged with upstream's script


class JudgedFileError(ValueError):
    """A judged file is malformed or does not match the CFBench data. The message names the row."""


def _upstream_protocol(extra: dict[str, Any]) -> dict[str, Any]:
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


def read_judged_file(path: Path) -> list[tuple[CFBenchItem, str, str, dict[str, Any]]]:
    """Rows of upstream's judged format: the data row plus ``response`` and ``judge_response`` (and
    optionally upstream's own ``judge_score`` / ``judge_parsing``, kept for comparison)."""
    if not path.is_file():
        raise JudgedFileError(f"{path}: judged file not found")
    try:
        rows = read_json_list(path)
    except DataError as exc:
        raise JudgedFileError(str(exc)) from exc
    out = []
    seen: dict[int, int] = {}
    for i, row in enumerate(rows):
        where = f"{path} row {i}"
        try:
            item = parse_row(row, where)
        except DataError as exc:
            raise JudgedFileError(str(exc)) from exc
        for field in ("response", "judge_response"):
            if not isinstance(row.get(field), str):
                raise JudgedFileError(f"{where} (idx {item.idx}): needs a string field {field!r}")
        if item.idx in seen:
            raise JudgedFileError(f"{where}: second row for idx {item.idx} (first at row {seen[item.idx]})")
        seen[item.idx] = i
        stored = {k: row[k] for k in ("judge_score", "judge_parsing") if k in row}
        out.append((item, row["response"], row["judge_response"], stored))
    if not out:
        raise JudgedFileError(f"{path}: no rows")
    return out


def _check_against_data(
    path: Path, rows: list[tuple[CFBenchItem, str, str, dict[str, Any]]], data: list[CFBenchItem]
) -> None:
    by_idx = {item.idx: item for item in data}
    for i, (item, *_rest) in enumerate(rows):
        ref = by_idx.get(item.idx)
        if ref is None:
            raise JudgedFileError(f"{path} row {i}: idx {item.idx} is not in the CFBench data")
        if item.prompt != ref.prompt or item.criteria != ref.criteria:
            raise JudgedFileError(
                f"{path} row {i} (idx {item.idx}): prompt or criteria differ from the pinned CFBench data "
                "(a different version of the benchmark?)"
            )


def score_judged_file(
    path: Path,
    out_dir: Path,
    mirror: str | None = None,
    *,
    keep_zeros: bool = True,
    failed_as_zero: bool = False,
    allow_partial: bool = False,
    bootstrap_iters: int = 1000,
) -> tuple[RunResults, list[ItemRecord]]:
    """Score a file judged by upstream's script, with no judge calls; write results.json and the items
    JSONL under ``out_dir``. Every CFBench item must be present unless ``allow_partial``."""
    rows = read_judged_file(path)
    data = load_cfbench(mirror=mirror)
    _check_against_data(path, rows, data)
    missing = len(data) - len(rows)
    if missing and not allow_partial:
        have = {item.idx for item, *_ in rows}
        first = [item.idx for item in data if item.idx not in have][:5]
        raise JudgedFileError(
            f"{path}: {missing} of {len(data)} CFBench items are missing (first idx {first}); "
            "pass --allow-partial to score the rest"
        )
    rows.sort(key=lambda row: row[0].idx)
    records = [
        upstream_record(
            item,
            response,
            judge_response,
            keep_zeros=keep_zeros,
            failed_as_zero=failed_as_zero,
            stored=stored,
        )
        for item, response, judge_response, stored in rows
    ]
    result = benchmark_result(
        records,
        task_versions=None,
        judge=None,
        protocol_extra=_upstream_protocol(records[0].extra),
        n_items=len(records) + missing,
        extra_failures={"no_response": missing} if missing else None,
        bootstrap_iters=bootstrap_iters,
    )
    model = {
        "backend": "judged-file",
        "name": path.stem,
        "judged_file": str(path),
        "judged_sha256": sha256_of(path),
    }
    command = f"iopo-eval score cfbench --judged {path}"
    run = write_single_run(out_dir, command=command, model=model, result=result, records=records)
    return run, records


def parse_state_counts(records: Sequence[ItemRecord]) -> dict[str, int]:
    counts = {STRICT: 0, FALLBACK: 0, FAILED: 0}
    for rec in records:
        state = rec.extra.get("parse_state")
        if state in counts:
            counts[state] += 1
    return counts


def register_score_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """``iopo-eval score cfbench``: added by iopo_eval.commands.score to its sub-command parsers."""
    parser = subparsers.add_parser(
        "cfbench",
        help="score a CFBench file judged by upstream's evaluate script (no judge calls)",
        description=(
            "Recompute CSR/ISR/PSR (full, easy, hard) from a JSON list of CFBench rows with 'response' and "
            "'judge_response', reading each judge_response with upstream's strict and fallback rules."
        ),
    )
    parser.add_argument(
        "--judged", type=Path, required=True, metavar="FILE", help="upstream judged JSON file"
    )
    parser.add_argument(
        "--output", "-o", type=Path, metavar="DIR", help="run folder to write (default: runs/<run id>)"
    )
    parser.add_argument(
        "--data-mirror", metavar="DIR", help="offline data mirror (default: $IOPO_EVAL_DATA_MIRROR)"
    )
    parser.add_argument(
        "--allow-partial", action="store_true", help="score a file that covers only some items"
    )
    parser.add_argument(
        "--drop-fallback-zeros",
        action="store_true",
        help="reproduce upstream's fallback bug that drops every 0 score (for comparison only)",
    )
    parser.add_argument(
        "--failed-as-zero",
        action="store_true",
        help="score unreadable judge replies 0 on every metric as upstream does (default: count them as failures)",
    )
    parser.set_defaults(func=_run_score_command)
    return parser


def _run_score_command(args: argparse.Namespace) -> int:
    out_dir = args.output or Path("runs") / new_run_id()
    try:
        run, records = score_judged_file(
            args.judged,
            out_dir,
            args.data_mirror,
            keep_zeros=not args.drop_fallback_zeros,
            failed_as_zero=args.failed_as_zero,
            allow_partial=args.allow_partial,
        )
    except (DataError, JudgedFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run.benchmarks[BENCHMARK]
    for spec in METRICS:
        metric = result.metrics[spec.name]
        print(
            f"{metric.label:12s} {metric.value:6.2f}  [{metric.ci_low:.2f}, {metric.ci_high:.2f}]  n={metric.n}"
        )
    states = parse_state_counts(records)
    print(f"parse states: strict {states[STRICT]}, fallback {states[FALLBACK]}, unreadable {states[FAILED]}")
    differ = sum(1 for r in records if r.extra.get("matches_stored") is False)
    if any("matches_stored" in r.extra for r in records):
        print(f"items whose stored judge_score/judge_parsing differ from this reading: {differ}")
    print(json.dumps({"failures": result.failures}, ensure_ascii=False))
    print(f"wrote {out_dir / 'results.json'} and {out_dir / ITEMS_FILE}")
    return 0
