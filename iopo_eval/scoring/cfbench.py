"""CFBench scoring: 0/1 checkpoint verdicts -> CSR, ISR and PSR exactly as upstream computes them
(protocols.md §3.3), for the full set and the easy and hard halves.

Per item: CSR = mean of the 0/1 scores rounded to 2 decimals; ISR = 1 iff CSR == 1; PSR by the
priority rules in ``item_scores``. Dataset metrics are plain means of the rounded per-item values.
Two sources of verdicts:
- a judge of this run (the default ``cfbench-gpt4o``: upstream's prompt and strict reading; or the hardened
  ``cfbench-gpt4o-hardened``): every judgement that parses is a strict parse; a judgement that still fails
  after the engine's retries is counted by the run's **failure counting** (below);
- files judged with upstream's own script (``iopo-eval score cfbench --judged FILE``): the stored
  ``judge_response`` is read again exactly as upstream reads it (``parse_cfbench_upstream``: checkpoint
  texts compared verbatim), strictly, else by the fallback, counted the same way.

Failure counting (tasks/cfbench/README.md), chosen per run (``--cfbench-counting``, or
``$IOPO_EVAL_CFBENCH_COUNTING`` for a plain ``lm_eval`` run) and recorded on every item and in the
results' protocol:
- ``upstream`` (the default, the paper's): a reply that fails the strict reading in every round is read by
  upstream's fallback, which keeps only the 1s (state "0"), or scores 0 when it keeps nothing (state "-1",
  a failed call included: upstream's reply is then the text "Error"); the item is still counted as a
  judge failure (``failures``), with values;
- ``strict``: such a judgement is a failure and is not scored; a judged file's fallback keeps its zeros.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

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
from iopo_eval.judges.parse_cfbench_upstream import (
    FAILED,
    FALLBACK,
    STRICT,
    after_retries,
    parse_upstream_reply,
)
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import ItemRecord, MetricSpec

BENCHMARK = "cfbench"
TASK = "cfbench"
SCORING_VERSION = "cfbench-scoring-2"
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

# ---------------------------------------------------------------- failure counting

Counting = Literal["upstream", "strict"]
COUNTINGS: tuple[Counting, ...] = ("upstream", "strict")  # the first is the default
COUNTING_ENV = "IOPO_EVAL_CFBENCH_COUNTING"
COUNTING_PROTOCOL: dict[str, dict[str, str]] = {
    "upstream": {
        "failure_counting": "upstream",
        "fallback_zeros": "dropped",
        "failed_judgements": "read by upstream's fallback after the retries (only its 1s kept); "
        "nothing readable scored 0, as upstream does; counted in failures too",
    },
    "strict": {
        "failure_counting": "strict",
        "fallback_zeros": "kept",
        "failed_judgements": "counted as failures, not scored",
    },
}


class CountingError(ValueError):
    """An unknown failure counting (the message names where it came from)."""


def check_counting(value: str, where: str) -> Counting:
    if value not in COUNTINGS:
        raise CountingError(
            f"{where}: CFBench failure counting must be one of {list(COUNTINGS)}, got {value!r}"
        )
    return value


def run_counting() -> Counting:
    """The failure counting of this run: ``$IOPO_EVAL_CFBENCH_COUNTING`` (set by ``--cfbench-counting``),
    else upstream's."""
    value = os.environ.get(COUNTING_ENV)
    return check_counting(value, f"${COUNTING_ENV}") if value else COUNTINGS[0]


def counting_flags(counting: Counting) -> tuple[bool, bool]:
    """(keep_zeros, failed_as_zero) of a failure counting."""
    return (False, True) if counting == "upstream" else (True, False)


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
    """One request carrying the fields of both prompts: upstream's (``cfbench`` spec: the row's ``prompt``,
    its ``gold`` as it is, even when empty, and the checkpoint texts as ``criteria``) and the hardened
    template's (``instruction``, ``reference`` with a stand-in when there is no gold answer, and the
    numbered ``checkpoints``); both show the instruction, reference, response and checkpoints in
    upstream's order."""
    texts = [c.text for c in item.criteria]
    return JudgeRequest(
        key=item.id,
        fields={
            "prompt": item.prompt,
            "gold": item.gold,
            "criteria": list(texts),
            "instruction": item.prompt,
            "reference": item.gold if item.has_gold else NO_REFERENCE,
            "response": response,
            "checkpoints": list(texts),
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
    item: CFBenchItem,
    response: str,
    outcome: JudgeOutcome,
    raw_response: str | None = None,
    counting: Counting = "upstream",
) -> ItemRecord:
    """The record of an item judged in this run: a parsed judgement is always a strict parse; one that
    failed after the retries is counted by ``counting`` (module docstring)."""
    scores = effective_scores(outcome, len(item.criteria))
    state: str | None = STRICT if scores is not None else None
    extra: dict[str, Any] = {"checkpoints": _checkpoint_rows(item), "counting": counting}
    if scores is None and outcome.status == "failed" and counting == "upstream":
        # Upstream's reading after its last round: the fallback's 1s, or [0] when nothing is readable.
        fallback = after_retries(outcome.raw, keep_zeros=False)
        scores, state = fallback.scores, fallback.state
    if state is not None:
        extra["parse_state"] = state
    if outcome.error_kind == "empty_response":
        extra["empty_response"] = True
    if raw_response is not None and raw_response != response:
        extra["raw_response"] = raw_response
    return ItemRecord(
        benchmark=BENCHMARK,
        task=TASK,
        item_id=item.id,
        status=status_of(outcome, outcome.status == "ok" or outcome.error_kind == "empty_response"),
        values=item_values(item, scores, state) if scores is not None and state is not None else {},
        groups=_groups(item),
        response=response,
        judge=outcome.to_json(),
        extra=extra,
    )


# ---------------------------------------------------------------- files judged with upstream's script


def upstream_protocol(extra: dict[str, Any]) -> dict[str, Any]:
    failed_as_zero = bool(extra.get("failed_as_zero"))
    zeros = extra.get("fallback_zeros", "kept")
    counting = {("dropped", True): "upstream", ("kept", False): "strict"}.get(
        (zeros, failed_as_zero), "custom"
    )
    return {
        "judge_source": "upstream judged file (judge_response parsed with upstream's rules)",
        "judge_prompt": "upstream",  # the file was judged by upstream's script, with its own prompt
        "failure_counting": counting,
        "fallback_zeros": zeros,
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

    A reply that no rule can read (upstream's state "-1") is a judge failure, counted as one; with
    ``failed_as_zero`` it is also scored 0 on every metric as upstream does (as ``item_record`` does for a
    run's own failures under upstream counting)."""
    parsed = parse_upstream_reply(judge_response, [c.text for c in item.criteria], keep_zeros=keep_zeros)
    failed = parsed.state == FAILED
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
        values={} if failed and not failed_as_zero else item_values(item, parsed.scores, parsed.state),
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
    lm_eval_metrics = tuple(spec.name for spec in METRICS)
    in_paper = True

    def documents(self, mirror: str | None = None) -> dict[str, tuple[str, Doc]]:
        return {item.id: (TASK, item.to_doc()) for item in load_cfbench(mirror=mirror)}

    def parse(self, doc: Doc) -> CFBenchItem:
        return parse_row(doc, f"cfbench doc {doc.get('idx')!r}")

    def requests(self, item: CFBenchItem, response: str) -> list[JudgeRequest]:
        return [judge_request(item, response)]

    def record(self, item: CFBenchItem, judged: Judged) -> ItemRecord:
        return item_record(item, judged.response, judged.outcomes[0], judged.raw_response, run_counting())

    def rescore(self, item: CFBenchItem, stored: ItemRecord) -> ItemRecord:
        """Items judged by upstream's script are read again from their stored ``judge_response``."""
        if stored.extra.get("judge_format") != "upstream":
            # The counting the run chose travels with each item; an item of an older run has none and
            # is counted as this run would count it.
            counting = stored.extra.get("counting")
            judged = Judged.stored(stored)
            return item_record(
                item,
                judged.response,
                judged.outcomes[0],
                judged.raw_response,
                check_counting(counting, f"cfbench item {item.id}") if counting else run_counting(),
            )
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
        countings = {str(r.extra["counting"]) for r in records if "counting" in r.extra}
        if len(countings) > 1:
            raise CountingError(f"CFBench items counted in different ways in one result: {sorted(countings)}")
        counting = check_counting(countings.pop(), "cfbench items") if countings else run_counting()
        out = {
            "data_sha256": get_file(DATA_KEY).sha256,
            "rounding": "per-item CSR and secondary mean rounded to 2 decimals (Python round), then plain means",
            **COUNTING_PROTOCOL[counting],
            # The paper's numbers were counted upstream's way; the leaderboard marks other runs.
            "counting_as_paper": counting == "upstream",
        }
        upstream = [r for r in records if r.extra.get("judge_format") == "upstream"]
        if upstream:
            out.update(upstream_protocol(upstream[0].extra))
            out["counting_as_paper"] = out["failure_counting"] == "upstream"
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
