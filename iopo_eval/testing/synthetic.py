"""Synthetic run results for tests, demos and the render benchmark.

Runs are written with the real writers of :mod:`iopo_eval.results` and aggregated by the real
:func:`iopo_eval.aggregate.build_result` of each registered benchmark: metric specs, breakdown
prefixes, task names, judges and protocol all come from the registry, so synthetic runs have the shape
of real ones. Item values use the metric keys the scorers emit, with realistic item counts. Nothing here
is a measured number: every value follows from a seeded random draw of per-item outcomes, so the figures
a test checks are computed, never typed.

Item outcomes depend on a per-item difficulty that is drawn from the *benchmark's* seed, not the
run's, so two runs of the same benchmark are paired the way real runs of two checkpoints are: the
same items are hard for both.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from iopo_eval.aggregate import build_result
from iopo_eval.benchmark import Benchmark
from iopo_eval.benchmarks import get
from iopo_eval.results import BenchmarkResult, ItemRecord, MetricSpec, RunResults, write_items, write_results

# Item counts of the real evaluation sets (protocols.md).
REAL_COUNTS = {"trace": 1042, "ifeval": 541, "cfbench": 1000, "complexbench": 1150}
ALL_BENCHMARKS = tuple(REAL_COUNTS)

TRACE_DIMENSIONS: dict[str, list[str]] = {
    "Content": ["Theme", "Exclusion", "Inclusion", "Value", "Privacy", "Numerical"],
    "Situation": [
        "Role-playing",
        "Target Audience",
        "Prior Condition",
        "Natural Language",
        "Markdown",
        "Table",
        "Text",
    ],
    "Style": ["Tone and Style", "Emotion", "Linguistic Characteristics", "Multilingual"],
    "Format": [
        "Output Format",
        "Text Pattern",
        "Grammar",
        "Citation",
        "Numbering",
        "Hierarchical",
        "Template",
    ],
    "Example": ["Positive", "Negative"],
}
IFEVAL_TYPES = [
    "punctuation:no_comma",
    "length_constraints:number_words",
    "detectable_format:title",
    "detectable_format:json_format",
    "change_case:english_lowercase",
    "keywords:existence",
    "keywords:forbidden_words",
    "startend:end_checker",
    "combination:repeat_prompt",
    "detectable_content:postscript",
]
CFBENCH_TYPES = [
    "Content",
    "Numerical",
    "Stylistic",
    "Format",
    "Linguistic",
    "Situation",
    "Example",
    "Inverse",
]
COMPLEX_CATEGORIES = ["Lexical", "Structure", "Semantic", "Utility"]
COMPLEX_TASK_TYPES = [
    "Fundamental Language Ability",
    "Advanced Chinese Understanding",
    "Open-ended QA",
    "Writing",
]
COMPLEX_COMPOSITIONS = ["Single", "And", "Chain", "Selection"]
COMPLEX_DIMENSIONS = ["Word Matching", "Length", "Format", "Sentiment", "Style", "Helpfulness", "Factuality"]


@dataclass
class JudgeSpec:
    name: str = "gpt-4o"
    model: str = "gpt-4o-2024-08-06"
    base_url: str = "https://api.openai.com/v1"
    temperature: float = 0.0
    prompt_version: str = "1"
    parser: str = "fine_grained_json"
    smoke_test: bool = False
    paper_protocol: bool = True  # the paper's model, prompt and sampling
    prompt_kind: str = "upstream"  # upstream's prompt (the default judges), "hardened" or "custom"

    @property
    def identity_hash(self) -> str:
        text = f"{self.model}|{self.temperature}|{self.prompt_version}|{self.parser}"
        return hashlib.sha256(text.encode()).hexdigest()

    def public(self) -> dict[str, Any]:
        """Shaped like ``JudgeConfig.summary()``: what a results file records about its judge."""
        return {
            "name": self.name,
            "model": self.model,
            "prompt_version": self.prompt_version,
            "parser": self.parser,
            "identity_hash": self.identity_hash,
            "smoke_test": self.smoke_test,
            "endpoint": self.base_url,
            "endpoint_host": urlsplit(self.base_url).netloc,
            "paper_comparable": self.paper_protocol and not self.smoke_test,
            "prompt_kind": self.prompt_kind,
        }


SMOKE_JUDGE = JudgeSpec(
    name="embedded-smollm2",
    model="SmolLM2-135M-Instruct.Q4_1",
    base_url="http://127.0.0.1:8089/v1",
    smoke_test=True,
)


@dataclass
class SyntheticRun:
    """What to write: a model name, a skill level (0-1) and which benchmarks with how many items."""

    model_name: str
    skill: float = 0.6
    seed: int = 0
    benchmarks: dict[str, int] = field(default_factory=lambda: dict(REAL_COUNTS))
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    failure_rate: float = 0.01
    response_chars: int = 400
    task_versions: dict[str, dict[str, str]] | None = None
    run_id: str | None = None
    created_at: str = "2026-01-01T00:00:00+00:00"
    # Text put into every response (tests use it for hostile content such as "<script>").
    response_marker: str = ""
    bootstrap_iters: int = 200


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


class _Outcomes:
    """Pass/fail draws that share per-item difficulty across runs of the same benchmark."""

    def __init__(self, benchmark: str, n: int, spec: SyntheticRun) -> None:
        bench_seed = int(hashlib.sha256(benchmark.encode()).hexdigest()[:8], 16)
        self.item_rng = np.random.default_rng(bench_seed)  # item structure: same for every run
        self.run_rng = np.random.default_rng([bench_seed, spec.seed])  # outcomes: this run's luck
        self.difficulty = self.item_rng.normal(0.0, 1.2, size=n)
        self.base = _logit(spec.skill)

    def passes(self, i: int, k: int, extra: float = 0.0) -> np.ndarray:
        # Per-constraint noise is small next to item difficulty, so runs stay strongly paired.
        p = 1 / (1 + np.exp(-(self.base - self.difficulty[i] - extra + self.run_rng.normal(0, 0.4, size=k))))
        return self.run_rng.random(k) < p


def _response(rng: np.random.Generator, chars: int, marker: str) -> str:
    words = ["回答", "constraint", "示例", "format", "内容", "style", "列表", "response", "——", "1."]
    out: list[str] = []
    total = 0
    target = max(1, int(rng.normal(chars, chars / 4)))
    while total < target:
        w = words[int(rng.integers(len(words)))]
        out.append(w)
        total += len(w) + 1
    return marker + " ".join(out)


def _judge_record(
    scores: list[float], reasons: list[str], spec: SyntheticRun, failed: bool, key: str
) -> dict[str, Any]:
    """The fields of a judge engine outcome that results read (cost accounting counts an outcome with a
    ``cache_key``); kept short, since the render benchmark's figures depend on the items' size."""
    usage = {"prompt_tokens": 600 + 40 * len(scores), "completion_tokens": 60 + 30 * len(scores)}
    cost = (
        0.0 if spec.judge.smoke_test else usage["prompt_tokens"] * 2.5e-6 + usage["completion_tokens"] * 1e-5
    )
    common = {
        "attempts": 1,
        "usage": usage,
        "cost_usd": cost,
        "cache_key": hashlib.sha256(f"{key}|{spec.seed}|{spec.judge.identity_hash}".encode()).hexdigest()[
            :16
        ],
        "judge_model": spec.judge.model,
    }
    if failed:
        return {
            **common,
            "raw": "I cannot score this. " + spec.response_marker,
            "scores": None,
            "reasons": None,
            "error_kind": "parse_error",
            "error": "no Fine Grained Score block in the reply",
        }
    raw = "Fine Grained Score: " + ", ".join(f"{s:g}" for s in scores)
    return {
        **common,
        "raw": raw,
        "scores": scores,
        "reasons": reasons,
        "overall": float(np.mean(scores)),
    }


def _pair(ok: np.ndarray) -> list[float]:
    return [float(ok.sum()), float(ok.size)]


def _trace_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("trace", n, spec)
    single, multi = get("trace").tasks
    cats = list(TRACE_DIMENSIONS)
    weights = np.array([0.47, 0.11, 0.10, 0.31, 0.01])
    items = []
    n_single = round(n * 200 / 1042)
    for i in range(n):
        k = 1 if i < n_single else int(oc.item_rng.integers(2, 16))
        cat_idx = oc.item_rng.choice(len(cats), size=k, p=weights)
        dims = [
            TRACE_DIMENSIONS[cats[c]][int(oc.item_rng.integers(len(TRACE_DIMENSIONS[cats[c]])))]
            for c in cat_idx
        ]
        version = "trace1.0" if i < n * 807 / 1042 else "trace2.0"
        ok = oc.passes(i, k)
        scores = [10.0 if p else float(oc.run_rng.integers(0, 10)) for p in ok]
        reasons = [("followed" if p else "not followed: ") + spec.response_marker for p in ok]
        failed = oc.run_rng.random() < spec.failure_rate
        values: dict[str, Any] = {}
        if not failed:
            all_ok = float(ok.all())
            values["if_s" if k == 1 else "if_m"] = all_ok
            values["if_all"] = all_ok
            values["empty_response"] = 0.0
            values["constraint_pass"] = _pair(ok)
            values["mean_score"] = [float(np.sum(scores)), float(k)]
            values["mean_overall"] = float(np.mean(scores))
            values[f"version/{version}"] = all_ok
            values[f"n_constraints/{k:02d}"] = all_ok
            for c in set(cat_idx):
                values[f"category/{cats[c]}"] = _pair(ok[cat_idx == c])
            for d in set(dims):
                values[f"dimension/{d}"] = _pair(ok[np.array([x == d for x in dims])])
        items.append(
            ItemRecord(
                benchmark="trace",
                task=single if k == 1 else multi,
                item_id=str(i),
                status="judge_failed" if failed else "ok",
                values=values,
                groups={
                    "subset": "single" if k == 1 else "multi",
                    "version": version,
                    "n_constraints": k,
                    "categories": sorted({cats[c] for c in cat_idx}),
                },
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                judge=_judge_record(scores, reasons, spec, failed, str(i)),
            )
        )
    return items


def _ifeval_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("ifeval", n, spec)
    (task,) = get("ifeval").tasks
    items = []
    for i in range(n):
        k = int(oc.item_rng.integers(1, 4))
        types = [IFEVAL_TYPES[int(t)] for t in oc.item_rng.integers(0, len(IFEVAL_TYPES), size=k)]
        strict = oc.passes(i, k)
        loose = strict | (oc.run_rng.random(k) < 0.3)
        values: dict[str, Any] = {
            "prompt_strict": float(strict.all()),
            "prompt_loose": float(loose.all()),
            "inst_strict": _pair(strict),
            "inst_loose": _pair(loose),
        }
        for t in set(types):
            values[f"type/{t}"] = _pair(strict[np.array([x == t for x in types])])
        items.append(
            ItemRecord(
                benchmark="ifeval",
                task=task,
                item_id=str(1000 + i),
                status="ok",
                values=values,
                groups={"instruction_ids": sorted(set(types)), "n_instructions": k},
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                extra={"follow_strict": strict.tolist(), "follow_loose": loose.tolist()},
            )
        )
    return items


def _cfbench_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("cfbench", n, spec)
    (task,) = get("cfbench").tasks
    items = []
    for i in range(n):
        level = "easy" if i < n // 2 else "hard"
        k = int(oc.item_rng.integers(2, 9)) + (2 if level == "hard" else 0)
        types = [CFBENCH_TYPES[int(t)] for t in oc.item_rng.integers(0, len(CFBENCH_TYPES), size=k)]
        ok = oc.passes(i, k, extra=0.5 if level == "hard" else -0.5)
        n_primary = max(1, k // 2)
        failed = oc.run_rng.random() < spec.failure_rate
        scores = [1.0 if p else 0.0 for p in ok]
        values: dict[str, Any] = {}
        if not failed:
            csr = round(float(ok.mean()), 2)
            isr, psr = float(csr == 1), float(ok[:n_primary].all())
            for name, value in (("csr", csr), ("isr", isr), ("psr", psr)):
                values[name] = value
                values[f"{level}/{name}"] = value
            for t in set(types):
                values[f"type/{t}"] = _pair(ok[np.array([x == t for x in types])])
            values["priority/primary"] = _pair(ok[:n_primary])
            if k > n_primary:
                values["priority/secondary"] = _pair(ok[n_primary:])
        items.append(
            ItemRecord(
                benchmark="cfbench",
                task=task,
                item_id=f"cf-{i}",
                status="judge_failed" if failed else "ok",
                values=values,
                groups={"split": level, "n_checkpoints": k, "types": sorted(set(types))},
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                judge=_judge_record(scores, ["met" if p else "missed" for p in ok], spec, failed, f"cf-{i}"),
            )
        )
    return items


def _complexbench_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("complexbench", n, spec)
    (task,) = get("complexbench").tasks
    items = []
    for i in range(n):
        k = int(oc.item_rng.integers(1, 8))
        cats = [COMPLEX_CATEGORIES[int(c)] for c in oc.item_rng.integers(0, len(COMPLEX_CATEGORIES), size=k)]
        dims = [COMPLEX_DIMENSIONS[int(c)] for c in oc.item_rng.integers(0, len(COMPLEX_DIMENSIONS), size=k)]
        task_type = COMPLEX_TASK_TYPES[int(oc.item_rng.integers(len(COMPLEX_TASK_TYPES)))]
        composition = COMPLEX_COMPOSITIONS[int(oc.item_rng.integers(len(COMPLEX_COMPOSITIONS)))]
        ok = oc.passes(i, k)
        failed = oc.run_rng.random() < spec.failure_rate
        values: dict[str, Any] = {}
        if not failed:
            values["drfr"] = _pair(ok)
            values["all_pass"] = float(ok.all())
            values["empty_response"] = 0.0
            values[f"task_type/{task_type}"] = _pair(ok)
            values[f"composition/{composition}"] = _pair(ok)
            for key, labels in (("group", cats), ("dimension", dims)):
                for lab in set(labels):
                    values[f"{key}/{lab}"] = _pair(ok[np.array([x == lab for x in labels])])
        selection = composition == "Selection"
        # One outcome stands for the item's k questions (real records hold one per question): the items
        # file keeps the size the render benchmark was measured with.
        judgement = _judge_record(
            [1.0 if p else 0.0 for p in ok], ["yes" if p else "no" for p in ok], spec, failed, f"cb-{i}"
        )
        items.append(
            ItemRecord(
                benchmark="complexbench",
                task=task,
                item_id=f"cb-{i}",
                status="judge_failed" if failed else "ok",
                values=values,
                groups={
                    "task_types": [task_type],
                    "nested": composition,
                    # Selection instances come in groups of three, one to three levels deep (coherent test:
                    # a group's depth is its first instance's number of Selection questions); the others
                    # share upstream's group None, whose first instance has none.
                    "main_id": i,
                    "group": f"g{i // 3}" if selection else None,
                    "selection_questions": 1 + (i // 3) % 3 if selection else 0,
                    "n_questions": k,
                },
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                judge={"judgements": [judgement], "error_kind": "parse_error" if failed else None},
            )
        )
    return items


_MAKERS = {
    "trace": _trace_items,
    "ifeval": _ifeval_items,
    "cfbench": _cfbench_items,
    "complexbench": _complexbench_items,
}


@functools.cache
def _task_versions(benchmark: str) -> dict[str, Any]:
    return get(benchmark).task_versions()


def _scored_as(bench: Benchmark[Any], specs: Iterable[MetricSpec] | None) -> Benchmark[Any]:
    """The registered benchmark, or a copy of it that computes only ``specs`` (tests with a hand-made
    table of one metric)."""
    if specs is None:
        return bench
    narrowed = copy.copy(bench)
    narrowed.metrics = tuple(specs)
    return narrowed


def benchmark_from_items(
    benchmark: str,
    items: list[ItemRecord],
    run_dir: Path,
    *,
    judge: JudgeSpec | None,
    task_versions: dict[str, str] | None = None,
    bootstrap_iters: int = 200,
    specs: Iterable[MetricSpec] | None = None,
) -> BenchmarkResult:
    """Write one benchmark's items file and aggregate it as a run does (``aggregate.build_result``)."""
    bench = _scored_as(get(benchmark), specs)
    judges = {role.name: judge.public() for role in bench.judges} if judge is not None else None
    result = build_result(
        bench,
        items,
        task_versions=task_versions or _task_versions(benchmark),
        judges=judges,
        bootstrap_iters=bootstrap_iters,
    )
    write_items(run_dir / result.items_file, items)
    return result


def write_run_from_items(
    run_dir: Path,
    model_name: str,
    items_by_benchmark: dict[str, list[ItemRecord]],
    *,
    judge: JudgeSpec | None = None,
    run_id: str | None = None,
    task_versions: dict[str, dict[str, str]] | None = None,
    bootstrap_iters: int = 200,
    specs: dict[str, list[MetricSpec]] | None = None,
) -> Path:
    """Write a run whose items a test built by hand (e.g. a known McNemar table)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    judge = judge if judge is not None else JudgeSpec()
    benchmarks = {
        b: benchmark_from_items(
            b,
            items,
            run_dir,
            judge=judge,
            task_versions=(task_versions or {}).get(b),
            bootstrap_iters=bootstrap_iters,
            specs=(specs or {}).get(b),
        )
        for b, items in items_by_benchmark.items()
    }
    results = RunResults(
        run_id=run_id or f"run-{model_name}",
        created_at="2026-01-01T00:00:00+00:00",
        model={"name": model_name, "backend": "hf", "model_args": f"pretrained={model_name}"},
        benchmarks=benchmarks,
        command=f"iopo-eval run --model hf --model_args pretrained={model_name}",
    )
    return write_results(run_dir, results)


def write_synthetic_run(run_dir: Path, spec: SyntheticRun) -> Path:
    """Draw a whole run (every benchmark in ``spec.benchmarks``) and write it; returns results.json."""
    run_dir.mkdir(parents=True, exist_ok=True)
    benchmarks: dict[str, BenchmarkResult] = {}
    for name, n in spec.benchmarks.items():
        items = _MAKERS[name](spec, n)
        benchmarks[name] = benchmark_from_items(
            name,
            items,
            run_dir,
            judge=spec.judge,
            task_versions=(spec.task_versions or {}).get(name),
            bootstrap_iters=spec.bootstrap_iters,
        )
    results = RunResults(
        run_id=spec.run_id or f"synthetic-{spec.seed}",
        created_at=spec.created_at,
        model={
            "name": spec.model_name,
            "backend": "hf",
            "model_args": f"pretrained=/ckpt/{spec.model_name}",
            "revision": "main",
            "chat_template_sha256": hashlib.sha256(b"template").hexdigest(),
            "generation": {"temperature": 0.0, "max_gen_toks": 2048},
        },
        benchmarks=benchmarks,
        command="iopo-eval run (synthetic)",
    )
    return write_results(run_dir, results)
