"""A batch-mode judge stage as its own process, for tests and benchmarks that kill it and resume.

It builds judge requests (all TRACE rows from the data mirror with a deterministic synthetic response, or
N synthetic items), judges them in batch mode (``batch_standalone.judge_requests_in_batches``) into a
SQLite cache through the files + batches API at ``--base-url``, writes one line per item to ``--out`` and
prints the run's report as one JSON line. It imports no lm-eval, so it starts fast.

    python -m iopo_eval.testing.batch_driver --base-url URL --cache C --out OUT (--trace | --synthetic N)
        [--poll 0.05] [--max-requests N] [--fallback batch|sync]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from iopo_eval.judges import JudgeCache, JudgeRequest, load_judge_config
from iopo_eval.judges.batch import BatchSettings
from iopo_eval.judges.batch_standalone import judge_requests_in_batches, same_items

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
    config = load_judge_config(args.config).with_overrides(base_url=args.base_url, api_key_env=KEY_ENV)
    requests = trace_requests() if args.trace else synthetic_requests(args.synthetic)
    settings = BatchSettings(
        poll_interval_s=args.poll, max_requests=args.max_requests, fallback=args.fallback
    )
    with JudgeCache(args.cache) as cache:
        results, report = asyncio.run(judge_requests_in_batches(requests, config, cache, settings=settings))
    with args.out.open("w", encoding="utf-8") as fh:
        for key, result in results.items():
            fh.write(json.dumps({"key": key, **same_items(result)}, ensure_ascii=False) + "\n")
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
