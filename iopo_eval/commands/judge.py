"""``iopo-eval judge``: judge saved responses (lm-eval --log_samples output, a run, a crashed run)."""

from __future__ import annotations

import argparse
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
        "interrupted run (judged from their saved generations). Cached judgements are never paid twice.",
    )
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--output", "-o", default="runs", help="folder for the new run folder (default: ./runs)")
    add_data_args(p)
    add_judge_args(p)
    add_leaderboard_arg(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from iopo_eval.rejudge import collect_responses, judge_and_score

    responses, model = collect_responses(args.paths)
    with session_from_args(args) as session:
        results, run_dir = judge_and_score(responses, session, Path(args.output), model, args.data_mirror)
        if args.dry_run:
            print(session.estimate_text())
    return finish_run(results, run_dir, dry_run=args.dry_run, leaderboard=args.leaderboard)
