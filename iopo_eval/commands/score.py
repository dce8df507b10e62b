"""``iopo-eval score``: recompute metrics from stored judgements or checks, making no judge calls."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from iopo_eval.commands.common import add_data_args

# Benchmark-specific scorers of files produced outside iopo-eval: module with register_score_subcommand().
EXTERNAL_SCORERS = ("iopo_eval.scoring.ifeval", "iopo_eval.scoring.cfbench", "iopo_eval.scoring.complexbench")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="recompute metrics from stored judgements (no calls)")
    ssub = p.add_subparsers(dest="score_command", metavar="SOURCE", required=True)
    q = ssub.add_parser(
        "run",
        help="rescore an iopo-eval run folder from its items files with the current scoring code",
    )
    q.add_argument("run", type=Path, help="run folder or its results.json")
    q.add_argument("--output", "-o", type=Path, help="write here instead of updating the run in place")
    add_data_args(q)
    q.set_defaults(func=main)
    for module in EXTERNAL_SCORERS:
        try:
            importlib.import_module(module).register_score_subcommand(ssub)
        except (ModuleNotFoundError, AttributeError):
            continue  # that benchmark is not built in this checkout


def main(args: argparse.Namespace) -> int:
    import shutil

    from iopo_eval.benchmarks import BENCHMARKS
    from iopo_eval.report import summary
    from iopo_eval.results import load_results, read_items, write_items, write_results

    results, run_dir = load_results(args.run)
    out_dir = args.output or run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for bench, result in list(results.benchmarks.items()):
        records = read_items(run_dir / result.items_file)
        records, fresh = BENCHMARKS[bench].scorer().rescore(records, result.tasks, result.judge, args.data_mirror)
        write_items(out_dir / fresh.items_file, records)
        results.benchmarks[bench] = fresh
    if out_dir != run_dir:
        for extra in run_dir.glob("*.generations.jsonl"):
            shutil.copy2(extra, out_dir / extra.name)
    write_results(out_dir, results)
    print(summary(results))
    print(f"\nresults: {out_dir / 'results.json'}")
    return 0
