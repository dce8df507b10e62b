"""Synthetic run results for tests, demos and the render benchmark.

Runs are written with the real writers of :mod:`iopo_eval.results` (items JSONL + results.json,
metrics aggregated by :func:`iopo_eval.results.compute_metrics`), with the metric keys the scorers
emit and realistic item counts. Nothing here is a measured number: every value follows from a
seeded random draw of per-item outcomes, so the figures a test checks are computed, never typed.

Item outcomes depend on a per-item difficulty that is drawn from the *benchmark's* seed, not the
run's, so two runs of the same benchmark are paired the way real runs of two checkpoints are: the
same items are hard for both.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from iopo_eval.results import (
    BenchmarkResult,
    Cost,
    ItemRecord,
    MetricSpec,
    RunResults,
    compute_metrics,
    count_failures,
    write_items,
    write_results,
)

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

HEADLINES: dict[str, list[MetricSpec]] = {
    "trace": [
        MetricSpec("if_s", "IF-S", headline=True),
        MetricSpec("if_m", "IF-M", headline=True),
        MetricSpec("if_all", "IF (all instructions)"),
        MetricSpec("constraint_pass", "Constraints at 10"),
        MetricSpec("mean_score", "Mean constraint score (0-10)", scale=1.0),
    ],
    "ifeval": [
        MetricSpec("prompt_strict", "S-Acc", headline=True),
        MetricSpec("prompt_loose", "L-Acc", headline=True),
        MetricSpec("inst_strict", "instruction strict"),
        MetricSpec("inst_loose", "instruction loose"),
    ],
    "cfbench": [
        MetricSpec("csr", "CSR", headline=True),
        MetricSpec("isr", "ISR", headline=True),
        MetricSpec("psr", "PSR", headline=True),
    ],
    "complexbench": [MetricSpec("drfr", "DRFR", headline=True)],
}
PREFIXES: dict[str, tuple[str, ...]] = {
    "trace": ("category/", "dimension/", "version/"),
    "ifeval": ("type/",),
    "cfbench": ("easy/", "hard/", "type/"),
    "complexbench": ("group/", "category/", "task_type/", "dimension/", "composition/", "coherent/"),
}
TASKS: dict[str, dict[str, str]] = {
    "trace": {"trace_ifs": "1.0", "trace_ifm": "1.0"},
    "ifeval": {"iopo_ifeval": "1.0"},
    "cfbench": {"cfbench": "1.0"},
    "complexbench": {"complexbench": "1.0"},
}
JUDGED = {"trace", "cfbench", "complexbench"}


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
    scores: list[float], reasons: list[str], spec: SyntheticRun, failed: bool
) -> dict[str, Any]:
    usage = {"prompt_tokens": 600 + 40 * len(scores), "completion_tokens": 60 + 30 * len(scores)}
    cost = (
        0.0 if spec.judge.smoke_test else usage["prompt_tokens"] * 2.5e-6 + usage["completion_tokens"] * 1e-5
    )
    if failed:
        return {
            "raw": "I cannot score this. " + spec.response_marker,
            "scores": None,
            "reasons": None,
            "error_kind": "parse_error",
            "error": "no Fine Grained Score block in the reply",
            "usage": usage,
            "cost_usd": cost,
            "judge_model": spec.judge.model,
        }
    raw = "Fine Grained Score: " + ", ".join(f"{s:g}" for s in scores)
    return {
        "raw": raw,
        "scores": scores,
        "reasons": reasons,
        "overall": float(np.mean(scores)),
        "usage": usage,
        "cost_usd": cost,
        "judge_model": spec.judge.model,
    }


def _trace_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("trace", n, spec)
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
            values["constraint_pass"] = [float(ok.sum()), float(k)]
            values["mean_score"] = [float(np.sum(scores)), float(k)]
            values[f"version/{version}"] = all_ok
            for c in set(cat_idx):
                sel = cat_idx == c
                values[f"category/{cats[c]}"] = [float(ok[sel].sum()), float(sel.sum())]
            for d in set(dims):
                sel = np.array([x == d for x in dims])
                values[f"dimension/{d}"] = [float(ok[sel].sum()), float(sel.sum())]
        items.append(
            ItemRecord(
                benchmark="trace",
                task="trace_ifs" if k == 1 else "trace_ifm",
                item_id=str(i),
                status="judge_failed" if failed else "ok",
                values=values,
                groups={
                    "constraints": k,
                    "version": version,
                    "categories": sorted({cats[c] for c in cat_idx}),
                },
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                judge=_judge_record(scores, reasons, spec, failed),
            )
        )
    return items


def _ifeval_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("ifeval", n, spec)
    items = []
    for i in range(n):
        k = int(oc.item_rng.integers(1, 4))
        types = [IFEVAL_TYPES[int(t)] for t in oc.item_rng.integers(0, len(IFEVAL_TYPES), size=k)]
        strict = oc.passes(i, k)
        loose = strict | (oc.run_rng.random(k) < 0.3)
        values: dict[str, Any] = {
            "prompt_strict": float(strict.all()),
            "prompt_loose": float(loose.all()),
            "inst_strict": [float(strict.sum()), float(k)],
            "inst_loose": [float(loose.sum()), float(k)],
        }
        for t in set(types):
            sel = np.array([x == t for x in types])
            values[f"type/{t}"] = [float(strict[sel].sum()), float(sel.sum())]
        items.append(
            ItemRecord(
                benchmark="ifeval",
                task="iopo_ifeval",
                item_id=str(1000 + i),
                status="ok",
                values=values,
                groups={"instruction_ids": types},
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                extra={"follow_strict": strict.tolist(), "follow_loose": loose.tolist()},
            )
        )
    return items


def _cfbench_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("cfbench", n, spec)
    items = []
    for i in range(n):
        level = "easy" if i < n // 2 else "hard"
        k = int(oc.item_rng.integers(2, 9)) + (2 if level == "hard" else 0)
        types = [CFBENCH_TYPES[int(t)] for t in oc.item_rng.integers(0, len(CFBENCH_TYPES), size=k)]
        ok = oc.passes(i, k, extra=0.5 if level == "hard" else -0.5)
        primary = ok[: max(1, k // 2)]
        failed = oc.run_rng.random() < spec.failure_rate
        scores = [1.0 if p else 0.0 for p in ok]
        values: dict[str, Any] = {}
        if not failed:
            csr, isr, psr = float(ok.mean()), float(ok.all()), float(primary.all())
            values.update({"csr": csr, "isr": isr, "psr": psr})
            values.update({f"{level}/csr": csr, f"{level}/isr": isr, f"{level}/psr": psr})
            for t in set(types):
                sel = np.array([x == t for x in types])
                values[f"type/{t}"] = [float(ok[sel].sum()), float(sel.sum())]
        items.append(
            ItemRecord(
                benchmark="cfbench",
                task="cfbench",
                item_id=f"cf-{i}",
                status="judge_failed" if failed else "ok",
                values=values,
                groups={"level": level, "types": sorted(set(types))},
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                judge=_judge_record(scores, ["met" if p else "missed" for p in ok], spec, failed),
            )
        )
    return items


def _complexbench_items(spec: SyntheticRun, n: int) -> list[ItemRecord]:
    oc = _Outcomes("complexbench", n, spec)
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
            values["drfr"] = [float(ok.sum()), float(k)]
            values[f"task_type/{task_type}"] = [float(ok.sum()), float(k)]
            values[f"composition/{composition}"] = [float(ok.sum()), float(k)]
            for key, labels in (("group", cats), ("dimension", dims)):
                for lab in set(labels):
                    sel = np.array([x == lab for x in labels])
                    values[f"{key}/{lab}"] = [float(ok[sel].sum()), float(sel.sum())]
            if composition == "Selection":
                values["coherent/origin_depth1"] = float(ok.all())
        items.append(
            ItemRecord(
                benchmark="complexbench",
                task="complexbench",
                item_id=f"cb-{i}",
                status="judge_failed" if failed else "ok",
                values=values,
                groups={"task_type": task_type, "composition": composition},
                response=_response(oc.run_rng, spec.response_chars, spec.response_marker),
                judge=_judge_record(
                    [10.0 if p else 0.0 for p in ok], ["yes" if p else "no" for p in ok], spec, failed
                ),
            )
        )
    return items


_MAKERS = {
    "trace": _trace_items,
    "ifeval": _ifeval_items,
    "cfbench": _cfbench_items,
    "complexbench": _complexbench_items,
}


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
    """Write one benchmark's items file and aggregate it the way the scorers do."""
    items_file = f"{benchmark}.items.jsonl"
    write_items(run_dir / items_file, items)
    spec_list = list(specs if specs is not None else HEADLINES[benchmark])
    metrics = compute_metrics(
        items, spec_list, dynamic_prefixes=PREFIXES.get(benchmark, ()), bootstrap_iters=bootstrap_iters
    )
    cost = Cost()
    for item in items:
        j = item.judge or {}
        usage = j.get("usage") or {}
        cost.add(
            Cost(
                calls=1 if j else 0,
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                usd=float(j.get("cost_usd", 0.0)),
            )
        )
    uses_judge = judge is not None and benchmark in JUDGED
    protocol: dict[str, Any] = {
        "scoring_version": "1",
        "data_sha256": hashlib.sha256(benchmark.encode()).hexdigest(),
    }
    if uses_judge:
        assert judge is not None
        protocol["judge_identity_hash"] = judge.identity_hash
    return BenchmarkResult(
        benchmark=benchmark,
        tasks=dict(task_versions or TASKS.get(benchmark, {benchmark: "1.0"})),
        protocol=protocol,
        metrics=metrics,
        headline=[s.name for s in spec_list if s.headline],
        n_items=len(items),
        n_scored=sum(1 for it in items if it.status == "ok"),
        failures=count_failures(items),
        cost=cost,
        judge=judge.public() if uses_judge and judge else None,
        smoke_test=bool(uses_judge and judge and judge.smoke_test),
        items_file=items_file,
        mean_response_chars=float(np.mean([len(it.response) for it in items])) if items else None,
    )


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
