"""``iopo-eval score``: compute metrics from stored judgements or rule checks, making no judge calls.

``score run RUN`` rescores a run with the current scoring code; ``score ifeval`` and ``score cfbench``
score files made outside iopo-eval (read by ``iopo_eval.importers``). A command that calls the judge
belongs to ``iopo-eval judge``, not here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from iopo_eval.commands.common import add_data_args
from iopo_eval.data.store import DataError
from iopo_eval.results import BenchmarkResult, new_run_id


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "score", help="recompute metrics from stored judgements or rule checks (no judge calls)"
    )
    ssub = p.add_subparsers(dest="score_command", metavar="SOURCE", required=True)
    q = ssub.add_parser(
        "run",
        help="rescore an iopo-eval run folder from its items files with the current scoring code",
    )
    q.add_argument("run", type=Path, help="run folder or its results.json")
    q.add_argument("--output", "-o", type=Path, help="write here instead of updating the run in place")
    add_data_args(q)
    q.set_defaults(func=rescore_run)
    register_ifeval(ssub)
    register_cfbench(ssub)


def rescore_run(args: argparse.Namespace) -> int:
    from iopo_eval import aggregate
    from iopo_eval.benchmarks import get
    from iopo_eval.report import summary
    from iopo_eval.results import load_results, read_items, write_items, write_results

    results, run_dir = load_results(args.run)
    out_dir = args.output or run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, result in list(results.benchmarks.items()):
        stored = read_items(run_dir / result.items_file)
        records, fresh = aggregate.rescore_result(get(name), result, stored, args.data_mirror)
        write_items(out_dir / fresh.items_file, records)
        results.benchmarks[name] = fresh
    if out_dir != run_dir:
        for extra in run_dir.glob("*.generations.jsonl"):
            shutil.copy2(extra, out_dir / extra.name)
    write_results(out_dir, results)
    print(summary(results))
    print(f"\nresults: {out_dir / 'results.json'}")
    return 0


def _print_metrics(result: BenchmarkResult, names: list[str], width: int) -> None:
    for name in names:
        m = result.metrics[name]
        print(f"{m.label:{width}s} {m.value:6.2f}  [{m.ci_low:.2f}, {m.ci_high:.2f}]  n={m.n}")


# ---------------------------------------------------------------- IFEval responses files


def register_ifeval(ssub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = ssub.add_parser(
        "ifeval",
        help="score IFEval responses from a JSONL file (Google's input_response_data format)",
        description='Score a JSONL of {"prompt", "response"} rows against IFEval without running a model.',
    )
    parser.add_argument(
        "--responses", type=Path, required=True, metavar="FILE", help="JSONL of prompt/response rows"
    )
    parser.add_argument(
        "--output", type=Path, metavar="DIR", help="run folder to write (default: runs/<run id>)"
    )
    add_data_args(parser)
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="score a file that covers only some prompts, skipping (and counting) rows whose prompt is not "
        "an IFEval prompt",
    )
    parser.set_defaults(func=score_ifeval)
    return parser


def score_ifeval(args: argparse.Namespace) -> int:
    from iopo_eval.importers.ifeval_responses import ResponsesError, score_responses_file

    out_dir = args.output or Path("runs") / new_run_id()
    try:
        run = score_responses_file(
            args.responses, out_dir, args.data_mirror, allow_partial=args.allow_partial
        )
    except (DataError, ResponsesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run.benchmarks["ifeval"]
    _print_metrics(result, ["prompt_strict", "prompt_loose", "inst_strict", "inst_loose"], 32)
    for reason, n in result.skipped_inputs.items():
        print(
            f"skipped {n} row(s) of the file ({reason}); they are named in results.json under model.skipped_rows"
        )
    if result.failures:
        print(f"not scored: {result.failure_text}")
    print(f"wrote {out_dir / 'results.json'} and {out_dir / result.items_file}")
    return 0


# ---------------------------------------------------------------- CFBench files judged upstream


def register_cfbench(ssub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = ssub.add_parser(
        "cfbench",
        help="score a CFBench file judged by upstream's evaluate script (no judge calls)",
        description=(
            "Recompute CSR/ISR/PSR (full, easy, hard) from a JSON list of CFBench rows with 'response' and "
            "'judge_response', reading each judge_response with upstream's strict and fallback rules."
        ),
    )
    parser.add_argument(
        "--judged", type=Path, required=True, metavar="FILE", help="upstream judged JSON file"
    )
    parser.add_argument(
        "--output", "-o", type=Path, metavar="DIR", help="run folder to write (default: runs/<run id>)"
    )
    add_data_args(parser)
    parser.add_argument(
        "--allow-partial", action="store_true", help="score a file that covers only some items"
    )
    parser.add_argument(
        "--counting",
        choices=("upstream", "strict"),
        default="upstream",
        help="upstream (default, the paper's): the fallback keeps only the 1s and unreadable replies score 0, "
        "as upstream's script does; strict: the fallback keeps its zeros and unreadable replies are failures",
    )
    parser.set_defaults(func=score_cfbench)
    return parser


def score_cfbench(args: argparse.Namespace) -> int:
    from iopo_eval.importers.cfbench_judged import JudgedFileError, score_judged_file
    from iopo_eval.judges.parse_cfbench_upstream import FAILED, FALLBACK, STRICT
    from iopo_eval.scoring.cfbench import METRICS, parse_state_counts

    out_dir = args.output or Path("runs") / new_run_id()
    try:
        run, records = score_judged_file(
            args.judged,
            out_dir,
            args.data_mirror,
            counting=args.counting,
            allow_partial=args.allow_partial,
        )
    except (DataError, JudgedFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run.benchmarks["cfbench"]
    _print_metrics(result, [spec.name for spec in METRICS], 12)
    states = parse_state_counts(records)
    print(f"parse states: strict {states[STRICT]}, fallback {states[FALLBACK]}, unreadable {states[FAILED]}")
    differ = sum(1 for r in records if r.extra.get("matches_stored") is False)
    if any("matches_stored" in r.extra for r in records):
        print(f"items whose stored judge_score/judge_parsing differ from this reading: {differ}")
    print(json.dumps({"failures": result.failures}, ensure_ascii=False))
    print(f"wrote {out_dir / 'results.json'} and {out_dir / result.items_file}")
    return 0
