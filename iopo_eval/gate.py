"""The regression gate: is a candidate run significantly worse than a baseline run?

Both runs are compared item by item on the items they share (same benchmark, same ``item_id``, the
metric present in both), so item difficulty cancels out and small drops become detectable:

- a metric whose every shared item is a plain pass/fail (``0``/``1``) gets McNemar's exact test on
  the discordant items;
- any other metric (micro-averages ``[num, den]``, per-item means) gets a paired bootstrap of the
  difference of the two ratio estimates.

A metric *regresses* when the candidate is worse than the baseline by more than ``max_drop`` points
(on the metric's own display scale: percentage points for rates) **and** the drop is significant
at ``alpha`` (McNemar two-sided p, or the bootstrap's one-sided p for a drop). Runs whose task
versions, scoring protocol or judge identity differ are not compared unless the caller says so:
comparing numbers made under different rules is how silent regressions get through.

Exit codes: 0 no regression, 1 regression, 2 cannot compare.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iopo_eval.results import BenchmarkResult, ItemRecord, ResultsError, RunResults, load_results, read_items
from iopo_eval.stats import (
    DEFAULT_SEED,
    as_pair,
    discordant_counts,
    is_binary,
    mcnemar,
    paired_bootstrap,
    ratio,
)

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_CANNOT_COMPARE = 2


class GateError(Exception):
    """The two runs cannot be compared (the message says why)."""


@dataclass
class GateOptions:
    max_drop: float = 0.0  # allowed drop, in points of each metric's display scale
    alpha: float = 0.05
    metrics: list[str] | None = None  # "metric" or "benchmark:metric"; None = each benchmark's headline
    allow_protocol_mismatch: bool = False
    accept_failures: bool = False  # compare runs whose items are not all scored (judge failures, budget)
    iters: int = 2000
    seed: int = DEFAULT_SEED


@dataclass
class MetricCheck:
    benchmark: str
    metric: str
    label: str
    scale: float
    higher_is_better: bool
    test: str  # "mcnemar" | "paired-bootstrap"
    n_shared: int
    baseline: float  # display scale
    candidate: float
    delta: float  # candidate - baseline, display scale
    ci_low: float
    ci_high: float
    p_value: float
    discordant: tuple[int, int] | None  # (baseline-only passes, candidate-only passes) for McNemar
    regression: bool

    @property
    def worsening(self) -> float:
        """How much worse the candidate is, in points (negative when it is better)."""
        return -self.delta if self.higher_is_better else self.delta


@dataclass
class GateReport:
    baseline_path: str
    candidate_path: str
    options: GateOptions
    baseline: RunResults | None = None
    candidate: RunResults | None = None
    checks: list[MetricCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # reasons the runs cannot be compared
    notes: list[str] = field(default_factory=list)  # mismatches allowed by the caller, exclusions

    @property
    def exit_code(self) -> int:
        if self.problems:
            return EXIT_CANNOT_COMPARE
        if any(c.regression for c in self.checks):
            return EXIT_REGRESSION
        return EXIT_OK

    @property
    def verdict(self) -> str:
        return {
            EXIT_OK: "no regression",
            EXIT_REGRESSION: "REGRESSION",
            EXIT_CANNOT_COMPARE: "cannot compare",
        }[self.exit_code]

    def to_markdown(self) -> str:
        return render_markdown(self)

    def to_json(self) -> dict[str, Any]:
        """Machine-readable verdict for CI tooling (NaN written as null)."""

        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "exit_code": self.exit_code,
            "verdict": self.verdict,
            "baseline": {
                "path": self.baseline_path,
                "run_id": self.baseline.run_id if self.baseline else None,
            },
            "candidate": {
                "path": self.candidate_path,
                "run_id": self.candidate.run_id if self.candidate else None,
            },
            "options": dataclasses.asdict(self.options),
            "checks": [{k: clean(v) for k, v in dataclasses.asdict(c).items()} for c in self.checks],
            "problems": list(self.problems),
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------- protocol


def judge_identity(judge: dict[str, Any] | None) -> dict[str, Any] | None:
    """What decides a judge's verdicts: its identity hash where recorded, else model and prompt."""
    if not judge:
        return None
    if judge.get("identity_hash"):
        return {"identity_hash": judge["identity_hash"], "smoke_test": bool(judge.get("smoke_test"))}
    keys = ("model", "prompt_version", "parser", "temperature", "smoke_test")
    return {k: judge.get(k) for k in keys}


def protocol_differences(base: BenchmarkResult, cand: BenchmarkResult) -> list[str]:
    """Human-readable differences in what the two benchmark results were measured under."""
    out: list[str] = []
    name = base.benchmark
    # A task run by only one side is not a mismatch: its items are simply not shared.
    for task in sorted(set(base.tasks) & set(cand.tasks)):
        bv, cv = base.tasks[task], cand.tasks[task]
        if bv != cv:
            out.append(f"{name}: task {task} version {bv!r} (baseline) vs {cv!r} (candidate)")
    for key in sorted(set(base.protocol) | set(cand.protocol)):
        bv, cv = base.protocol.get(key), cand.protocol.get(key)
        if bv != cv:
            out.append(f"{name}: protocol {key} {_short(bv)} (baseline) vs {_short(cv)} (candidate)")
    bj, cj = judge_identity(base.judge), judge_identity(cand.judge)
    if bj != cj:
        out.append(f"{name}: judge {_short(bj)} (baseline) vs {_short(cj)} (candidate)")
    if base.smoke_test != cand.smoke_test:
        out.append(f"{name}: smoke-test judge {base.smoke_test} (baseline) vs {cand.smoke_test} (candidate)")
    return out


def scoring_notes(shared: list[str], base: RunResults, cand: RunResults) -> list[str]:
    """Runs scored by an older scoring version than this install's (the registry's): comparable with
    each other when both agree, but worth rescoring (``iopo-eval score run``) before trusting them."""
    from iopo_eval.benchmarks import BENCHMARKS

    notes = []
    for bench in shared:
        registered = BENCHMARKS.get(bench)
        if registered is None:
            continue
        for role, run in (("baseline", base), ("candidate", cand)):
            version = run.benchmarks[bench].protocol.get("scoring_version")
            if version != registered.scoring_version:
                notes.append(
                    f"{role} {bench}: scored with {version!r}, this install scores with "
                    f"{registered.scoring_version!r} (`iopo-eval score run` rescores a run without judge calls)"
                )
    return notes


def _load_text(load: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in load.items() if v is not None) or "defaults"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ---------------------------------------------------------------- pairing


def _index(items: list[ItemRecord], where: str) -> dict[str, ItemRecord]:
    out: dict[str, ItemRecord] = {}
    for item in items:
        if item.item_id in out:
            raise GateError(f"{where}: item_id {item.item_id!r} appears twice")
        out[item.item_id] = item
    return out


def paired_values(
    base: dict[str, ItemRecord], cand: dict[str, ItemRecord], metric: str
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(ids, base_num, base_den, cand_num, cand_den) over items where both runs have the metric."""
    ids = sorted(
        k for k in base.keys() & cand.keys() if metric in base[k].values and metric in cand[k].values
    )
    bn, bd, cn, cd = [], [], [], []
    for k in ids:
        b_num, b_den = as_pair(base[k].values[metric])
        c_num, c_den = as_pair(cand[k].values[metric])
        bn.append(b_num)
        bd.append(b_den)
        cn.append(c_num)
        cd.append(c_den)
    arr = [np.asarray(x, dtype=float) for x in (bn, bd, cn, cd)]
    return ids, arr[0], arr[1], arr[2], arr[3]


def compare_metric(
    benchmark: str,
    metric: str,
    spec: Any,
    base_num: np.ndarray,
    base_den: np.ndarray,
    cand_num: np.ndarray,
    cand_den: np.ndarray,
    options: GateOptions,
) -> MetricCheck:
    """Test one metric on its paired items. ``spec`` supplies label, scale and direction."""
    scale = float(getattr(spec, "scale", 100.0))
    higher = bool(getattr(spec, "higher_is_better", True))
    boot = paired_bootstrap(
        base_num, base_den, cand_num, cand_den, iters=options.iters, alpha=options.alpha, seed=options.seed
    )
    binary = is_binary(base_num, base_den) and is_binary(cand_num, cand_den)
    if binary:
        b, c = discordant_counts(base_num, cand_num)
        p_value = mcnemar(b, c)
        discordant: tuple[int, int] | None = (b, c)
    else:
        # paired_bootstrap's p is one-sided for a drop; for a lower-is-better metric a rise is the
        # worsening, which is the same test with the runs swapped (the same seed resamples the same items).
        p_value = (
            boot.p_value
            if higher
            else paired_bootstrap(
                cand_num,
                cand_den,
                base_num,
                base_den,
                iters=options.iters,
                alpha=options.alpha,
                seed=options.seed,
            ).p_value
        )
        discordant = None
    base_v, cand_v = ratio(base_num, base_den) * scale, ratio(cand_num, cand_den) * scale
    delta = cand_v - base_v
    worsening = -delta if higher else delta
    regression = bool(worsening > options.max_drop and p_value < options.alpha)
    return MetricCheck(
        benchmark=benchmark,
        metric=metric,
        label=str(getattr(spec, "label", metric)),
        scale=scale,
        higher_is_better=higher,
        test="mcnemar" if binary else "paired-bootstrap",
        n_shared=len(base_num),
        baseline=base_v,
        candidate=cand_v,
        delta=delta,
        ci_low=boot.ci_low * scale,
        ci_high=boot.ci_high * scale,
        p_value=float(p_value),
        discordant=discordant,
        regression=regression,
    )


# ---------------------------------------------------------------- the gate


def _selected_metrics(
    shared: list[str], base: RunResults, cand: RunResults, wanted: list[str] | None
) -> tuple[list[tuple[str, str]], list[str]]:
    """(benchmark, metric) pairs to test, and problems with the selection."""
    problems: list[str] = []
    if not wanted:
        pairs = [(b, m) for b in shared for m in base.benchmarks[b].headline]
        return pairs, problems
    pairs = []
    for spec in wanted:
        if ":" in spec:
            bench, metric = spec.split(":", 1)
            if bench not in shared:
                problems.append(
                    f"--metrics {spec}: benchmark {bench!r} is not in both runs (shared: {shared})"
                )
                continue
            if metric not in base.benchmarks[bench].metrics or metric not in cand.benchmarks[bench].metrics:
                problems.append(
                    f"--metrics {spec}: metric {metric!r} is not reported by both runs for {bench}"
                )
                continue
            pairs.append((bench, metric))
        else:
            found = [
                b for b in shared if spec in base.benchmarks[b].metrics and spec in cand.benchmarks[b].metrics
            ]
            if not found:
                problems.append(f"--metrics {spec}: no benchmark shared by both runs reports it")
            pairs.extend((b, spec) for b in found)
    return list(dict.fromkeys(pairs)), problems


def run_gate(baseline: str | Path, candidate: str | Path, options: GateOptions | None = None) -> GateReport:
    """Compare two runs; never raises for bad input: problems land in ``report.problems`` (exit 2)."""
    options = options or GateOptions()
    report = GateReport(str(baseline), str(candidate), options)
    try:
        base, base_dir = load_results(baseline)
        cand, cand_dir = load_results(candidate)
    except ResultsError as exc:
        report.problems.append(str(exc))
        return report
    report.baseline, report.candidate = base, cand

    loaded_b, loaded_c = base.model.get("load"), cand.model.get("load")
    if loaded_b and loaded_c and loaded_b != loaded_c:
        report.notes.append(
            f"the models were loaded differently: baseline {_load_text(loaded_b)}, candidate "
            f"{_load_text(loaded_c)}; "
            "part of any difference can come from that alone"
        )
    shared = sorted(base.benchmarks.keys() & cand.benchmarks.keys())
    if not shared:
        report.problems.append(
            f"no shared benchmark: baseline has {sorted(base.benchmarks)}, candidate has {sorted(cand.benchmarks)}"
        )
        return report

    report.notes.extend(scoring_notes(shared, base, cand))
    for bench in shared:
        diffs = protocol_differences(base.benchmarks[bench], cand.benchmarks[bench])
        if diffs and not options.allow_protocol_mismatch:
            report.problems.extend(diffs)
        else:
            report.notes.extend(f"allowed mismatch: {d}" for d in diffs)
    if report.problems:
        report.problems.append(
            "runs measured under different rules; pass --allow-protocol-mismatch to compare anyway"
        )
        return report

    incomplete = [
        f"{role} {bench}: {res.n_failed} of {res.n_items} items have no score ({res.failure_text})"
        for bench in shared
        for role, res in (("baseline", base.benchmarks[bench]), ("candidate", cand.benchmarks[bench]))
        if res.n_failed
    ]
    if incomplete and not options.accept_failures:
        report.problems.extend(incomplete)
        report.problems.append(
            "a run with unscored items is incomplete: rerun it (it resumes from the judge cache), or pass "
            "--accept-failures to compare the items both runs scored"
        )
        return report
    report.notes.extend(f"accepted: {text}" for text in incomplete)

    pairs, selection_problems = _selected_metrics(shared, base, cand, options.metrics)
    report.problems.extend(selection_problems)
    if not pairs and not report.problems:
        report.problems.append("no metric to compare (the benchmarks list no headline metrics)")
    if report.problems:
        return report

    indexed: dict[str, tuple[dict[str, ItemRecord], dict[str, ItemRecord]]] = {}
    for bench in sorted({b for b, _ in pairs}):
        try:
            b_items = _index(read_items(base_dir / base.benchmarks[bench].items_file), f"baseline {bench}")
            c_items = _index(read_items(cand_dir / cand.benchmarks[bench].items_file), f"candidate {bench}")
        except (ResultsError, GateError) as exc:
            report.problems.append(str(exc))
            continue
        indexed[bench] = (b_items, c_items)
        only_b, only_c = len(b_items.keys() - c_items.keys()), len(c_items.keys() - b_items.keys())
        if only_b or only_c:
            report.notes.append(
                f"{bench}: {only_b} item(s) only in the baseline and {only_c} only in the candidate are left out"
            )

    for bench, metric in pairs:
        if bench not in indexed:
            continue
        b_items, c_items = indexed[bench]
        ids, bn, bd, cn, cd = paired_values(b_items, c_items, metric)
        if not ids:
            in_base = any(metric in it.values for it in b_items.values())
            in_cand = any(metric in it.values for it in c_items.values())
            if in_base or in_cand:
                report.problems.append(f"{bench}:{metric}: no shared items with this metric in both runs")
            else:  # e.g. IF-M on a --limit run that drew only single-constraint items
                report.notes.append(f"{bench}:{metric}: measured by neither run (no item has it); not gated")
            continue
        spec = base.benchmarks[bench].metrics.get(metric)
        report.checks.append(compare_metric(bench, metric, spec, bn, bd, cn, cd, options))
    if not report.checks and not report.problems:
        report.problems.append("nothing to compare: no selected metric was measured by both runs")
    return report


# ---------------------------------------------------------------- markdown


def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def _cell(text: Any) -> str:
    """Markdown table cell: pipes and newlines from run data must not break the table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def render_markdown(report: GateReport) -> str:
    opts = report.options
    icon = {EXIT_OK: "✅", EXIT_REGRESSION: "❌", EXIT_CANNOT_COMPARE: "⚠️"}[report.exit_code]
    lines = [f"## {icon} iopo-eval gate: {report.verdict}", ""]

    def who(run: RunResults | None, path: str) -> str:
        if run is None:
            return _cell(path)
        return f"`{_cell(run.model.get('name', '?'))}` (run `{_cell(run.run_id)}`)"

    lines.append(f"- baseline: {who(report.baseline, report.baseline_path)}")
    lines.append(f"- candidate: {who(report.candidate, report.candidate_path)}")
    lines.append(
        f"- rule: regression = drop > {opts.max_drop:g} points and p < {opts.alpha:g} "
        "(McNemar exact for pass/fail metrics, paired bootstrap otherwise)"
    )
    lines.append("")
    if report.problems:
        lines.append("**Cannot compare:**")
        lines.extend(f"- {_cell(p)}" for p in report.problems)
        lines.append("")
    if report.checks:
        level = f"{100 * (1 - opts.alpha):g}%"
        lines.append(
            f"| benchmark | metric | shared items | baseline | candidate | Δ | {level} CI of Δ | test | p | verdict |"
        )
        lines.append("|---|---|---:|---:|---:|---:|---|---|---:|---|")
        for c in report.checks:
            test = c.test if c.discordant is None else f"McNemar (b={c.discordant[0]}, c={c.discordant[1]})"
            if c.regression:
                verdict = "❌ regression"
            elif c.worsening > opts.max_drop:
                verdict = "drop, not significant"
            else:
                verdict = "ok"
            lines.append(
                f"| {_cell(c.benchmark)} | {_cell(c.label)} (`{_cell(c.metric)}`) | {c.n_shared} | "
                f"{_fmt(c.baseline)} | {_fmt(c.candidate)} | {c.delta:+.2f} | "
                f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}] | {test} | {_fmt_p(c.p_value)} | {verdict} |"
            )
        lines.append("")
    if report.notes:
        lines.append("Notes:")
        lines.extend(f"- {_cell(n)}" for n in report.notes)
        lines.append("")
    smoke = [r for r in (report.baseline, report.candidate) if r is not None and r.smoke_test]
    if smoke:
        lines.append(
            "_Smoke-test judge: these verdicts come from a tiny offline judge, not a paper-grade one._"
        )
        lines.append("")
    return "\n".join(lines)
