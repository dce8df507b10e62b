"""``iopo-eval train build-data`` and ``iopo-eval train merge-data``.

    iopo-eval train build-data SEEDS.jsonl -o OUT [--llm CONFIG] [--judge CONFIG] [--shard i/n] [--dry-run] ...
    iopo-eval train merge-data SHARD_DIR... -o OUT

Without ``--llm`` (or with ``--llm embedded``) the generator is the embedded SmolLM2-135M model and, unless a
judge is named, the judge is the embedded smoke-test judge: an offline smoke test, labelled so. With
``--llm CONFIG``, a judge without an endpoint or key is the embedded one.
Exit codes: 0 every item finished; 2 bad input; 3 written, but some items failed or were not reached
(the summary says why; a rerun resumes and pays only for what is missing).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from iopo_eval.training.databuild.decontam import DEFAULT_N, EVAL_SETS
from iopo_eval.training.databuild.seeds import PACKAGED_SEEDS, parse_shard

log = logging.getLogger(__name__)
EMBEDDED = "embedded"
SMOKE_JUDGE_TEMPERATURE = 1.0
SMOKE_JUDGE_TEMPLATE = "smoke_judge_v1.txt"  # judges/templates: for the embedded 135M judge only
SMOKE_JUDGE_PARSER = "smoke_met"  # judges/parse_smoke.py
SMOKE_RETRIES = 3


def add_build_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "seeds",
        help=f"JSONL of seed instructions, one per row in a field (--field); a demo set: {PACKAGED_SEEDS}",
    )

    p.add_argument("-o", "--out", required=True, help="build folder (created; a rerun resumes it)")
    p.add_argument(
        "--field", default="instruction", help="the seeds' instruction field (default: instruction)"
    )
    p.add_argument("--limit", type=int, help="use only the first N seeds (after --shard)")
    p.add_argument(
        "--shard", help="i/n: build only the seeds of shard i of n (merge with `train merge-data`)"
    )
    g = p.add_argument_group(
        "models (every call goes through the judge engine: cache, retries, budget, cost)"
    )
    g.add_argument(
        "--llm", default=EMBEDDED,
        help="generator config: a bundled name (qwen2.5-72b-vllm, gpt-4o), a YAML path, or 'embedded' "
        "(default: the embedded SmolLM2-135M model, an offline smoke test)",
    )  # fmt: skip
    g.add_argument("--llm-base-url", help="OpenAI-compatible endpoint of the generator")
    g.add_argument("--llm-model", help="model name to ask the generator endpoint for")
    g.add_argument(
        "--judge", help="judge config (default: $IOPO_EVAL_JUDGE, else trace-gpt4o, the paper's judge)"
    )
    g.add_argument("--judge-base-url", help="OpenAI-compatible endpoint of the judge")
    g.add_argument("--judge-model", help="model name to ask the judge endpoint for")
    g.add_argument(
        "--no-embedded", action="store_true",
        help="fail instead of using the embedded smoke-test judge when the judge has no endpoint or key",
    )  # fmt: skip
    g.add_argument("--concurrency", type=int, help="calls in flight at once (default: each config's)")
    g.add_argument("--budget", type=float, metavar="USD", help="stop cleanly at this cost; a rerun resumes")
    g.add_argument("--dry-run", action="store_true", help="estimate calls, tokens and cost; make no call")
    g.add_argument("--cache", metavar="FILE", help="engine cache (default: OUT/cache.sqlite)")
    b = p.add_argument_group("what to build")
    b.add_argument("--taxonomy", metavar="FILE", help="a YAML that extends or changes the TRACE taxonomy")
    b.add_argument(
        "--distribution", default="paper",
        help="constraints per instruction: paper (default: the paper's training set, mean 4.36), eval, "
        "a range like 1-3, pairs like 1:5,2:3, or a YAML/JSON file",
    )  # fmt: skip
    b.add_argument("--candidates", type=int, default=4, help="responses sampled per instruction (default 4)")
    b.add_argument(
        "--pass-score",
        type=float,
        default=10.0,
        help="a constraint counts as followed at this judge score (default 10, the paper's all-10 rule)",
    )
    b.add_argument(
        "--remove-share",
        type=float,
        default=0.0,
        help="share of x2 made by removing a constraint rather than changing one (default 0)",
    )
    b.add_argument(
        "--seed", type=int, default=0, help="seed of the draws of constraint counts and dimensions"
    )
    b.add_argument(
        "--ngram", type=int, default=DEFAULT_N, help=f"decontamination n-gram length (default {DEFAULT_N})"
    )
    b.add_argument(
        "--skip-decontamination", action="append", default=[], choices=EVAL_SETS, metavar="SET",
        help=f"build without checking one evaluation set ({', '.join(EVAL_SETS)}); recorded in the report",
    )  # fmt: skip
    b.add_argument(
        "--chunk-size", type=int, default=1024, help="items per batch of calls; state is saved after each"
    )


def add_merge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shards", nargs="+", help="the shard folders of one build (all of 0..n-1)")
    p.add_argument("-o", "--out", required=True, help="folder for the merged outputs and report")


def _needs_embedded(config: Any) -> bool:
    return not config.base_url and not os.environ.get(config.api_key_env)


def _configs(args: argparse.Namespace, stack: contextlib.ExitStack) -> tuple[Any, Any]:
    """The generator and judge configs, starting the embedded server when one of them needs it."""
    from iopo_eval.judges.config import ENV_BASE_URL, ENV_JUDGE, JudgeConfigError, resolve_judge_config
    from iopo_eval.training.databuild.llm import EMBEDDED_GENERATOR, resolve_generator

    server: Any = None

    def embedded() -> Any:
        nonlocal server
        if server is None:
            if args.dry_run:  # no call is made: a stand-in address
                from types import SimpleNamespace

                from iopo_eval.embedded import EMBEDDED_MODEL_NAME

                server = SimpleNamespace(base_url="http://127.0.0.1:9/v1", model_name=EMBEDDED_MODEL_NAME)
            else:
                from iopo_eval.embedded import EmbeddedJudgeServer

                log.warning(
                    "starting the embedded SmolLM2-135M server: this build is a SMOKE TEST (the pipeline runs, "
                    "the data is not useful)"
                )
                server = stack.enter_context(EmbeddedJudgeServer())
        return server

    if args.llm == EMBEDDED:
        if args.llm_base_url:
            raise JudgeConfigError(
                "--llm-base-url needs --llm CONFIG (the embedded generator has its own server)"
            )
        generator = resolve_generator(EMBEDDED_GENERATOR)
        generator = generator.with_overrides(base_url=embedded().base_url, model=embedded().model_name)
    else:
        generator = resolve_generator(args.llm, args.llm_base_url, args.llm_model)
        if _needs_embedded(generator):
            raise JudgeConfigError(
                f"generator {generator.name!r} needs ${generator.api_key_env} or --llm-base-url (or use --llm embedded)"
            )
    judge = resolve_judge_config(args.judge, args.judge_base_url, args.judge_model)
    # Smoke-test data from the embedded generator is judged by the embedded judge too, unless a judge is
    # named explicitly: an API key in the environment alone should not pay GPT-4o to judge it.
    chosen = (
        args.judge,
        args.judge_base_url,
        args.judge_model,
        os.environ.get(ENV_JUDGE),
        os.environ.get(ENV_BASE_URL),
    )
    if _needs_embedded(judge) or (args.llm == EMBEDDED and not any(chosen)):
        if args.no_embedded and _needs_embedded(judge):
            raise JudgeConfigError(
                f"judge {judge.name!r} needs ${judge.api_key_env} or --judge-base-url (--no-embedded forbids the "
                "smoke-test judge)"
            )
        from iopo_eval.embedded import embedded_judge_config

        # Asked for 0-10 scores, the 135M judge copies the number that opens the hardened template's
        # placeholder ("<0-10>") and scores nearly every constraint 0, so no response would pass and the later
        # steps would never run. The smoke build asks it "met or not" instead (template smoke_judge_v1,
        # parser smoke_met: true -> 10, false -> 0), which it answers about evenly, and samples it without a
        # fixed seed so that a retry of a reply that breaks the format is a new sample. Its verdicts are noise
        # (a smoke test), but every step is exercised. Recorded in the manifest.
        judge = embedded_judge_config(judge, embedded()).with_overrides(
            name=f"{SMOKE_JUDGE_PARSER}@embedded-{embedded().model_name}",
            template=SMOKE_JUDGE_TEMPLATE,
            prompt_version=SMOKE_JUDGE_TEMPLATE.removesuffix(".txt"),
            parser=SMOKE_JUDGE_PARSER,
            temperature=SMOKE_JUDGE_TEMPERATURE,
            max_retries=SMOKE_RETRIES,
        )
        judge = dataclasses.replace(judge, seed=None)
    return generator, judge


def build_main(args: argparse.Namespace) -> int:
    from iopo_eval.training.databuild.pipeline import BuildSettings, prepare, run_build

    if not getattr(args, "verbose", False):  # one line per engine call is too much here; steps are logged
        logging.getLogger("iopo_eval.judges.engine").setLevel(logging.WARNING)
    with contextlib.ExitStack() as stack:
        generator, judge = _configs(args, stack)
        settings = BuildSettings(
            seeds=Path(args.seeds),
            out=Path(args.out),
            generator=generator,
            judge=judge,
            field=args.field,
            limit=args.limit,
            shard=parse_shard(args.shard) if args.shard else None,
            taxonomy_file=Path(args.taxonomy) if args.taxonomy else None,
            distribution=args.distribution,
            build_seed=args.seed,
            candidates=args.candidates,
            pass_score=args.pass_score,
            remove_share=args.remove_share,
            ngram=args.ngram,
            skip_decontamination=tuple(args.skip_decontamination),
            cache=Path(args.cache) if args.cache else None,
            concurrency=args.concurrency,
            budget_usd=args.budget,
            chunk_size=args.chunk_size,
        )
        if args.dry_run:
            from iopo_eval.judges.cache import JudgeCache
            from iopo_eval.training.databuild.estimate import estimate_build

            prepared = prepare(settings)
            cache_path = settings.cache or settings.out / "cache.sqlite"
            if cache_path.is_file():
                with JudgeCache(cache_path) as cache:
                    estimate = estimate_build(settings, prepared, cache)
            else:  # a fresh build: nothing is cached, and nothing is written for a dry run
                import tempfile

                with tempfile.TemporaryDirectory() as tmp, JudgeCache(Path(tmp) / "empty.sqlite") as cache:
                    estimate = estimate_build(settings, prepared, cache)
            print(json.dumps(estimate, indent=1))
            return 0
        code, report = run_build(settings)
    _summary(report, Path(args.out), code)
    return code


def _summary(report: dict[str, Any], out: Path, code: int) -> None:
    o = report["outputs"]
    cost = report["cost"]["this_run"]["total"]
    lines = [
        (
            "SMOKE TEST (embedded model or judge): the pipeline ran; the data is not useful. "
            if report["smoke_test"]
            else ""
        )
        + f"{report['seeds']['in_build']} seeds -> {o['instructions']} instructions, {o['sft']} SFT rows, "
        f"{o['dpo_pairs']} DPO pairs, {o['quadruples']} IOPO quadruples",
        f"this run: {cost['calls']:.0f} calls, {cost['cache_hits']:.0f} cache hits, ${cost['usd']:.4f}",
    ]
    failed = {r: n for p in report["phases"] for r, n in p["failed"].items()}
    pending = sum(p["pending"] for p in report["phases"])
    if code:
        lines.append(
            f"incomplete: {failed or ''} {pending} items not reached; rerun the same command to resume"
        )
    lines.append(f"report: {(out / 'report.html').resolve().as_uri()}")
    print("\n".join(lines))


def merge_main(args: argparse.Namespace) -> int:
    from iopo_eval.training.databuild.merge import merge_shards

    code, report = merge_shards([Path(s) for s in args.shards], Path(args.out))
    _summary(report, Path(args.out), code)
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m iopo_eval.training.databuild.cli SEEDS -o OUT ...`` (the same as ``iopo-eval train build-data``)."""
    from iopo_eval.cli import main as cli_main

    return cli_main(["train", "build-data", *(argv if argv is not None else sys.argv[1:])])


if __name__ == "__main__":
    sys.exit(main())
