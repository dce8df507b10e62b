"""``iopo-eval gate``: fail CI when a candidate run is significantly worse than a baseline run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from iopo_eval.gate import GateOptions, run_gate


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gate",
        help="compare a candidate run with a baseline run; exit 1 on a significant regression",
        description=(
            "Compare two runs on their shared items with paired statistics (McNemar for pass/fail metrics, "
            "paired bootstrap otherwise). Exit 0: no regression; 1: a metric dropped by more than --max-drop "
            "points and the drop is significant at --alpha; 2: the runs cannot be compared (missing files, "
            "no shared items, different task versions, protocol or judge, or a run with unscored items unless "
            "--accept-failures). Prints a markdown summary, also appended to $GITHUB_STEP_SUMMARY when that is set."
        ),
    )
    p.add_argument("--baseline", required=True, help="baseline run folder or its results.json")
    p.add_argument("--candidate", required=True, help="candidate run folder or its results.json")
    p.add_argument(
        "--max-drop",
        type=float,
        default=0.0,
        metavar="POINTS",
        help="allowed drop in points of each metric's scale (percentage points for rates); default 0",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help="metrics to gate on, as NAME (every shared benchmark reporting it) or BENCHMARK:NAME, "
        "e.g. trace:if_m ifeval:prompt_strict; default: each benchmark's headline metrics",
    )
    p.add_argument(
        "--allow-protocol-mismatch",
        action="store_true",
        help="compare even when task versions, scoring protocol or judge identity differ (noted in the summary)",
    )
    p.add_argument(
        "--accept-failures",
        action="store_true",
        help="compare runs with unscored items (judge failures, budget stop) on the items both scored; "
        "by default such a run cannot be compared (exit 2)",
    )
    p.add_argument("--json", metavar="FILE", help="also write the verdict and every check as JSON to FILE")
    p.add_argument("--iters", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=1234, help="bootstrap seed (default 1234)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        print(f"--alpha must be between 0 and 1, got {args.alpha}", file=sys.stderr)
        return 2
    if args.max_drop < 0:
        print(f"--max-drop must be >= 0 points, got {args.max_drop}", file=sys.stderr)
        return 2
    options = GateOptions(
        max_drop=args.max_drop,
        alpha=args.alpha,
        metrics=args.metrics,
        allow_protocol_mismatch=args.allow_protocol_mismatch,
        accept_failures=args.accept_failures,
        iters=args.iters,
        seed=args.seed,
    )
    report = run_gate(args.baseline, args.candidate, options)
    summary = report.to_markdown()
    print(summary)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as fh:
            fh.write(summary + "\n")
    return report.exit_code
