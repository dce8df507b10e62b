"""Kill the judge stage with SIGKILL at random points, resume, and count what was paid twice.

The stage is the real command, ``iopo-eval judge`` over a folder of saved responses (all 1,042 TRACE
rows of the data mirror with synthetic responses), in a process of its own; the judge is the loopback
server in this process, which counts every call. Each seeded trial kills the stage once a random number
of calls has arrived, reads what the cache kept, and resumes with the same command. Printed per trial:
the calls before the kill, the judgements committed, the leases left behind (calls claimed and not
committed: in flight at the kill), the calls paid twice, the resume's wall time, and whether the resumed
items and metrics equal an uninterrupted run's. Then two stages started together on one cache: calls
made against items judged.

    python benchmarks/crash_resume.py [--trials 10] [--items 1042] [--concurrency 16] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from iopo_eval.data.trace import load_trace
from iopo_eval.judges import JudgeCache
from iopo_eval.judges.config import CONFIGS_DIR, TEMPLATES_DIR
from iopo_eval.results import json_line, load_results, read_items
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores

KEY_ENV = "IOPO_BENCH_JUDGE_KEY"


def prepare(folder: Path, n_items: int, concurrency: int) -> tuple[Path, Path]:
    gen = folder / "gen"
    gen.mkdir(parents=True)
    with (gen / "trace.generations.jsonl").open("w", encoding="utf-8") as fh:
        for item in load_trace()[:n_items]:
            fh.write(
                json_line({"id": item.id, "response": f"Answer to item {item.id}: {item.description[:80]}"})
            )
    raw = yaml.safe_load((CONFIGS_DIR / "trace-gpt4o-hardened.yaml").read_text(encoding="utf-8"))
    raw.update(
        api_key_env=KEY_ENV,
        template=str(TEMPLATES_DIR / raw["template"]),
        concurrency=concurrency,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
    )
    config = folder / "judge.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return gen, config


def stage(gen: Path, config: Path, url: str, cache: Path, out: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "iopo_eval.cli", "judge", str(gen), "--judge", str(config)]
    cmd += ["--judge-base-url", url, "--judge-cache", str(cache), "--no-embedded-judge", "-o", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"iopo-eval judge failed:\n{err.decode(errors='replace')[-2000:]}")


def outcome_of(out: Path) -> tuple[dict[str, Any], dict[str, float]]:
    (run_dir,) = out.iterdir()
    results, run_dir = load_results(run_dir)
    trace = results.benchmarks["trace"]
    items = {
        r.item_id: (r.status, r.judge["scores"], r.judge["overall"], r.values)
        for r in read_items(run_dir / trace.items_file)
    }
    return items, {k: m.value for k, m in trace.metrics.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--items", type=int, default=1042)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--latency", type=float, default=0.05, help="server seconds per answer")
    p.add_argument("--seed", type=int, default=20241106)
    args = p.parse_args(argv)
    os.environ.setdefault(KEY_ENV, "sk-benchmark-not-secret")
    n = args.items

    with (
        tempfile.TemporaryDirectory() as tmp_name,
        OpenAIServer(hashed_scores, latency_s=args.latency) as server,
    ):
        tmp = Path(tmp_name)
        gen, config = prepare(tmp, n, args.concurrency)
        started = time.monotonic()
        proc = stage(gen, config, server.base_url, tmp / "ref.sqlite", tmp / "ref")
        wait(proc)
        reference, ref_metrics = outcome_of(tmp / "ref")
        print(
            f"uninterrupted: {n} items, {server.calls} calls, {time.monotonic() - started:.1f} s "
            f"(concurrency {args.concurrency}, {args.latency * 1000:.0f} ms per call)"
        )
        print(
            f"{'trial':>5} {'kill@':>6} {'calls':>6} {'committed':>9} {'in flight':>9} {'paid twice':>10} {'resume s':>8}  identical"
        )
        rng = random.Random(args.seed)
        worst = 0
        for trial in range(args.trials):
            server.reset_counters()
            cache = tmp / f"t{trial}.sqlite"
            kill_at = rng.randint(1, n - args.concurrency)
            proc = stage(gen, config, server.base_url, cache, tmp / f"killed{trial}")
            while server.calls < kill_at and proc.poll() is None:
                time.sleep(0.002)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            time.sleep(0.1)
            before = server.calls
            with JudgeCache(cache) as c:
                committed, in_flight = len(c), len(c.leases())
            t0 = time.monotonic()
            wait(stage(gen, config, server.base_url, cache, tmp / f"resumed{trial}"))
            resume_s = time.monotonic() - t0
            twice = server.calls - n
            worst = max(worst, twice)
            items, metrics = outcome_of(tmp / f"resumed{trial}")
            same = items == reference and metrics == ref_metrics
            print(
                f"{trial:>5} {kill_at:>6} {before:>6} {committed:>9} {in_flight:>9} {twice:>10} {resume_s:>8.1f}  {same}"
            )
        print(f"most calls paid twice in one trial: {worst} (concurrency {args.concurrency})")

        server.reset_counters()
        a = stage(gen, config, server.base_url, tmp / "shared.sqlite", tmp / "a")
        b = stage(gen, config, server.base_url, tmp / "shared.sqlite", tmp / "b")
        wait(a)
        wait(b)
        same = outcome_of(tmp / "a")[0] == outcome_of(tmp / "b")[0] == reference
        with JudgeCache(tmp / "shared.sqlite") as c:
            stored = len(c)
        print(
            f"two stages at once on one cache: {server.calls} calls for {n} items "
            f"({server.calls - n} paid twice), {stored} judgements stored, identical results: {same}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
