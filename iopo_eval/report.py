"""Plain-text summaries of run results for the terminal and CI logs."""

from __future__ import annotations

import math

from iopo_eval.results import BenchmarkResult, RunResults

SMOKE_BANNER = (
    "SMOKE TEST: judged by the embedded SmolLM2-135M model. These numbers check the pipeline; "
    "they are not comparable with the paper (use GPT-4o or a strong judge)."
)


def _fmt(value: float, scale: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.2f}" if scale != 100.0 else f"{value:.1f}"


def benchmark_lines(name: str, result: BenchmarkResult) -> list[str]:
    lines = [f"## {name}" + ("  [smoke-test judge]" if result.smoke_test else "")]
    lines.append("| metric | value | 95% CI | n |")
    lines.append("|---|---|---|---|")
    for key in result.headline + [k for k in result.metrics if "/" not in k and k not in result.headline]:
        m = result.metrics.get(key)
        if m is None:
            continue
        ci = f"[{_fmt(m.ci_low, m.scale)}, {_fmt(m.ci_high, m.scale)}]"
        lines.append(f"| {m.label} | {_fmt(m.value, m.scale)} | {ci} | {m.n} |")
    failures = ", ".join(f"{k}: {v}" for k, v in sorted(result.failures.items())) or "none"
    lines.append("")
    lines.append(
        f"items: {result.n_items}, scored: {result.n_scored}, failures: {result.n_failed} ({failures})"
    )
    if result.skipped_inputs:
        skipped = ", ".join(f"{k}: {v}" for k, v in sorted(result.skipped_inputs.items()))
        lines.append(f"input rows skipped (not items of this benchmark): {skipped}")
    c = result.cost
    if result.judge:
        lines.append(
            f"judge: {result.judge.get('name')} ({result.judge.get('model')}), calls {c.calls}, cache hits "
            f"{c.cache_hits}, tokens {c.prompt_tokens}+{c.completion_tokens}, cost ${c.usd:.4f}"
        )
    return lines


def summary(results: RunResults) -> str:
    lines = [f"# run {results.run_id}: {results.model.get('name')}"]
    if results.smoke_test:
        lines += ["", SMOKE_BANNER]
    for name, bench in results.benchmarks.items():
        lines += ["", *benchmark_lines(name, bench)]
    return "\n".join(lines)
