"""Batch-mode judging of 3,200 requests (about one checkpoint on the paper's four benchmarks) through the
engine (``judge_batch`` with a ``mode: batch`` judge config) and the loopback files + batches API.

What it measures, in one run:
- the time from submission to all answers stored in the cache, with the times (from the start) at which
  every batch was created (JSONL written, uploaded, created) and completed (the server's work: instant
  here, up to 24 h at OpenAI); the rest is collecting (downloading the output files, parsing every line
  with the judge's parser, committing to SQLite). Once as one batch (OpenAI's limits), once split into
  batches of 1,000 requests;
- a resume: a batch-mode stage in a process of its own is SIGKILLed while it polls (its batches held
  mid-way by the server), then the same requests are judged again here. It prints the API calls the resume
  makes and the request lines it submits again (goal: 0).

The server runs on threads of this process, so wall times include its work. Requests are synthetic
TRACE-like items (``judge_throughput.synthetic_items``); no data file is read.

    python benchmarks/batch_judge.py [--items 3200] [--poll 0.1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from judge_throughput import synthetic_items

from iopo_eval.judges import JudgeCache, JudgeConfig, judge_batch, load_judge_config
from iopo_eval.judges.batch import BatchReport
from iopo_eval.judges.settings import BatchSettings
from iopo_eval.testing.batch_driver import KEY_ENV, synthetic_requests
from iopo_eval.testing.batch_server import BatchServer
from iopo_eval.testing.replies import trace_scores


def batch_config(server: BatchServer, settings: BatchSettings) -> JudgeConfig:
    return load_judge_config("trace-gpt4o-hardened").with_overrides(
        base_url=server.base_url, api_key_env=KEY_ENV, mode="batch", batch=settings
    )


def fresh_run(server: BatchServer, items: list, poll: float, max_requests: int, cache: Path) -> dict:
    config = batch_config(server, BatchSettings(poll_interval_s=poll, max_requests=max_requests))
    before = set(server.batch_ids())
    with JudgeCache(cache) as store:
        t0 = time.monotonic()
        run = judge_batch(items, config, store, progress=False)
        t_end = time.monotonic()
        stored = len(store)
    report = run.batch or BatchReport()
    ids = [b for b in server.batch_ids() if b not in before]
    lines = [server.timeline(b) for b in ids]
    created = max(t["validating"] for t in lines)
    completed = max(t["completed"] for t in lines)
    ok = run.judged
    return {
        "batches": len(ids),
        "lines": report.lines_submitted,
        "bytes": sum(len(server.file_bytes(server.batch(b)["input_file_id"])) for b in ids),
        "created_s": created - t0,
        "completed_s": completed - t0,
        "total_s": t_end - t0,
        "calls": sum(report.api_calls.values()),
        "ok": ok,
        "stored": stored,
    }


def resume_after_kill(server: BatchServer, n: int, poll: float, cache: Path, out: Path) -> dict:
    cmd = [sys.executable, "-m", "iopo_eval.testing.batch_driver", "--base-url", server.base_url]
    cmd += ["--cache", str(cache), "--out", str(out), "--poll", str(poll), "--synthetic", str(n)]
    before_ids = set(server.batch_ids())
    server.hold(after=n // 3)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server.wait_for(lambda: len(set(server.batch_ids()) - before_ids) == 1, timeout=300)
    retrieves = server.routes["batches.retrieve"]
    server.wait_for(lambda: server.routes["batches.retrieve"] >= retrieves + 3, timeout=120)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    (batch_id,) = set(server.batch_ids()) - before_ids
    done_at_kill = server.batch(batch_id)["request_counts"]["completed"]
    server.release()
    submitted_before = sum(server.submitted.values())
    config = batch_config(server, BatchSettings(poll_interval_s=poll))
    with JudgeCache(cache) as store:
        t0 = time.monotonic()
        run = judge_batch(synthetic_requests(n), config, store, progress=False)
        wall = time.monotonic() - t0
        stored = len(store)
    report = run.batch or BatchReport()
    return {
        "done_at_kill": done_at_kill,
        "api_calls": dict(report.api_calls),
        "lines_resubmitted": sum(server.submitted.values()) - submitted_before,
        "reattached": len(report.reattached),
        "answered": report.answered,
        "stored": stored,
        "wall_s": wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3200)
    parser.add_argument("--poll", type=float, default=0.1, help="seconds between status checks")
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "unused-loopback-key")
    load = os.getloadavg()
    items = synthetic_items(args.items)
    rows = []
    with tempfile.TemporaryDirectory(prefix="batch-bench-") as tmp, BatchServer(trace_scores(10)) as server:
        for max_requests in (50_000, 1_000):
            rows.append(
                (
                    max_requests,
                    fresh_run(server, items, args.poll, max_requests, Path(tmp) / f"{max_requests}.sqlite"),
                )
            )
        resume = resume_after_kill(
            server, args.items, args.poll, Path(tmp) / "resume.sqlite", Path(tmp) / "out.jsonl"
        )

    print(
        f"{args.items} synthetic TRACE-like requests; loopback batch server (answers at once); poll every {args.poll} s"
    )
    print(f"{os.cpu_count()} CPUs; load average at start {load[0]:.1f}")
    print("seconds from the start until all batches were created, all completed (server), all answers stored")
    print(
        f"{'per batch':>10} {'batches':>8} {'lines':>6} {'MB':>6} {'created':>8} {'completed':>10} "
        f"{'stored':>7} {'API calls':>10} {'answers':>8}"
    )
    for max_requests, r in rows:
        print(
            f"{max_requests:>10} {r['batches']:>8} {r['lines']:>6} {r['bytes'] / 1e6:>6.1f} {r['created_s']:>8.2f} "
            f"{r['completed_s']:>10.2f} {r['total_s']:>7.2f} {r['calls']:>10} {r['stored']:>8}"
        )
    print(
        f"resume after SIGKILL while polling ({resume['done_at_kill']} of {args.items} answered at the kill): "
        f"{resume['lines_resubmitted']} request lines submitted again (goal 0): "
        f"{'PASS' if resume['lines_resubmitted'] == 0 else 'MISS'}"
    )
    print(
        f"  the resume re-attached to {resume['reattached']} batch, made {json.dumps(resume['api_calls'], sort_keys=True)}, "
        f"stored {resume['stored']} answers ({resume['answered']} collected) in {resume['wall_s']:.2f} s"
    )
    ok = all(r["stored"] == args.items for _, r in rows) and resume["stored"] == args.items
    return 0 if ok and resume["lines_resubmitted"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
