"""Time `iopo-eval leaderboard` on 100 runs x 4 benchmarks with the real item counts
(TRACE 1,042, IFEval 541, CFBench 1,000, ComplexBench 1,150 items per run; goal: <= 2 s).

The runs are synthetic (iopo_eval.testing.synthetic, written with the real results writers).
Drawing 100 distinct runs takes minutes, so 10 distinct runs are drawn and each is copied to 10
folders with its own run id and model name: the renderer does the same work for a copy as for a
distinct run (it reads every results.json and items file and writes every page).

    python benchmarks/leaderboard_build.py [--runs 100] [--distinct 10] [--keep DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from iopo_eval.leaderboard.render import build_site
from iopo_eval.testing.synthetic import REAL_COUNTS, SyntheticRun, write_synthetic_run


def make_runs(root: Path, n_runs: int, n_distinct: int) -> list[Path]:
    distinct = []
    for k in range(n_distinct):
        d = root / f"distinct-{k}"
        write_synthetic_run(
            d,
            SyntheticRun(
                f"model-{k}", skill=0.4 + 0.5 * k / max(n_distinct - 1, 1), seed=k, bootstrap_iters=100
            ),
        )
        distinct.append(d)
    runs = []
    for i in range(n_runs):
        src = distinct[i % n_distinct]
        dst = root / f"run-{i:03d}"
        dst.mkdir()
        for f in src.iterdir():
            if f.name != "results.json":
                (dst / f.name).hardlink_to(f)
        doc = json.loads((src / "results.json").read_text(encoding="utf-8"))
        doc["run_id"] = f"bench-run-{i:03d}"
        doc["model"]["name"] = f"checkpoint-{i:03d}"
        (dst / "results.json").write_text(json.dumps(doc), encoding="utf-8")
        runs.append(dst)
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--distinct", type=int, default=10)
    ap.add_argument(
        "--repeat", type=int, default=3, help="timed builds (into fresh folders); the median is the figure"
    )
    ap.add_argument("--keep", type=Path, help="keep the runs and the last site here")
    args = ap.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="lb-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = make_runs(root / "runs", args.runs, args.distinct)
    gen_s = time.perf_counter() - t0
    items = args.runs * sum(REAL_COUNTS.values())
    in_bytes = sum(f.stat().st_size for r in runs for f in r.iterdir())
    print(
        f"generated {args.runs} runs x {len(REAL_COUNTS)} benchmarks ({items:,} items, "
        f"{in_bytes / 2**20:.0f} MiB of results) in {gen_s:.1f} s"
    )

    times = []
    for k in range(args.repeat):
        out = root / f"site-{k}"
        t = time.perf_counter()
        summary = build_site([str(root / "runs" / "run-*")], out)
        times.append(time.perf_counter() - t)
        assert summary.n_runs == args.runs, summary.n_runs
        if k < args.repeat - 1 or not args.keep:
            shutil.rmtree(out)
    out_note = f"; site kept in {root / f'site-{args.repeat - 1}'}" if args.keep else ""
    med = statistics.median(times)
    print(
        f"leaderboard build: median {med:.2f} s over {args.repeat} builds "
        f"(min {min(times):.2f}, max {max(times):.2f}); goal <= 2 s: {'met' if med <= 2 else 'NOT met'}{out_note}"
    )
    if not args.keep:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
