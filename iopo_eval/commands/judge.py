"""``iopo-eval judge``: judge saved responses (lm-eval --log_samples output, a run, a crashed run, or an
upstream ComplexBench generation file)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from iopo_eval.commands.common import (
    add_data_args,
    add_judge_args,
    add_leaderboard_arg,
    finish_run,
    session_from_args,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "judge",
        help="judge lm-eval --log_samples output, or rejudge a run with another judge",
        description="Judge responses that were generated elsewhere or earlier. PATHS are lm-eval output folders "
        "or samples_*.jsonl files, iopo-eval run folders (rejudged from their items), or run folders of an "
        "interrupted run (judged from their saved generations). --complexbench-generations judges an upstream "
        "ComplexBench llm_generations/<model>.jsonl file ({main_id, model, instruction, generated} rows) on the "
        "Chinese instructions. Cached judgements are never paid twice; --dry-run estimates.",
    )
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument(
        "--complexbench-generations",
        type=Path,
        metavar="FILE",
        help="an upstream ComplexBench generation file (JSONL) to judge and score",
    )
    p.add_argument("--limit", type=int, help="with --complexbench-generations: only the first N instances")
    p.add_argument("--output", "-o", default="runs", help="folder for the new run folder (default: ./runs)")
    add_data_args(p)
    add_judge_args(p)
    add_leaderboard_arg(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from iopo_eval.rejudge import collect_responses, judge_and_score

    if bool(args.paths) == bool(args.complexbench_generations):
        print("iopo-eval judge: give PATHS or --complexbench-generations FILE (one of them)", file=sys.stderr)
        return 2
    if args.limit is not None and not args.complexbench_generations:
        print("iopo-eval judge: --limit applies to --complexbench-generations only", file=sys.stderr)
        return 2
    if args.complexbench_generations:
        from iopo_eval.importers.complexbench_generations import read_generations

        responses, model = read_generations(args.complexbench_generations, args.data_mirror, args.limit)
    else:
        responses, model = collect_responses(args.paths)
    with session_from_args(args) as session:
        results, run_dir = judge_and_score(responses, session, Path(args.output), model, args.data_mirror)
        if args.dry_run:
            print(session.estimate_text())
    return finish_run(results, run_dir, dry_run=args.dry_run, leaderboard=args.leaderboard)
