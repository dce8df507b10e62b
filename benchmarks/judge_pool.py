"""One judge pool per run vs. one task after another: trace_ifs + trace_ifm + cfbench (all 2,042 documents,
from the data mirror) judged against a loopback OpenAI-compatible server that answers after 100 ms.

What it measures, in one run, each way with a fresh cache:
- one after another: each task's documents judged by its own call (``judging.judge_documents``), which
  is what lm-eval's filters do without a pool (a plain ``lm_eval`` run);
- one pool: the three tasks in one call (``judging.judge_documents_many``), which is what ``iopo-eval
  run`` does (``judge_pool.RunJudgePool``): the TRACE judge (both TRACE tasks) and the CFBench judge work
  side by side, each with its own ``concurrency`` (16 by default);
and prints both wall times, their ratio, and the ideal ratio the task sizes allow at that concurrency.
Both ways give the same item records (checked). The responses are synthetic; the judges are the
bundled ``trace-gpt4o-hardened`` and ``cfbench-gpt4o-hardened`` configs (their JSON replies are scripted) aimed at the loopback server.

    IOPO_EVAL_DATA_MIRROR=/path python benchmarks/judge_pool.py [--latency 0.1] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from judge_throughput import start_server

from iopo_eval.benchmarks import BENCHMARKS
from iopo_eval.judging import JudgeSession, judge_documents, judge_documents_many

TASKS = (("trace", "trace_ifs"), ("trace", "trace_ifm"), ("cfbench", "cfbench"))
JUDGES = "trace=trace-gpt4o-hardened,cfbench=cfbench-gpt4o-hardened"


def task_documents(limit: int | None) -> list[tuple[Any, list[dict[str, Any]], list[str]]]:
    entries = []
    for bench_name, task in TASKS:
        bench = BENCHMARKS[bench_name]
        docs = [doc for t, doc in bench.documents().values() if t == task][:limit]
        responses = [f"A synthetic answer to document {doc.get('id')} of {task}." for doc in docs]
        entries.append((bench, docs, responses))
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=16, help="each judge config's calls in flight")
    parser.add_argument("--limit", type=int, help="at most N documents per task")
    args = parser.parse_args()
    os.environ["OPENAI_API_KEY"] = "unused-loopback-key"
    entries = task_documents(args.limit)
    load = os.getloadavg()
    proc, base_url = start_server(args.latency, "--reply", "cfbench_or_trace")
    walls: dict[str, float] = {}
    records: dict[str, list[Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="judge-pool-") as tmp:
            for way in ("one after another", "one pool"):
                session = JudgeSession(
                    config_name=JUDGES,
                    base_url=base_url,
                    cache_path=Path(tmp) / f"{way.replace(' ', '-')}.sqlite",
                    concurrency=args.concurrency,
                    allow_embedded=False,
                    progress=False,
                )
                with session:
                    started = time.perf_counter()
                    if way == "one pool":
                        out = judge_documents_many(entries, session)
                    else:
                        out = [judge_documents(b, d, r, session) for b, d, r in entries]
                    walls[way] = time.perf_counter() - started
                records[way] = [
                    {**r.to_json(), "judge": {**(r.judge or {}), "latency_s": None}} for rs in out for r in rs
                ]
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    judged = [r for r in records["one pool"] if r["status"] == "ok"]
    same = records["one pool"] == records["one after another"]

    sizes = [len(docs) for _, docs, _ in entries]
    waves = [math.ceil(n / args.concurrency) for n in sizes]
    ideal_sequential = sum(waves) * args.latency
    ideal_pooled = max(math.ceil((sizes[0] + sizes[1]) / args.concurrency), waves[2]) * args.latency
    print(
        f"trace_ifs {sizes[0]} + trace_ifm {sizes[1]} + cfbench {sizes[2]} documents; loopback judge "
        f"latency {args.latency * 1000:.0f} ms; concurrency {args.concurrency} per judge config"
    )
    print(f"{os.cpu_count()} CPUs; load average at start {load[0]:.1f}")
    for way, wall in walls.items():
        print(f"{way:>18}: {wall:6.2f} s")
    ratio = walls["one after another"] / walls["one pool"]
    print(
        f"one after another / one pool: {ratio:.2f} (the task sizes allow at most "
        f"{ideal_sequential / ideal_pooled:.2f} at this concurrency)"
    )
    print(f"items judged: {len(judged)} of {sum(sizes)}; the same item records both ways: {same}")
    return 0 if same and len(judged) == sum(sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
