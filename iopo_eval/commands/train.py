"""``iopo-eval train``: IOPO / DPO / SFT training runs, quadruple builders and the miniature replication.

iopo-eval train --method iopo --config iopo_qwen2_7b_lora [--set beta=0.2] [--output-dir DIR]
iopo-eval train recipes
iopo-eval train build-rules --n 200 --out quads.jsonl
iopo-eval train build-llm --input instructions.jsonl --out quads.jsonl --base-url URL --model NAME [--judge-model NAME]
    (every call through the judge engine: cached, budgeted with --budget, cost printed)
iopo-eval train replicate --out runs/mini
iopo-eval train build-data SEEDS.jsonl -o OUT [--llm CONFIG] [--judge CONFIG]   (training/databuild/README.md)
iopo-eval train merge-data SHARD_DIR... -o OUT
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train IOPO/DPO/SFT checkpoints, build quadruples, run the miniature replication",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from iopo_eval.training.run import add_arguments as add_training_arguments

    add_training_arguments(p, required=False)
    p.set_defaults(func=main, train_action=None)
    tsub = p.add_subparsers(dest="train_action", metavar="ACTION")

    tsub.add_parser("recipes", help="list the packaged recipes and launch configs").set_defaults(func=main)

    r = tsub.add_parser("build-rules", help="build checker-verified quadruples without an LLM")
    r.add_argument("--n", type=int, required=True, help="number of quadruples")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", required=True, help="output JSONL (quadruple format)")
    r.set_defaults(func=main)

    g = tsub.add_parser(
        "build-llm", help="build quadruples from TRACE-format instructions with an LLM endpoint"
    )
    g.add_argument(
        "--input", required=True, help="JSONL of TRACE-format rows (description, constraints_splits)"
    )
    g.add_argument("--out", required=True, help="output JSONL (quadruple format)")
    g.add_argument("--base-url", help="OpenAI-compatible base URL (default: the OpenAI API)")
    g.add_argument("--model", help="generator model (default: the bundled configs', gpt-4o-2024-08-06)")
    g.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    g.add_argument(
        "--judge-model", help="judge model; if set, keep only pairs the judge scores all-10 as intended"
    )
    g.add_argument("--judge-base-url", help="judge base URL (default: --base-url)")
    g.add_argument("--limit", type=int, help="use only the first N rows")
    g.add_argument("--concurrency", type=int, default=4, help="calls in flight per kind of call")
    g.add_argument(
        "--budget", type=float, metavar="USD", help="stop making calls at this cost; a rerun resumes"
    )
    g.add_argument(
        "--judge-cache",
        metavar="FILE",
        help="SQLite cache of every call (default: in the iopo-eval cache dir)",
    )
    g.set_defaults(func=main)

    from iopo_eval.training.databuild import cli as build_cli  # build-data / merge-data (training/databuild/)

    d = tsub.add_parser(
        "build-data", help="build TRACE-style SFT data, DPO pairs and IOPO quadruples from seeds"
    )
    build_cli.add_build_arguments(d)
    d.set_defaults(func=build_cli.build_main)
    mg = tsub.add_parser("merge-data", help="merge the --shard folders of a build-data run")
    build_cli.add_merge_arguments(mg)
    mg.set_defaults(func=build_cli.merge_main)

    from iopo_eval.training.replicate import add_arguments as add_replicate_arguments

    m = tsub.add_parser("replicate", help="miniature IOPO vs DPO replication on CPU (SmolLM2-135M, offline)")
    add_replicate_arguments(m)
    m.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    action = args.train_action
    if action is None:
        if not args.method or not args.config:
            print(
                "iopo-eval train: a training run needs --method and --config (or an ACTION)", file=sys.stderr
            )
            return 2
        from iopo_eval.training.run import train

        final = train(args.method, args.config, args.set, args.output_dir, args.resume)
        print(final)
        return 0
    if action == "recipes":
        from iopo_eval.training.run import RECIPES_DIR

        for path in sorted(RECIPES_DIR.glob("*.yaml")):
            first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
            print(f"{path.stem}\t{first}")
        print("\nlaunch configs (accelerate --config_file, or --set deepspeed=PATH):")
        for path in sorted((RECIPES_DIR.parent / "launch").glob("*.*")):
            print(f"  {path}")
        return 0
    if action == "build-rules":
        from iopo_eval.training.data import write_quadruples
        from iopo_eval.training.rule_builder import build_quadruples

        n = write_quadruples(args.out, build_quadruples(args.n, seed=args.seed))
        print(f"{n} quadruples written to {args.out}")
        return 0 if n == args.n else 1
    if action == "build-llm":
        from iopo_eval.training.llm_builder import EndpointSettings, build_from_trace_rows

        gen = EndpointSettings(base_url=args.base_url, model=args.model, api_key_env=args.api_key_env)
        judge = None
        if args.judge_model:
            judge = EndpointSettings(
                base_url=args.judge_base_url or args.base_url,
                model=args.judge_model,
                api_key_env=args.api_key_env,
                temperature=0.0,
            )
        report = build_from_trace_rows(
            args.input,
            args.out,
            gen,
            judge,
            args.limit,
            args.concurrency,
            cache_path=Path(args.judge_cache) if args.judge_cache else None,
            budget_usd=args.budget,
        )
        summary = {"rows": report.rows, "built": report.built, "skipped": report.skipped, "usd": report.usd}
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    if action == "replicate":
        from iopo_eval.training.replicate import run_from_args

        return run_from_args(args)
    raise AssertionError(action)
