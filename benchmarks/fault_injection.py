"""The judge stage against a faulty endpoint: all 1,042 TRACE rows (real rows from the data mirror,
synthetic responses) judged through the real engine, client and SQLite cache, against the loopback
server injecting faults at each rate asked for (429 with Retry-After, 500, 503, timeouts, cut and
truncated bodies, HTML bodies, replies with missing, extra or out-of-range scores, prose, empty).

Printed per fault rate: faults injected, HTTP calls per item, wall time, items judged and failed (by
error kind) after the retries, items whose judgement differs from the fault-free run (must be 0), items
scored although their judgement failed (must be 0), and after resuming with the same cache, the items
still failed and the extra calls the resume made.

    python benchmarks/fault_injection.py [--rates 0.1,0.3,0.5] [--items 1042] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from iopo_eval.data.trace import load_trace
from iopo_eval.judges import JudgeCache, JudgeOutcome, judge_batch, resolve_judge_config
from iopo_eval.scoring.trace import item_record, judge_request
from iopo_eval.testing.faults import RandomFaults
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores

KEY_ENV = "IOPO_BENCH_JUDGE_KEY"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", default="0.1,0.3,0.5", help="fault rates to measure (comma-separated)")
    p.add_argument("--items", type=int, default=1042)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--max-retries", type=int, default=4, help="the bundled judge's default is 4")
    p.add_argument("--timeout", type=float, default=0.75, help="client timeout (s); timeout faults sleep 2x")
    p.add_argument("--seed", type=int, default=6)
    args = p.parse_args(argv)
    os.environ.setdefault(KEY_ENV, "sk-benchmark-not-secret")

    items = load_trace()[: args.items]
    requests = [judge_request(i, f"Answer to item {i.id}: {i.description[:80]}") for i in items]

    def judge(server: OpenAIServer, cache: JudgeCache) -> tuple[list[JudgeOutcome], float, int]:
        config = resolve_judge_config("trace-gpt4o-hardened", base_url=server.base_url).with_overrides(
            api_key_env=KEY_ENV,
            timeout_s=args.timeout,
            backoff_initial_s=0.01,
            backoff_max_s=0.05,
            max_retries=args.max_retries,
        )
        calls = server.calls
        started = time.perf_counter()
        run = judge_batch(
            requests, config.with_overrides(concurrency=args.concurrency), cache, progress=False
        )
        return run.outcomes, time.perf_counter() - started, server.calls - calls

    with tempfile.TemporaryDirectory() as tmp:
        with OpenAIServer(hashed_scores) as server, JudgeCache(Path(tmp) / "clean.sqlite") as cache:
            clean, clean_s, _ = judge(server, cache)
        reference = {o.key: (o.scores, o.overall) for o in clean}
        print(
            f"{len(items)} TRACE items, concurrency {args.concurrency}, max_retries {args.max_retries}, "
            f"timeout {args.timeout}s; fault-free: {clean_s:.1f} s, {sum(o.status == 'ok' for o in clean)} judged"
        )
        print(
            f"{'rate':>5} {'faults':>7} {'calls/item':>10} {'wall s':>7} {'judged':>7} {'failed':>7} "
            f"{'differ':>6} {'scored-fail':>11} {'resume: failed':>14} {'calls':>6}  failure kinds"
        )
        for rate in (float(r) for r in args.rates.split(",")):
            faults = RandomFaults(rate, seed=args.seed, sleep_s=2 * args.timeout)
            with (
                OpenAIServer(hashed_scores, faults=faults) as server,
                JudgeCache(Path(tmp) / f"faulty-{rate}.sqlite") as cache,
            ):
                outcomes, wall, calls = judge(server, cache)
                failed = [o for o in outcomes if o.status != "ok"]
                differ = sum(
                    1 for o in outcomes if o.status == "ok" and (o.scores, o.overall) != reference[o.key]
                )
                scored_failures = sum(
                    1
                    for item, o in zip(items, outcomes, strict=True)
                    if o.status != "ok" and item_record(item, "x", o).values
                )
                kinds = Counter(o.error_kind for o in failed)
                resumed, _, resume_calls = judge(server, cache)
                still = sum(o.status != "ok" for o in resumed)
                differ += sum(
                    1 for o in resumed if o.status == "ok" and (o.scores, o.overall) != reference[o.key]
                )
            print(
                f"{rate:>5.2f} {faults.faulted:>7} {calls / len(items):>10.2f} {wall:>7.1f} "
                f"{len(items) - len(failed):>7} {len(failed):>7} {differ:>6} {scored_failures:>11} "
                f"{still:>14} {resume_calls:>6}  {dict(kinds) or '-'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
