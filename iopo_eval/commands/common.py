"""Arguments shared by several subcommands."""

from __future__ import annotations

import argparse

from iopo_eval.judging import JudgeSession


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
        help="judge config: a bundled name (e.g. trace-gpt4o) or a YAML path; BENCH=CONFIG,... per benchmark "
        "(default: $IOPO_EVAL_JUDGE, else each benchmark's default)",
    )
    g.add_argument("--judge-base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--judge-model", help="model name to ask the judge endpoint for")
    g.add_argument("--concurrency", type=int, help="concurrent judge calls (default: the judge config's)")
    g.add_argument("--budget", type=float, metavar="USD", help="stop judging cleanly at this cost; a rerun resumes")
    g.add_argument("--dry-run", action="store_true", help="estimate judge tokens and cost; make no judge calls")
    g.add_argument("--judge-cache", metavar="FILE", help="SQLite judge cache (default: in the iopo-eval cache dir)")
    g.add_argument(
        "--no-embedded-judge",
        action="store_true",
        help="fail instead of starting the embedded smoke-test judge when no endpoint or key is configured",
    )


def session_from_args(args: argparse.Namespace) -> JudgeSession:
    from pathlib import Path

    return JudgeSession(
        config_name=args.judge,
        base_url=args.judge_base_url,
        model=args.judge_model,
        cache_path=Path(args.judge_cache) if args.judge_cache else None,
        concurrency=args.concurrency,
        budget_usd=args.budget,
        dry_run=args.dry_run,
        allow_embedded=not args.no_embedded_judge,
    )
