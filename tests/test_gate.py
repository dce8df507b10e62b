"""The regression gate: paired statistics against known answers, and the gate's exit codes on runs
written by the real results writers (synthetic outcomes, never typed-in metric values)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from iopo_eval.commands import gate as gate_command
from iopo_eval.gate import EXIT_CANNOT_COMPARE, EXIT_OK, EXIT_REGRESSION, GateOptions, run_gate
from iopo_eval.results import ItemRecord, MetricSpec
from iopo_eval.stats import bootstrap_ci, discordant_counts, is_binary, mcnemar, paired_bootstrap
from iopo_eval.testing.synthetic import (
    JudgeSpec,
    SyntheticRun,
    write_run_from_items,
    write_synthetic_run,
)


def cli_main(argv: list[str]) -> int:
    """The real subcommand, parsed and dispatched as ``iopo-eval`` does, without importing the
    other subcommands (work in progress elsewhere must not break these tests)."""
    import argparse

    parser = argparse.ArgumentParser(prog="iopo-eval")
    gate_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


SMALL = {"trace": 150, "ifeval": 120, "cfbench": 120, "complexbench": 120}

# ---------------------------------------------------------------- statistics, known answers


@pytest.mark.parametrize(
    ("b", "c", "expected"),
    [
        # Two-sided exact binomial on the discordant items, computed by hand:
        (0, 0, 1.0),  # no discordant item: no evidence
        (3, 0, 2 * 1 / 8),  # n=3: P(X<=0) = 1/8
        (5, 1, 2 * (1 + 6) / 64),  # n=6: (C(6,0)+C(6,1)) / 2^6
        (2, 8, 2 * (1 + 10 + 45) / 1024),  # n=10, symmetric in b and c
        (10, 2, 2 * (1 + 12 + 66) / 4096),  # n=12: 0.0385742...
        (10, 0, 2 / 1024),
        (6, 6, 1.0),  # 2 * P(X<=6 of 12) > 1: capped
    ],
)
def test_mcnemar_exact_on_hand_made_tables(b: int, c: int, expected: float) -> None:
    assert mcnemar(b, c) == pytest.approx(expected, abs=1e-15)


def test_mcnemar_value_spelled_out() -> None:
    assert mcnemar(10, 2) == pytest.approx(0.03857421875, abs=1e-15)
    assert mcnemar(5, 1) == pytest.approx(0.21875, abs=1e-15)


def test_discordant_counts_and_binary_detection() -> None:
    base = np.array([1, 1, 1, 0, 0, 1, 0], dtype=float)
    cand = np.array([1, 0, 0, 0, 1, 1, 0], dtype=float)
    assert discordant_counts(base, cand) == (2, 1)
    ones = np.ones(7)
    assert is_binary(base, ones)
    assert not is_binary(np.array([0.5, 1.0]), np.ones(2))  # a per-item mean is not pass/fail
    assert not is_binary(np.array([1.0, 2.0]), np.array([1.0, 3.0]))  # micro-average pairs
    assert not is_binary(np.array([]), np.array([]))


def test_bootstrap_ci_of_two_items_is_the_full_range() -> None:
    # Resampling 2 items gives means 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
    # 97.5% quantiles are 0 and 1 (with 4000 draws each end is hit ~1000 times).
    lo, hi = bootstrap_ci(np.array([0.0, 1.0]), np.ones(2), iters=4000, seed=7)
    assert (lo, hi) == (0.0, 1.0)


def test_paired_bootstrap_constant_shift_collapses_to_the_shift() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(50)
    cand = base - 0.1  # every item 0.1 worse: every resample sees exactly -0.1
    res = paired_bootstrap(base, np.ones(50), cand, np.ones(50), iters=500, seed=3)
    assert res.delta == pytest.approx(-0.1)
    assert res.ci_low == pytest.approx(-0.1) and res.ci_high == pytest.approx(-0.1)
    assert res.p_value == pytest.approx(1 / 501)  # no resample is >= 0: only the +1 correction


def test_paired_bootstrap_identical_runs_give_p_one() -> None:
    x = np.array([0.2, 0.9, 0.4, 0.7])
    res = paired_bootstrap(x, np.ones(4), x.copy(), np.ones(4), iters=300)
    assert res.delta == 0.0 and res.p_value == 1.0 and res.ci_low == 0.0 == res.ci_high


def test_paired_bootstrap_interval_matches_the_normal_approximation() -> None:
    # For a mean of n iid paired differences the bootstrap interval approaches delta ± 1.96 sd/sqrt(n).
    rng = np.random.default_rng(42)
    n = 2000
    base = rng.normal(0.6, 0.2, n)
    cand = base + rng.normal(-0.02, 0.1, n)
    res = paired_bootstrap(base, np.ones(n), cand, np.ones(n), iters=4000, seed=11)
    d = cand - base
    half = 1.96 * d.std(ddof=1) / math.sqrt(n)
    assert res.delta == pytest.approx(d.mean())
    assert (res.ci_high - res.ci_low) / 2 == pytest.approx(half, rel=0.08)
    assert (res.ci_low + res.ci_high) / 2 == pytest.approx(d.mean(), abs=half * 0.1)


def test_paired_bootstrap_is_reproducible_by_seed() -> None:
    rng = np.random.default_rng(5)
    base, cand = rng.random(40), rng.random(40)
    one = paired_bootstrap(base, np.ones(40), cand, np.ones(40), iters=300, seed=9)
    two = paired_bootstrap(base, np.ones(40), cand, np.ones(40), iters=300, seed=9)
    other = paired_bootstrap(base, np.ones(40), cand, np.ones(40), iters=300, seed=10)
    assert one == two
    assert (one.ci_low, one.ci_high) != (other.ci_low, other.ci_high)


# ---------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gate-runs")
    specs = {
        "base": SyntheticRun("base-model", skill=0.7, seed=1, benchmarks=SMALL, bootstrap_iters=20),
        "same": SyntheticRun("same-model", skill=0.7, seed=1, benchmarks=SMALL, bootstrap_iters=20),
        "worse": SyntheticRun("worse-model", skill=0.35, seed=2, benchmarks=SMALL, bootstrap_iters=20),
        "better": SyntheticRun("better-model", skill=0.9, seed=3, benchmarks=SMALL, bootstrap_iters=20),
        "new_judge": SyntheticRun(
            "base-model",
            skill=0.7,
            seed=1,
            benchmarks=SMALL,
            bootstrap_iters=20,
            judge=JudgeSpec(model="gpt-4o-mini"),
        ),
        "new_version": SyntheticRun(
            "worse-model",
            skill=0.35,
            seed=2,
            benchmarks=SMALL,
            bootstrap_iters=20,
            task_versions={"trace": {"trace_ifs": "2.0", "trace_ifm": "1.0"}},
        ),
    }
    out = {}
    for name, spec in specs.items():
        spec.failure_rate = 0.0  # complete runs: a run with unscored items is refused (tested below)
        write_synthetic_run(root / name, spec)
        out[name] = root / name
    return out


def test_identical_runs_pass(runs: dict[str, Path]) -> None:
    report = run_gate(runs["base"], runs["same"], GateOptions(iters=300))
    assert report.exit_code == EXIT_OK, report.to_markdown()
    assert {(c.benchmark, c.metric) for c in report.checks} == {
        ("trace", "if_s"),
        ("trace", "if_m"),
        ("ifeval", "prompt_strict"),
        ("ifeval", "prompt_loose"),
        ("cfbench", "csr"),
        ("cfbench", "isr"),
        ("cfbench", "psr"),
        ("complexbench", "drfr"),
    }
    assert all(c.delta == 0 and c.p_value == 1.0 for c in report.checks)


def test_worse_candidate_fails_and_tests_match_metric_kinds(runs: dict[str, Path]) -> None:
    report = run_gate(runs["base"], runs["worse"], GateOptions(iters=300))
    assert report.exit_code == EXIT_REGRESSION, report.to_markdown()
    kinds = {c.metric: c.test for c in report.checks}
    assert kinds["if_s"] == kinds["prompt_strict"] == kinds["isr"] == "mcnemar"  # 0/1 per item
    assert kinds["csr"] == "paired-bootstrap"  # a per-item fraction
    assert kinds["drfr"] == "paired-bootstrap"  # micro-average [num, den]
    md = report.to_markdown()
    assert "REGRESSION" in md and "worse-model" in md


def test_better_candidate_passes(runs: dict[str, Path]) -> None:
    report = run_gate(runs["base"], runs["better"], GateOptions(iters=300))
    assert report.exit_code == EXIT_OK, report.to_markdown()
    assert all(c.delta > 0 for c in report.checks if c.metric in ("if_m", "drfr", "csr"))


def test_max_drop_allows_a_small_regression(runs: dict[str, Path]) -> None:
    strict = run_gate(runs["base"], runs["worse"], GateOptions(iters=300))
    worst = max(c.worsening for c in strict.checks)
    lenient = run_gate(runs["base"], runs["worse"], GateOptions(iters=300, max_drop=worst + 0.01))
    assert lenient.exit_code == EXIT_OK
    tight = run_gate(runs["base"], runs["worse"], GateOptions(iters=300, max_drop=worst - 0.01))
    assert tight.exit_code == EXIT_REGRESSION
    assert [c.metric for c in tight.checks if c.regression] == [
        c.metric for c in strict.checks if c.worsening == worst
    ]


def test_metric_selection(runs: dict[str, Path]) -> None:
    report = run_gate(runs["base"], runs["worse"], GateOptions(iters=200, metrics=["trace:if_m", "csr"]))
    assert [(c.benchmark, c.metric) for c in report.checks] == [("trace", "if_m"), ("cfbench", "csr")]
    breakdown = run_gate(
        runs["base"], runs["same"], GateOptions(iters=200, metrics=["trace:category/Content"])
    )
    assert breakdown.exit_code == EXIT_OK and breakdown.checks[0].test == "paired-bootstrap"
    unknown = run_gate(runs["base"], runs["same"], GateOptions(metrics=["trace:no_such_metric"]))
    assert unknown.exit_code == EXIT_CANNOT_COMPARE
    assert "no_such_metric" in unknown.to_markdown()


def test_judge_mismatch_refused_unless_allowed(runs: dict[str, Path]) -> None:
    report = run_gate(runs["base"], runs["new_judge"], GateOptions(iters=200))
    assert report.exit_code == EXIT_CANNOT_COMPARE
    assert any("judge" in p for p in report.problems)
    assert not report.checks
    allowed = run_gate(runs["base"], runs["new_judge"], GateOptions(iters=200, allow_protocol_mismatch=True))
    assert allowed.exit_code == EXIT_OK  # same outcomes, other judge label
    assert any("allowed mismatch" in n for n in allowed.notes)


def test_task_version_mismatch_refused_unless_allowed(runs: dict[str, Path]) -> None:
    report = run_gate(runs["base"], runs["new_version"], GateOptions(iters=200))
    assert report.exit_code == EXIT_CANNOT_COMPARE
    assert any("trace_ifs" in p and "'2.0'" in p for p in report.problems)
    allowed = run_gate(
        runs["base"], runs["new_version"], GateOptions(iters=200, allow_protocol_mismatch=True)
    )
    assert allowed.exit_code == EXIT_REGRESSION


def test_missing_and_truncated_files_cannot_compare(runs: dict[str, Path], tmp_path: Path) -> None:
    missing = run_gate(runs["base"], tmp_path / "nope", GateOptions())
    assert missing.exit_code == EXIT_CANNOT_COMPARE and "results file not found" in missing.problems[0]

    broken = tmp_path / "broken"
    write_synthetic_run(broken, SyntheticRun("b", seed=1, benchmarks={"trace": 30}, bootstrap_iters=10))
    items = broken / "trace.items.jsonl"
    items.write_text(items.read_text()[:-200], encoding="utf-8")  # cut mid-record
    base = tmp_path / "base"
    write_synthetic_run(base, SyntheticRun("a", seed=1, benchmarks={"trace": 30}, bootstrap_iters=10))
    report = run_gate(base, broken, GateOptions())
    assert report.exit_code == EXIT_CANNOT_COMPARE
    assert "trace.items.jsonl" in report.problems[0] and "truncated" in report.problems[0]

    (broken / "results.json").write_text("{", encoding="utf-8")
    assert run_gate(base, broken, GateOptions()).exit_code == EXIT_CANNOT_COMPARE


def _binary_items(outcomes: list[int], prefix: str = "") -> list[ItemRecord]:
    return [
        ItemRecord("trace", "trace_ifs", f"{prefix}{i}", "ok", values={"if_s": float(v)})
        for i, v in enumerate(outcomes)
    ]


IF_S_ONLY = {"trace": [MetricSpec("if_s", "IF-S", headline=True)]}


@pytest.mark.parametrize(
    ("b", "c", "expected_p", "expected_exit"),
    [
        (10, 0, 2 / 1024, EXIT_REGRESSION),
        (3, 0, 0.25, EXIT_OK),  # a drop of 3 items out of 40 is not significant
        (10, 2, 0.03857421875, EXIT_REGRESSION),
        (2, 10, 0.03857421875, EXIT_OK),  # significant, but an improvement
    ],
)
def test_gate_uses_exact_mcnemar_on_a_hand_made_table(
    tmp_path: Path, b: int, c: int, expected_p: float, expected_exit: int
) -> None:
    # 40 items: 20 both pass, b baseline-only, c candidate-only, the rest both fail.
    both = 20
    base = [1] * both + [1] * b + [0] * c
    cand = [1] * both + [0] * b + [1] * c
    base += [0] * (40 - len(base))
    cand += [0] * (40 - len(cand))
    write_run_from_items(
        tmp_path / "b", "base", {"trace": _binary_items(base)}, specs=IF_S_ONLY, bootstrap_iters=10
    )
    write_run_from_items(
        tmp_path / "c", "cand", {"trace": _binary_items(cand)}, specs=IF_S_ONLY, bootstrap_iters=10
    )
    report = run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=200))
    (check,) = report.checks
    assert check.test == "mcnemar" and check.discordant == (b, c)
    assert check.p_value == pytest.approx(expected_p, abs=1e-15)
    assert check.delta == pytest.approx((c - b) / 40 * 100)
    assert report.exit_code == expected_exit


def test_no_shared_items_cannot_compare(tmp_path: Path) -> None:
    write_run_from_items(tmp_path / "b", "x", {"trace": _binary_items([1, 0, 1], "a")}, specs=IF_S_ONLY)
    write_run_from_items(tmp_path / "c", "y", {"trace": _binary_items([1, 0, 1], "z")}, specs=IF_S_ONLY)
    report = run_gate(tmp_path / "b", tmp_path / "c", GateOptions())
    assert report.exit_code == EXIT_CANNOT_COMPARE
    assert any("no shared items" in p for p in report.problems)


def test_no_shared_benchmark_cannot_compare(tmp_path: Path) -> None:
    write_run_from_items(tmp_path / "b", "x", {"trace": _binary_items([1, 0])}, specs=IF_S_ONLY)
    ife = [ItemRecord("ifeval", "ifeval", "1", "ok", values={"prompt_strict": 1.0})]
    write_run_from_items(
        tmp_path / "c",
        "y",
        {"ifeval": ife},
        specs={"ifeval": [MetricSpec("prompt_strict", "S", headline=True)]},
    )
    report = run_gate(tmp_path / "b", tmp_path / "c", GateOptions())
    assert report.exit_code == EXIT_CANNOT_COMPARE and "no shared benchmark" in report.problems[0]


def test_lower_is_better_metric_regresses_when_it_rises(tmp_path: Path) -> None:
    spec = {"trace": [MetricSpec("latency", "latency", scale=1.0, higher_is_better=False, headline=True)]}
    rng = np.random.default_rng(1)
    base_vals = rng.normal(10, 1, 60)

    def items(vals: np.ndarray) -> list[ItemRecord]:
        return [
            ItemRecord("trace", "t", str(i), "ok", values={"latency": float(v)}) for i, v in enumerate(vals)
        ]

    write_run_from_items(tmp_path / "b", "x", {"trace": items(base_vals)}, specs=spec, bootstrap_iters=10)
    write_run_from_items(
        tmp_path / "up", "y", {"trace": items(base_vals + 2)}, specs=spec, bootstrap_iters=10
    )
    write_run_from_items(
        tmp_path / "down", "z", {"trace": items(base_vals - 2)}, specs=spec, bootstrap_iters=10
    )
    assert run_gate(tmp_path / "b", tmp_path / "up", GateOptions(iters=200)).exit_code == EXIT_REGRESSION
    assert run_gate(tmp_path / "b", tmp_path / "down", GateOptions(iters=200)).exit_code == EXIT_OK


def test_markdown_cells_escape_run_strings(tmp_path: Path) -> None:
    name = "evil|model\n<script>alert(1)</script>"
    write_run_from_items(tmp_path / "b", name, {"trace": _binary_items([1, 1, 0])}, specs=IF_S_ONLY)
    write_run_from_items(tmp_path / "c", name, {"trace": _binary_items([1, 1, 0])}, specs=IF_S_ONLY)
    md = run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50)).to_markdown()
    assert "<script>" not in md
    assert "evil\\|model" in md


# ---------------------------------------------------------------- command line


def test_cli_exit_codes_and_step_summary(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    args = ["gate", "--baseline", str(runs["base"]), "--iters", "200"]
    assert cli_main([*args, "--candidate", str(runs["same"] / "results.json")]) == EXIT_OK
    assert cli_main([*args, "--candidate", str(runs["worse"]), "--max-drop", "1"]) == EXIT_REGRESSION
    assert cli_main([*args, "--candidate", str(runs["new_judge"])]) == EXIT_CANNOT_COMPARE
    assert cli_main([*args, "--candidate", str(runs["new_judge"]), "--allow-protocol-mismatch"]) == EXIT_OK
    assert cli_main([*args, "--candidate", str(runs["same"]), "--alpha", "1.5"]) == EXIT_CANNOT_COMPARE
    out = capsys.readouterr().out
    assert out.count("## ") == 4  # one markdown summary per comparison that ran
    text = summary.read_text(encoding="utf-8")
    assert text.count("iopo-eval gate:") == 4 and "REGRESSION" in text and "cannot compare" in text

    verdict = tmp_path / "gate.json"
    assert cli_main([*args, "--candidate", str(runs["worse"]), "--json", str(verdict)]) == EXIT_REGRESSION
    doc = json.loads(verdict.read_text(encoding="utf-8"))
    assert doc["exit_code"] == 1 and doc["candidate"]["run_id"] == "synthetic-2"
    assert {c["metric"] for c in doc["checks"] if c["regression"]} >= {"if_m", "drfr"}


def test_console_script_end_to_end(runs: dict[str, Path]) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "iopo_eval.cli",
            "gate",
            "--baseline",
            str(runs["base"]),
            "--candidate",
            str(runs["worse"]),
            "--metrics",
            "ifeval:prompt_strict",
            "--iters",
            "100",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EXIT_REGRESSION, proc.stderr
    assert "| ifeval | S-Acc (prompt-level strict) (`prompt_strict`)" in proc.stdout
    results = json.loads((runs["worse"] / "results.json").read_text())
    assert results["model"]["name"] == "worse-model"


def test_example_workflow_calls_gate_and_leaderboard_with_real_flags() -> None:
    """The CI example must not drift from the commands: parse its gate and leaderboard calls."""
    import argparse
    import re
    import shlex

    import yaml

    from iopo_eval.commands import judge as judge_command
    from iopo_eval.commands import leaderboard as leaderboard_command
    from iopo_eval.commands import run as run_command

    workflow = yaml.safe_load(
        (Path(__file__).parents[1] / "examples" / "evaluate-checkpoint.yml").read_text()
    )
    scripts = [step.get("run", "") for job in workflow["jobs"].values() for step in job.get("steps", [])]
    parser = argparse.ArgumentParser(prog="iopo-eval")
    sub = parser.add_subparsers(dest="command")
    gate_command.register(sub)
    leaderboard_command.register(sub)
    run_command.register(sub)
    judge_command.register(sub)
    seen = set()
    for script in scripts:
        joined = re.sub(r"\\\n\s*", " ", script)
        for line in joined.splitlines():
            line = re.sub(r"\$\{\{[^}]*\}\}", "1", line.strip())  # inputs: numbers or paths
            line = re.sub(r'"\$[a-z_]+"', "runs/x", line)  # shell variables holding run folders
            if re.match(r"iopo-eval (gate|leaderboard|run|judge)\b", line):
                args = parser.parse_args(shlex.split(line)[1:])
                seen.add(args.command)
    assert seen == {"gate", "leaderboard", "run", "judge"}


def test_metric_measured_by_neither_run_is_noted_not_gated(tmp_path: Path) -> None:
    specs = {"trace": [MetricSpec("if_s", "IF-S", headline=True), MetricSpec("if_m", "IF-M", headline=True)]}
    write_run_from_items(tmp_path / "b", "x", {"trace": _binary_items([1, 1, 0])}, specs=specs)
    write_run_from_items(tmp_path / "c", "y", {"trace": _binary_items([1, 1, 0])}, specs=specs)
    report = run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50))
    assert report.exit_code == EXIT_OK and [c.metric for c in report.checks] == ["if_s"]
    assert any("if_m: measured by neither run" in n for n in report.notes)


def test_all_judgements_failed_in_candidate_cannot_compare(tmp_path: Path) -> None:
    failed = [ItemRecord("trace", "trace_ifs", str(i), "judge_failed", values={}) for i in range(3)]
    write_run_from_items(tmp_path / "b", "x", {"trace": _binary_items([1, 1, 0])}, specs=IF_S_ONLY)
    write_run_from_items(tmp_path / "c", "y", {"trace": failed}, specs=IF_S_ONLY)
    report = run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50, accept_failures=True))
    assert report.exit_code == EXIT_CANNOT_COMPARE
    assert report.problems == ["trace:if_s: no shared items with this metric in both runs"]


def test_a_run_with_failed_items_is_refused_unless_accepted(tmp_path: Path) -> None:
    """A partial run (judge failures left after the retries) must not pass a CI gate unnoticed."""
    ok = _binary_items([1, 1, 0, 1])
    partial = [*_binary_items([1, 1, 0]), ItemRecord("trace", "trace_ifs", "3", "judge_failed", values={})]
    partial[-1].judge = {"error_kind": "judge_timeout"}
    write_run_from_items(tmp_path / "b", "x", {"trace": ok}, specs=IF_S_ONLY)
    write_run_from_items(tmp_path / "c", "y", {"trace": partial}, specs=IF_S_ONLY)
    refused = run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50))
    assert refused.exit_code == EXIT_CANNOT_COMPARE
    assert "candidate trace: 1 of 4 items have no score (judge_timeout 1)" in refused.problems
    assert any("--accept-failures" in p for p in refused.problems)
    assert cli_main(["gate", "--baseline", str(tmp_path / "b"), "--candidate", str(tmp_path / "c")]) == 2

    accepted = run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50, accept_failures=True))
    assert accepted.exit_code == EXIT_OK and accepted.checks[0].n_shared == 3
    assert any(n.startswith("accepted: candidate trace: 1 of 4") for n in accepted.notes)
    argv = [
        "gate",
        "--baseline",
        str(tmp_path / "b"),
        "--candidate",
        str(tmp_path / "c"),
        "--accept-failures",
    ]
    assert cli_main(argv) == 0


def test_task_run_by_one_side_only_is_not_a_version_mismatch(tmp_path: Path) -> None:
    items = {"trace": _binary_items([1, 0, 1])}
    write_run_from_items(
        tmp_path / "b", "x", items, specs=IF_S_ONLY, task_versions={"trace": {"trace_ifs": "1.0"}}
    )
    both = {"trace": {"trace_ifs": "1.0", "trace_ifm": "1.0"}}
    write_run_from_items(tmp_path / "c", "y", items, specs=IF_S_ONLY, task_versions=both)
    assert run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50)).exit_code == EXIT_OK


def test_a_run_scored_by_an_older_scoring_version_is_noted(tmp_path: Path) -> None:
    """The gate reads the registry: a run whose scoring version is not this install's gets a note."""
    items = {"trace": _binary_items([1, 0, 1])}
    write_run_from_items(tmp_path / "b", "x", items, specs=IF_S_ONLY)
    write_run_from_items(tmp_path / "c", "y", items, specs=IF_S_ONLY)
    assert not any(
        "scoring" in n for n in run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50)).notes
    )
    for run in ("b", "c"):
        path = tmp_path / run / "results.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc["benchmarks"]["trace"]["protocol"]["scoring_version"] = "trace-scoring-0"
        path.write_text(json.dumps(doc), encoding="utf-8")
    report = run_gate(tmp_path / "b", tmp_path / "c", GateOptions(iters=50))
    assert report.exit_code == EXIT_OK  # both old: comparable with each other
    assert any(n.startswith("candidate trace: scored with 'trace-scoring-0'") for n in report.notes)
