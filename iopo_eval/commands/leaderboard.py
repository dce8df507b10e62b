"""``iopo-eval leaderboard``: render run results into a static site that opens from disk."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from iopo_eval.leaderboard.render import build_site
from iopo_eval.leaderboard.reported import ReportedError, load_reported
from iopo_eval.results import ResultsError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "leaderboard",
        help="render run results into a static HTML leaderboard",
        description=(
            "Render runs (run folders, results.json files, or globs such as 'runs/*') into SITE/index.html "
            "plus one page per run. The site needs no network: open index.html from disk or serve the folder."
        ),
    )
    p.add_argument("results", nargs="+", metavar="RESULTS", help="run folders, results.json paths or globs")
    p.add_argument("-o", "--output", required=True, metavar="SITE", help="output folder (created)")
    p.add_argument(
        "--baseline",
        metavar="RUN",
        help="preselect a baseline row: a run folder, run id, run name or reported row label "
        "(e.g. 'Qwen2-7B · DPO')",
    )
    p.add_argument(
        "--reported", metavar="FILE", help="reported-numbers JSON to show instead of the bundled one"
    )
    p.add_argument("--no-reported", action="store_true", help="show measured runs only")
    p.add_argument("--title", default="iopo-eval leaderboard", help="site title")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    try:
        reported = None if args.no_reported else load_reported(args.reported)
        summary = build_site(
            args.results,
            args.output,
            reported=reported,
            include_reported=not args.no_reported,
            baseline=args.baseline,
            title=args.title,
        )
    except (ResultsError, ReportedError, ValueError) as exc:
        print(f"iopo-eval leaderboard: {exc}", file=sys.stderr)
        return 2
    for warning in summary.warnings:
        log.warning(warning)
    print(
        f"wrote {summary.index} ({summary.n_runs} runs, {summary.n_reported} reported rows) "
        f"in {time.perf_counter() - start:.2f} s"
    )
    print(f"open {summary.index.resolve().as_uri()}")
    return 0
