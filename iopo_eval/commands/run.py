"""``iopo-eval run``: evaluate a model on benchmarks end to end."""

from __future__ import annotations

import argparse
import json
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
        "run",
        help="generate with lm-eval, judge, score and write results",
        description="Evaluate a model. With no --model, the embedded SmolLM2-135M-Instruct is evaluated; with no "
        "judge endpoint or key configured, the embedded smoke-test judge is started.",
    )
    p.add_argument(
        "--tasks", default="trace", help="benchmarks or tasks, comma-separated: trace, trace_ifs, paper, ..."
    )
    p.add_argument(
        "--model",
        help="lm-eval backend (hf, vllm, local-chat-completions, ...) or a local folder / hub id for hf "
        "(default: the embedded SmolLM2-135M-Instruct)",
    )
    p.add_argument("--model-args", help="lm-eval model args, e.g. pretrained=DIR,dtype=bfloat16")
    p.add_argument("--limit", type=int, help="at most N documents per task")
    p.add_argument("--output", "-o", default="runs", help="folder for run folders (default: ./runs)")
    p.add_argument("--batch-size", default="1")
    p.add_argument("--device", help="cpu, cuda, cuda:0, ...")
    p.add_argument(
        "--gen-kwargs",
        help="generation overrides as JSON or k=v,... (e.g. max_gen_toks=256); recorded in the results",
    )
    add_data_args(p)
    add_judge_args(p)
    add_leaderboard_arg(p)
    p.set_defaults(func=main)


def parse_gen_kwargs(text: str | None) -> dict:
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        return json.loads(text)
    out: dict = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def main(args: argparse.Namespace) -> int:
    from iopo_eval.models import resolve_model
    from iopo_eval.run import RunOptions, evaluate

    spec = resolve_model(args.model, args.model_args)
    options = RunOptions(
        tasks=[args.tasks],
        output=Path(args.output),
        limit=args.limit,
        batch_size=int(args.batch_size) if str(args.batch_size).isdigit() else args.batch_size,
        device=args.device,
        gen_kwargs=parse_gen_kwargs(args.gen_kwargs),
        data_mirror=args.data_mirror,
    )
    with session_from_args(args) as session:
        results, run_dir = evaluate(spec, options, session)
        if args.dry_run:
            print(session.estimate_text())
    return finish_run(results, run_dir, dry_run=args.dry_run, leaderboard=args.leaderboard)
