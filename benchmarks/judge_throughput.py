"""Judge engine throughput against a loopback OpenAI-compatible server that answers after 100 ms.

What it measures, in one run:
- achieved calls/s at concurrency 1, 16 and 64, as a fraction of the ideal ``concurrency / latency``
  (goal: >= 0.9 at 64). Concurrency 1 judges a 50-item subset (1,042 items would take 105 s and tell
  nothing more); 16 and 64 judge all 1,042 synthetic TRACE-like items, each with a fresh cache;
- the harness CPU time per item (this process only: the server runs in a child process; at concurrency 1
  it includes the one-off set-up, spread over 50 items), and the call rate that CPU cost allows on one
  free core, which tells the harness's limit apart from a busy machine's;
- a warm-cache rerun of all 1,042 items (goal: <= 2 s and zero calls).

The items are synthetic: TRACE's constraint-count distribution (200 rows with one constraint, ...), and
Chinese text of TRACE-like lengths, so prompts have realistic sizes. No data file is read.

    python benchmarks/judge_throughput.py [--latency 0.1] [--items 1042]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from iopo_eval.judges import JudgeCache, JudgeRequest, judge_batch, load_judge_config

# TRACE eval: rows per constraint count 1..15 (protocols.md §1.2); 1,042 rows in all.
TRACE_COUNTS = {1: 200, 2: 101, 3: 100, 4: 100, 5: 100, 6: 101, 7: 101, 8: 98, 9: 99, 10: 10, 11: 11, 12: 9}
TRACE_COUNTS.update({13: 4, 14: 4, 15: 4})
KEY_ENV = "IOPO_BENCH_JUDGE_KEY"


def synthetic_items(n: int, seed: int = 0) -> list[JudgeRequest]:
    rng = random.Random(seed)
    counts = [c for c, rows in sorted(TRACE_COUNTS.items()) for _ in range(rows)]
    chars = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经"

    def text(length: int) -> str:
        return "".join(rng.choice(chars) for _ in range(length))

    items = []
    for i in range(n):
        k = counts[i % len(counts)]
        items.append(
            JudgeRequest(
                key=str(i),
                fields={
                    "query": text(rng.randint(15, 60)),
                    "input": text(rng.randint(20, 200)) if rng.random() < 0.25 else "(none)",
                    "constraints": [f"{j}. {text(rng.randint(15, 50))}" for j in range(1, k + 1)],
                    "response": text(rng.randint(200, 900)),
                },
                n_expected=k,
            )
        )
    return items


def start_server(latency: float, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """The loopback OpenAI server in its own process (``extra``: more of its flags); its port and URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "iopo_eval.testing.openai_server", "--latency", str(latency), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().strip())
    return proc, f"http://127.0.0.1:{port}/v1"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--items", type=int, default=1042)
    parser.add_argument("--serial-items", type=int, default=50, help="subset judged at concurrency 1")
    args = parser.parse_args()

    os.environ[KEY_ENV] = "unused-loopback-key"
    load = os.getloadavg()
    items = synthetic_items(args.items)
    proc, base_url = start_server(args.latency)
    config = load_judge_config("trace-gpt4o-hardened").with_overrides(
        base_url=base_url, api_key_env=KEY_ENV, max_retries=0
    )
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="judge-bench-") as tmp:
            for concurrency, subset in ((1, items[: args.serial_items]), (16, items), (64, items)):
                with JudgeCache(Path(tmp) / f"c{concurrency}.sqlite") as cache:
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    run = judge_batch(
                        subset, config.with_overrides(concurrency=concurrency), cache, progress=False
                    )
                    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
                if run.judged != len(subset):
                    print(
                        f"concurrency {concurrency}: {len(subset) - run.judged} items failed: {run.failures}"
                    )
                    return 1
                rate = run.calls / wall
                ideal = concurrency / args.latency
                rows.append(
                    (concurrency, len(subset), run.calls, wall, rate, ideal, rate / ideal, cpu / len(subset))
                )

            with JudgeCache(Path(tmp) / "c64.sqlite") as cache:
                wall0 = time.perf_counter()
                warm = judge_batch(items, config, cache, progress=False)
                warm_wall = time.perf_counter() - wall0
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = children.ru_utime + children.ru_stime
    total_calls = sum(row[2] for row in rows)

    print(f"loopback server latency {args.latency * 1000:.0f} ms; {args.items} synthetic TRACE-like items")
    print(
        f"{os.cpu_count()} CPUs; load average at start {load[0]:.1f} (other work on the machine slows every figure)"
    )
    print(
        f"{'conc':>5} {'items':>6} {'calls':>6} {'wall s':>8} {'calls/s':>8} {'ideal':>7} {'ratio':>6} {'CPU ms/item':>12}"
    )
    for conc, n, calls, wall, rate, ideal, ratio, cpu in rows:
        print(
            f"{conc:>5} {n:>6} {calls:>6} {wall:>8.2f} {rate:>8.1f} {ideal:>7.0f} {ratio:>6.2f} {cpu * 1000:>12.2f}"
        )
    print(
        f"server process CPU: {server_cpu * 1000 / total_calls:.2f} ms per call (not part of the harness figures)"
    )
    cpu64 = rows[-1][7]
    print(
        f"harness CPU ceiling at concurrency 64: {1 / cpu64:.0f} calls/s with one free core "
        f"({1 / cpu64 / (64 / args.latency):.2f} of the ideal {64 / args.latency:.0f})"
    )
    ratio64 = rows[-1][6]
    print(f"ratio at concurrency 64: {ratio64:.2f} (goal >= 0.90): {'PASS' if ratio64 >= 0.9 else 'MISS'}")
    print(
        f"warm-cache rerun of {len(items)} items: {warm_wall:.2f} s, {warm.calls} calls, {warm.cache_hits} cache hits "
        f"(goal <= 2 s, 0 calls): {'PASS' if warm_wall <= 2.0 and warm.calls == 0 else 'MISS'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
