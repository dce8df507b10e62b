"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from iopo_eval.judges.config import ENV_JUDGE
from iopo_eval.judging import JudgeModes, JudgeSession

if TYPE_CHECKING:
    from iopo_eval.results import RunResults

# Exit codes of the commands that judge (run, judge): 2 is bad input (cli.py), and 3 says the run was
# written completely but some items have no judgement (judge failures after the retries, or the budget
# cap): a CI job must not carry on with it as if it were whole. A rerun resumes from the judge cache.
EXIT_OK = 0
EXIT_INCOMPLETE = 3


def add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-mirror",
        metavar="DIR",
        help="local folder with the benchmark files in the registry layout (default: $IOPO_EVAL_DATA_MIRROR)",
    )


def add_judge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("judge")
    g.add_argument(
        "--judge",
        metavar="CONFIG",
        help="judge config: a bundled name (e.g. trace-gpt4o) or a YAML path; BENCH=CONFIG,... per benchmark, "
        "BENCH_ROLE=CONFIG for a benchmark's other judges (complexbench_extract=...) "
        "(default: $IOPO_EVAL_JUDGE, else each judge's bundled default)",
    )
    g.add_argument("--judge-base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--judge-model", help="model name to ask the judge endpoint for")
    g.add_argument("--concurrency", type=int, help="concurrent judge calls (default: the judge config's)")
    g.add_argument(
        "--budget", type=float, metavar="USD", help="stop judging cleanly at this cost; a rerun resumes"
    )
    g.add_argument(
        "--dry-run", action="store_true", help="estimate judge tokens and cost; make no judge calls"
    )
    g.add_argument(
        "--judge-cache", metavar="FILE", help="SQLite judge cache (default: in the iopo-eval cache dir)"
    )
    g.add_argument(
        "--cfbench-counting",
        choices=("upstream", "strict"),
        help="how CFBench counts a judgement that fails after the retries: upstream (default, the paper's: "
        "upstream's fallback reading, unreadable replies scored 0) or strict (a failure, not scored); "
        "sets $IOPO_EVAL_CFBENCH_COUNTING, recorded in the results' protocol",
    )
    g.add_argument(
        "--save-prompts",
        metavar="FILE",
        type=Path,
        help="write every judge prompt as a JSON line (benchmark, item_id, role, judge, exact messages); "
        "with --dry-run, what a real run would send",
    )
    g.add_argument(
        "--judge-mode",
        choices=("sync", "batch"),
        help="sync: one call per judgement; batch: OpenAI's Batch API, half the price, answers within 24 h, "
        "resumable (default: $IOPO_EVAL_JUDGE_MODE, else the judge config's mode, sync)",
    )
    g.add_argument(
        "--batch-fallback",
        choices=("batch", "sync"),
        help="batch mode: ask error lines and unparseable answers again in a follow-up batch (default) or "
        "synchronously",
    )
    g.add_argument(
        "--batch-wait",
        type=_seconds,
        metavar="SECONDS",
        help="batch mode: stop waiting after this long; unfinished items are not judged (exit 3) and the "
        "next run collects them without resubmitting (default: wait until every batch ends)",
    )
    g.add_argument(
        "--no-embedded-judge",
        action="store_true",
        help="fail instead of starting the embedded smoke-test judge when no endpoint or key is configured",
    )


def session_from_args(args: argparse.Namespace) -> JudgeSession:
    """The run's judge session, from the judge flags (unset: ``$IOPO_EVAL_JUDGE``, ``$IOPO_EVAL_JUDGE_MODE``,
    ``$IOPO_EVAL_JUDGE_BATCH_FALLBACK``, ``$IOPO_EVAL_JUDGE_BATCH_WAIT_S``).

    ``--cfbench-counting`` is a scoring choice, not a judge setting: it goes into the environment
    variable that CFBench's scoring reads (as a plain ``lm_eval`` run would set it) until the session closes."""
    env = JudgeModes.from_environment()
    session = JudgeSession(
        config_name=args.judge or os.environ.get(ENV_JUDGE) or None,
        base_url=args.judge_base_url,
        model=args.judge_model,
        cache_path=Path(args.judge_cache) if args.judge_cache else None,
        concurrency=args.concurrency,
        budget_usd=args.budget,
        mode=args.judge_mode or env.mode,
        batch_fallback=args.batch_fallback or env.batch_fallback,
        batch_wait_s=args.batch_wait if args.batch_wait is not None else env.batch_wait_s,
        dry_run=args.dry_run,
        allow_embedded=not args.no_embedded_judge,
        save_prompts=getattr(args, "save_prompts", None),
    )
    if getattr(args, "cfbench_counting", None):
        from iopo_eval.scoring.cfbench import COUNTING_ENV

        session.setenv_until_closed(COUNTING_ENV, args.cfbench_counting)
    return session


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def add_leaderboard_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--leaderboard",
        metavar="SITE",
        help="also render the static leaderboard for this run (beside the paper's rows) into SITE",
    )


def finish_run(results: RunResults, run_dir: Path, *, dry_run: bool, leaderboard: str | None = None) -> int:
    """Print the summary and where to look next; the exit code says whether every item was judged."""
    from iopo_eval.report import summary

    print(summary(results))
    files = ", ".join(["results.json", *(b.items_file for b in results.benchmarks.values())])
    print(f"\nresults folder: {run_dir} ({files})")
    if leaderboard:
        from iopo_eval.leaderboard.render import build_site

        site = build_site([str(run_dir)], leaderboard)
        print(f"leaderboard: {site.index.resolve().as_uri()}")
    unjudged = [(name, bench) for name, bench in results.benchmarks.items() if bench.n_failed and not dry_run]
    if not unjudged:
        return EXIT_OK
    detail = "; ".join(f"{name}: {bench.failure_text}" for name, bench in unjudged)
    print(
        f"incomplete: some items have no score ({detail}). The run is written; rerun the same command "
        f"(or `iopo-eval judge {run_dir}`) to resume from the judge cache. Exit code {EXIT_INCOMPLETE}.",
    )
    return EXIT_INCOMPLETE
