"""A batch-mode judge stage as its own process, for tests and benchmarks that kill it and resume.

It builds judge requests (all TRACE rows from the data mirror with a deterministic synthetic response, or
N synthetic items), judges them through the engine in batch mode (``judge_batch`` with ``mode: batch``)
into a SQLite cache through the files + batches API at ``--base-url``, writes one line per item to
``--out`` and prints the run's batch report as one JSON line. It imports no lm-eval, so it starts fast.

    python -m iopo_eval.testing.batch_driver --base-url URL --cache C --out OUT (--trace | --synthetic N)
        [--poll 0.05] [--max-requests N] [--fallback batch|sync]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from iopo_eval.judges import JudgeCache, JudgeOutcome, JudgeRequest, judge_batch, load_judge_config
from iopo_eval.judges.batch import BatchReport
from iopo_eval.judges.cache import CachedJudgement
from iopo_eval.judges.settings import BatchSettings

KEY_ENV = "IOPO_BATCH_DRIVER_KEY"


def trace_requests() -> list[JudgeRequest]:
    from iopo_eval.data.trace import load_trace
    from iopo_eval.scoring.trace import judge_request

    return [
        judge_request(item, f"Answer to item {item.id}: {item.description[:60]} (synthetic)")
        for item in load_trace()
    ]


def synthetic_requests(n: int) -> list[JudgeRequest]:
    return [
        JudgeRequest(
            key=f"item-{i}",
            fields={
                "query": f"Write note number {i}.",
                "input": "(none)",
                "constraints": [f"Constraint {j} of note {i}" for j in range(1, 2 + i % 4)],
                "response": f"Note {i}: a short answer.",
            },
            n_expected=1 + i % 4,
        )
        for i in range(n)
    ]


def same_items(result: JudgeOutcome | CachedJudgement) -> dict[str, Any]:
    """What must match between batch and synchronous mode for one item: the reply, its parse, its tokens
    (a cache record's, or an outcome's)."""
    if isinstance(result, CachedJudgement):
        return {
            "status": "ok",
            "raw": result.raw,
            "scores": list(result.scores),
            "reasons": result.reasons,
            "overall": result.overall,
            "usage": [result.prompt_tokens, result.completion_tokens],
        }
    return {
        "status": result.status,
        "raw": result.raw,
        "scores": result.scores,
        "reasons": result.reasons,
        "overall": result.overall,
        "usage": [result.usage.prompt_tokens, result.usage.completion_tokens],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--trace", action="store_true", help="all TRACE rows from the data mirror")
    source.add_argument("--synthetic", type=int, metavar="N")
    p.add_argument("--config", default="trace-gpt4o-hardened")
    p.add_argument("--poll", type=float, default=0.05, help="seconds between status checks")
    p.add_argument("--max-requests", type=int, default=50_000)
    p.add_argument("--fallback", choices=("batch", "sync"), default="batch")
    args = p.parse_args(argv)
    os.environ.setdefault(KEY_ENV, "unused-loopback-key")
    settings = BatchSettings(
        poll_interval_s=args.poll, max_requests=args.max_requests, fallback=args.fallback
    )
    config = load_judge_config(args.config).with_overrides(
        base_url=args.base_url, api_key_env=KEY_ENV, mode="batch", batch=settings
    )
    requests = trace_requests() if args.trace else synthetic_requests(args.synthetic)
    with JudgeCache(args.cache) as cache:
        run = judge_batch(requests, config, cache, progress=False)
    with args.out.open("w", encoding="utf-8") as fh:
        for outcome in run.outcomes:
            fh.write(json.dumps({"key": outcome.key, **same_items(outcome)}, ensure_ascii=False) + "\n")
    report = run.batch or BatchReport()  # None: every item was in the cache
    summary = {
        "submitted": report.submitted,
        "reattached": report.reattached,
        "lines_submitted": report.lines_submitted,
        "api_calls": dict(report.api_calls),
        "answered": report.answered,
        "failed": report.failed,
        "cached": report.cached,
        "elapsed_s": report.elapsed_s,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
