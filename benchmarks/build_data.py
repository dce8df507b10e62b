"""`iopo-eval train build-data` against the scripted loopback server: calls per kept quadruple and wall time.

200 seeds (made up here, none from an evaluation set) go through every step with the generator and the
judge served by ``iopo_eval.testing.openai_server`` and answered by ``iopo_eval.testing.build_replies``
(a response follows each constraint with probability 0.9; 2% of seeds refused, 5% of instructions dropped
and 10% fixed by quality control, 2% of first replies unparseable). The server answers each call after
``--latency`` seconds, so the wall time shows how well the build keeps ``--concurrency`` calls in flight:
the ideal is, step by step, ceil(calls / concurrency) rounds of one latency each. A rerun of the finished
build is timed too (everything from the state files and the cache: no call).

    python benchmarks/build_data.py [--seeds 200] [--concurrency 64] [--latency 0.05] [--candidates 4]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from iopo_eval.judges.config import load_judge_config
from iopo_eval.testing.build_replies import ScriptedBuilder
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.training.databuild.llm import resolve_generator
from iopo_eval.training.databuild.pipeline import BuildSettings, run_build
from iopo_eval.training.databuild.steps import STEPS

TOPICS = (
    "a harbour at dawn", "learning to knit", "a bus timetable change", "indoor herb gardens", "a school sports day",
    "saving energy at home", "a museum of clocks", "walking meetings", "a night market", "repairing old radios",
    "a village library", "winter cycling", "a recipe for lentil soup", "noise in open offices", "a lighthouse tour",
    "learning sign language", "a rooftop garden", "choosing a first camera", "a school choir", "packing for a hike",
    "a chess club", "public drinking fountains", "a ferry crossing", "writing postcards", "a bakery opening",
    "a rainy market day", "planting trees in cities", "a book swap", "home composting", "a quiet train carriage",
    "a kite festival", "budget travel by rail", "a river clean-up", "learning pottery", "a neighbourhood orchestra",
    "sleep routines for students", "a mountain hut", "community fridges", "a paper-folding class", "a street mural",
)  # fmt: skip
FORMS = (
    "Write a short text about {t}.", "Explain to a newcomer what matters about {t}.",
    "Give practical advice on {t}.", "Describe {t} for a local newsletter.", "Tell a brief story involving {t}.",
)  # fmt: skip


def write_seeds(path: Path, n: int) -> None:
    rows = [f.format(t=t) for f in FORMS for t in TOPICS][:n]
    if len(rows) < n:
        raise SystemExit(f"at most {len(FORMS) * len(TOPICS)} seeds")
    path.write_text(
        "".join(json.dumps({"id": f"b{i:04d}", "instruction": r}) + "\n" for i, r in enumerate(rows))
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=200)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.05, help="seconds the server takes per call")
    p.add_argument("--candidates", type=int, default=4)
    args = p.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        OpenAIServer(ScriptedBuilder(garbage_rate=0.02), latency_s=args.latency) as server,
    ):
        seeds = Path(tmp) / "seeds.jsonl"
        write_seeds(seeds, args.seeds)
        fast = {"backoff_initial_s": 0.01, "backoff_max_s": 0.05}
        settings = BuildSettings(
            seeds=seeds,
            out=Path(tmp) / "out",
            generator=resolve_generator("qwen2.5-72b-vllm", base_url=server.base_url).with_overrides(**fast),
            judge=load_judge_config("trace-gpt4o").with_overrides(base_url=server.base_url, **fast),
            candidates=args.candidates,
            concurrency=args.concurrency,
        )
        from iopo_eval.training.databuild.decontam import build_index

        build_index()  # the evaluation-set index is built once per process; not part of the timing
        started = time.perf_counter()
        code, report = run_build(settings)
        wall = time.perf_counter() - started
        calls = server.calls
        server.reset_counters()
        started = time.perf_counter()
        run_build(settings)
        rerun = time.perf_counter() - started
        rerun_calls = server.calls
    by_step = report["cost"]["all_runs"]["by_step"]
    ideal = sum(math.ceil(by_step[s.name]["calls"] / args.concurrency) * args.latency for s in STEPS)
    quads = report["outputs"]["quadruples"]
    print(
        f"seeds {args.seeds}, candidates {args.candidates}, concurrency {args.concurrency}, latency {args.latency:.3f} s (exit {code})"
    )
    print(f"kept: {report['outputs']['instructions']} instructions, {report['outputs']['sft']} SFT rows, "
          f"{report['outputs']['dpo_pairs']} DPO pairs, {quads} IOPO quadruples")  # fmt: skip
    print("step           calls  (retries)")
    for s in STEPS:
        row = by_step[s.name]
        print(f"  {s.name:<12} {row['calls']:>6.0f}  ({row['calls'] - row['requests']:.0f})")
    print(f"calls: {calls}; per kept quadruple: {calls / quads:.2f}; per seed: {calls / args.seeds:.2f}")
    ratio = f"{wall / ideal:.2f}" if ideal else "n/a (no latency: the harness alone)"
    print(f"wall: {wall:.2f} s; ideal at this latency and concurrency: {ideal:.2f} s; wall / ideal: {ratio}")
    print(f"calls/s: {calls / wall:.0f}; rerun of the finished build: {rerun:.2f} s, {rerun_calls} calls")


if __name__ == "__main__":
    main()
