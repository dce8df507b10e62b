"""The embedded default, measured in one run: conversion time (first call and the no-op second call),
judge server start-up, generation speed of the server at 1 and at 2 threads, and whether SmolLM2's
grammar-constrained replies to TRACE judge prompts parse.

    HF_HUB_OFFLINE=1 python benchmarks/embedded_model.py [--fresh-cache] [--items 4]

``--fresh-cache`` converts into a temporary cache (about 25 s on 2 cores) instead of reusing yours.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import openai

from iopo_eval.embedded import EmbeddedJudgeServer, ensure_hf_model
from iopo_eval.judges.config import load_judge_config
from iopo_eval.judges.parse import JudgeParseError, parse_trace_scores, trace_schema
from iopo_eval.judges.prompt import render

# TRACE-like items written for this benchmark: (task, constraints, response). Some responses break a
# constraint on purpose, so a judge has something to find.
ITEMS = [
    (
        "Describe the water cycle for a primary-school class.",
        ["Use at most three sentences.", "Do not use the word 'evaporation'.", "End with a question."],
        "Water rises from the sea as vapour, forms clouds and falls back as rain. Evaporation makes it "
        "climb. Where does the rain go next?",
    ),
    (
        "Write a product name for a reusable water bottle.",
        ["Answer with exactly two words.", "Both words start with the letter B."],
        "Blue Breeze",
    ),
    (
        "Summarise why sleep matters.",
        ["Write in the second person.", "Give exactly three bullet points.", "Mention memory.", "No emojis."],
        "- You recover physically while asleep.\n- Your memory consolidates what you learnt.\n- You think "
        "more clearly the next day.",
    ),
    (
        "Suggest a name for a cat.",
        ["Reply in French.", "Give one name only."],
        "How about Whiskers or Mittens?",
    ),
]


def measure_conversion(fresh: bool) -> None:
    started = time.perf_counter()
    path = ensure_hf_model()
    first = time.perf_counter() - started
    started = time.perf_counter()
    ensure_hf_model()
    second = time.perf_counter() - started
    kind = "fresh conversion" if fresh else "existing cache"
    print(f"ensure_hf_model ({kind}): first call {first:.2f} s, second call {second * 1000:.2f} ms -> {path}")


def measure_speed(n_threads: int) -> None:
    server = EmbeddedJudgeServer(n_threads=n_threads)
    started = time.perf_counter()
    with server:
        wall = time.perf_counter() - started
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        client.chat.completions.create(
            model=server.model_name, messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )  # warm-up
        rates = []
        for _ in range(2):
            t0 = time.perf_counter()
            reply = client.chat.completions.create(
                model=server.model_name,
                messages=[
                    {"role": "user", "content": "Write a long story about a dragon who learns to cook."}
                ],
                max_tokens=128,
                temperature=0,
            )
            rates.append(reply.usage.completion_tokens / (time.perf_counter() - t0))
        print(
            f"server n_threads={n_threads}: start {server.startup_s:.2f} s (start() returned after {wall:.2f} s), "
            f"{statistics.median(rates):.1f} completion tok/s (median of 2 x 128 tokens, prompt included)"
        )


def measure_judging(n_items: int) -> None:
    config = load_judge_config("smollm2-smoke")
    with EmbeddedJudgeServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)
        parsed = 0
        for task, constraints, response in ITEMS[:n_items]:
            n = len(constraints)
            prompt = render(
                config.template_text,
                {"query": task, "input": "", "constraints": constraints, "response": response},
                n_expected=n,
                truncation=config.truncation,
            )
            t0 = time.perf_counter()
            reply = client.chat.completions.create(
                model=server.model_name,
                messages=[{"role": "user", "content": prompt.text}],
                temperature=0,
                max_tokens=config.max_tokens,
                seed=config.seed,
                response_format={"type": "json_object", "schema": trace_schema(n)},  # type: ignore[typeddict-item]
            )
            elapsed = time.perf_counter() - t0
            text = reply.choices[0].message.content or ""
            try:
                result = parse_trace_scores(text, n)
                parsed += 1
                verdict = f"parsed, scores {result.scores}"
            except JudgeParseError as err:
                verdict = f"FAILED ({err.error_kind}: {err})"
            usage = reply.usage
            print(
                f"  item with {n} constraints: {usage.prompt_tokens} prompt + {usage.completion_tokens} "
                f"completion tokens in {elapsed:.1f} s; {verdict}"
            )
        print(f"TRACE-like judgements parsed: {parsed}/{n_items} (grammar-constrained json_object + schema)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh-cache", action="store_true", help="convert into a temporary cache")
    parser.add_argument("--items", type=int, default=len(ITEMS), help="TRACE-like items to judge")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fresh = tempfile.mkdtemp(prefix="iopo-eval-bench-") if args.fresh_cache else None
    if fresh:
        os.environ["IOPO_EVAL_CACHE"] = fresh
    try:
        measure_conversion(fresh is not None)
        for n_threads in (1, 2):
            measure_speed(n_threads)
        measure_judging(min(args.items, len(ITEMS)))
    finally:
        if fresh:
            shutil.rmtree(fresh, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
