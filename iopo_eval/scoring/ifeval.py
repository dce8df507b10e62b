"""IFEval scoring: rule checks per instruction -> prompt/instruction accuracy, strict and loose (protocols.md §2).

The 25 checkers are lm-eval's port of Google's ``instructions.py``; the evaluation loop around them
follows Google's ``evaluation_lib.py`` rather than lm-eval's ``utils.py``:

- kwargs are passed to ``build_description`` exactly as the data row gives them (lm-eval drops falsy
  values; on the 541 upstream rows no value is falsy, so outcomes are the same, but a row that relied on
  a falsy value would differ);
- each row is validated so that no checker parameter is left to a random draw, with one documented
  exception: ``keywords:letter_frequency`` with a ``letter`` that is not an ASCII letter (keys 1122
  ``#`` and 1129 ``!``), where upstream draws a random letter. Here the literal character is counted;
- ``langdetect`` (``language:response_language``) is seeded, since it samples at random otherwise;
- reasoning blocks (``<think>…</think>``) are removed before checking; the raw text stays in the record.

Checkers are built once per prompt and shared by the strict and loose passes (upstream builds them twice,
which only matters for the random draws removed above).
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from iopo_eval.data.rows import read_jsonl, require
from iopo_eval.data.store import DataError, data_path, sha256_of
from iopo_eval.punkt import ensure_punkt
from iopo_eval.results import (
    BenchmarkResult,
    Cost,
    ItemRecord,
    MetricSpec,
    RunResults,
    compute_metrics,
    count_failures,
    mean_response_chars,
    new_run_id,
    write_single_run,
)

log = logging.getLogger(__name__)

BENCHMARK = "ifeval"
TASK = "ifeval_iopo"
# Keep equal to metadata.version in tasks/ifeval_iopo/ifeval_iopo.yaml (a test checks it).
TASK_VERSION = 1.0
SCORING_VERSION = "ifeval-scoring-1"
DATA_KEY = "ifeval/input"
ITEMS_FILE = "ifeval.items.jsonl"
LETTER_FREQUENCY = "keywords:letter_frequency"
LANGDETECT_SEED = 0

METRICS = [
    MetricSpec("prompt_strict", "S-Acc (prompt-level strict)", headline=True),
    MetricSpec("prompt_loose", "L-Acc (prompt-level loose)", headline=True),
    MetricSpec("inst_strict", "Instruction-level strict"),
    MetricSpec("inst_loose", "Instruction-level loose"),
]
BREAKDOWN_PREFIXES = ("type/",)


@cache
def instruction_registry() -> dict[str, type]:
    """lm-eval's checker classes by instruction id, imported only after the offline Punkt model is in
    place (the module calls ``nltk.download`` at import when it cannot find one)."""
    ensure_punkt()
    import langdetect
    from lm_eval.tasks.ifeval import instructions_registry

    # langdetect draws random samples unless seeded; a fixed seed makes language checks reproducible.
    langdetect.DetectorFactory.seed = LANGDETECT_SEED
    return dict(instructions_registry.INSTRUCTION_DICT)


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class IFEvalItem:
    key: int
    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...]

    def to_doc(self) -> dict[str, Any]:
        """An lm-eval document. kwargs travel as JSON text: an Arrow table would merge the per-row
        dicts into one struct and fill every absent key with None (as the HF copy of IFEval does)."""
        return {
            "key": self.key,
            "prompt": self.prompt,
            "instruction_id_list": list(self.instruction_id_list),
            "kwargs_json": json.dumps(list(self.kwargs), sort_keys=True),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> IFEvalItem:
        where = f"ifeval doc key {doc.get('key')!r}"
        row = dict(doc)
        if "kwargs_json" in row:
            try:
                row["kwargs"] = json.loads(row.pop("kwargs_json"))
            except (TypeError, json.JSONDecodeError) as exc:
                raise DataError(f"{where}: kwargs_json is not valid JSON ({exc})") from exc
        return parse_row(row, where)


def _is_ascii_letter(text: str) -> bool:
    return len(text) == 1 and "a" <= text.lower() <= "z"


def parse_row(row: dict[str, Any], where: str) -> IFEvalItem:
    """Validate one upstream row; every problem raises DataError naming the row."""
    key = require(row, "key", int, where)
    where = f"{where} (key {key})"
    prompt = require(row, "prompt", str, where)
    if not prompt.strip():
        raise DataError(f"{where}: empty prompt")
    ids = require(row, "instruction_id_list", list, where)
    kwargs = require(row, "kwargs", list, where)
    if not ids:
        raise DataError(f"{where}: instruction_id_list is empty")
    if len(ids) != len(kwargs):
        raise DataError(f"{where}: {len(ids)} instruction ids but {len(kwargs)} kwargs (must be aligned 1:1)")
    registry = instruction_registry()
    for i, (instruction_id, params) in enumerate(zip(ids, kwargs, strict=True)):
        if not isinstance(instruction_id, str) or instruction_id not in registry:
            close = difflib.get_close_matches(str(instruction_id), registry, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DataError(f"{where}: unknown instruction id {instruction_id!r}{hint}")
        if not isinstance(params, dict):
            raise DataError(f"{where}: kwargs[{i}] for {instruction_id} should be an object")
        expected = set(registry[instruction_id](instruction_id).get_instruction_args_keys() or [])
        missing, extra = expected - params.keys(), params.keys() - expected
        if extra:
            raise DataError(f"{where}: {instruction_id} takes no parameter(s) {sorted(extra)}")
        if missing:
            # Upstream would draw these at random, so the outcome would not be reproducible.
            raise DataError(f"{where}: {instruction_id} is missing parameter(s) {sorted(missing)}")
        nulls = sorted(k for k, v in params.items() if v is None)
        if nulls:
            raise DataError(f"{where}: {instruction_id} has null parameter(s) {nulls}")
        if instruction_id == LETTER_FREQUENCY and not (
            isinstance(params["letter"], str) and len(params["letter"]) == 1
        ):
            raise DataError(
                f"{where}: {instruction_id} letter must be one character, got {params['letter']!r}"
            )
        try:
            _build_checker(instruction_id, params, prompt)
        except (TypeError, ValueError) as exc:
            raise DataError(f"{where}: {instruction_id} rejects its parameters {params}: {exc}") from exc
    return IFEvalItem(
        key=key, prompt=prompt, instruction_id_list=tuple(ids), kwargs=tuple(dict(p) for p in kwargs)
    )


def load_ifeval(path: Path | None = None, mirror: str | None = None) -> list[IFEvalItem]:
    path = path or data_path(DATA_KEY, mirror)
    items: list[IFEvalItem] = []
    keys: set[int] = set()
    prompts: set[str] = set()
    for lineno, row in read_jsonl(path):
        item = parse_row(row, f"{path.name} line {lineno}")
        if item.key in keys:
            raise DataError(f"{path.name} line {lineno}: duplicate key {item.key}")
        if item.prompt in prompts:
            # Responses are matched to rows by prompt text (Google's input_response_data format).
            raise DataError(f"{path.name} line {lineno} (key {item.key}): duplicate prompt text")
        keys.add(item.key)
        prompts.add(item.prompt)
        items.append(item)
    if not items:
        raise DataError(f"{path}: no rows")
    return items


# ---------------------------------------------------------------- checking


def _build_checker(instruction_id: str, params: dict[str, Any], prompt: str) -> Any:
    checker = instruction_registry()[instruction_id](instruction_id)
    checker.build_description(**params)  # as given, like upstream's evaluation_lib
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    if instruction_id == LETTER_FREQUENCY and not _is_ascii_letter(params["letter"]):
        # Upstream replaces a non-letter with a random letter; count the literal character instead,
        # which is what the prompts ask for ("at least 4 hashtags", "6 or more exclamation marks").
        checker._letter = params["letter"].lower()
    return checker


def strip_thinking(text: str) -> str:
    """The answer part of a response. Text without think tags is returned unchanged (whitespace matters
    to some checks); otherwise the reasoning block is removed and the answer's surrounding whitespace
    with it (see iopo_eval.text.strip_reasoning for the rules on unpaired tags)."""
    if "<think>" not in text.lower() and "</think>" not in text.lower():
        return text
    from iopo_eval.text import strip_reasoning

    return strip_reasoning(text)


def loose_variants(response: str) -> list[str]:
    """The 8 texts of the loose check, in upstream's order: the response, without ``*``, without its
    first line, last line, both, and those three without ``*``."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


@dataclass(frozen=True)
class Outcome:
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]


def check_response(item: IFEvalItem, response: str) -> Outcome:
    """Strict and loose outcome of every instruction of the item for an (already stripped) response."""
    variants = loose_variants(response)
    strict: list[bool] = []
    loose: list[bool] = []
    for instruction_id, params in zip(item.instruction_id_list, item.kwargs, strict=True):
        checker = _build_checker(instruction_id, params, item.prompt)
        strict.append(bool(response.strip() and checker.check_following(response)))
        loose.append(any(v.strip() and checker.check_following(v) for v in variants))
    return Outcome(strict=tuple(strict), loose=tuple(loose))


def item_values(item: IFEvalItem, outcome: Outcome) -> dict[str, Any]:
    n = float(len(outcome.strict))
    values: dict[str, Any] = {
        "prompt_strict": float(all(outcome.strict)),
        "prompt_loose": float(all(outcome.loose)),
        "inst_strict": [float(sum(outcome.strict)), n],
        "inst_loose": [float(sum(outcome.loose)), n],
    }
    for instruction_id, ok in zip(item.instruction_id_list, outcome.strict, strict=True):
        num_den = values.setdefault(f"type/{instruction_id}", [0.0, 0.0])
        num_den[0] += float(ok)
        num_den[1] += 1.0
    return values


def score_response(item: IFEvalItem, raw_response: str) -> ItemRecord:
    """The per-item record: metric values, per-instruction outcomes, the raw text if it was stripped."""
    response = strip_thinking(raw_response)
    outcome = check_response(item, response)
    extra: dict[str, Any] = {
        "key": item.key,
        "instructions": [
            {"id": i, "kwargs": k, "strict": s, "loose": lo}
            for i, k, s, lo in zip(
                item.instruction_id_list, item.kwargs, outcome.strict, outcome.loose, strict=True
            )
        ],
    }
    if response != raw_response:
        extra["raw_response"] = raw_response
    return ItemRecord(
        benchmark=BENCHMARK,
        task=TASK,
        item_id=str(item.key),
        status="ok",
        values=item_values(item, outcome),
        groups={"instruction_ids": sorted(set(item.instruction_id_list)), "n_instructions": len(item.kwargs)},
        response=response,
        extra=extra,
    )


def protocol() -> dict[str, Any]:
    import importlib.metadata

    from iopo_eval.data.registry import get_file
    from iopo_eval.punkt import PUNKT_PACKAGE

    return {
        "scoring_version": SCORING_VERSION,
        "data_sha256": get_file(DATA_KEY).sha256,
        "checkers": f"lm-eval=={importlib.metadata.version('lm-eval')} lm_eval.tasks.ifeval",
        "punkt": f"{PUNKT_PACKAGE}=={importlib.metadata.version(PUNKT_PACKAGE)} english",
        "letter_frequency_non_letter": "literal character",
        "langdetect_seed": LANGDETECT_SEED,
        "reasoning": "<think> blocks removed",
    }


def benchmark_result(
    records: list[ItemRecord],
    *,
    task_versions: dict[str, Any] | None = None,
    n_items: int | None = None,
    failures: dict[str, int] | None = None,
    items_file: str = ITEMS_FILE,
    bootstrap_iters: int = 1000,
) -> BenchmarkResult:
    """Aggregate records. n_items / failures let a partial responses file say what it left out."""
    all_failures = count_failures(records)
    for reason, count in (failures or {}).items():
        all_failures[reason] = all_failures.get(reason, 0) + count
    return BenchmarkResult(
        benchmark=BENCHMARK,
        tasks=dict(task_versions or {TASK: TASK_VERSION}),
        protocol=protocol(),
        metrics=compute_metrics(records, METRICS, BREAKDOWN_PREFIXES, bootstrap_iters=bootstrap_iters),
        headline=[s.name for s in METRICS if s.headline],
        n_items=len(records) if n_items is None else n_items,
        n_scored=sum(r.status == "ok" for r in records),
        failures=all_failures,
        cost=Cost(),
        judge=None,
        smoke_test=False,
        items_file=items_file,
        mean_response_chars=mean_response_chars(records),
    )


def result_for(
    records: list[ItemRecord], task_versions: dict[str, Any], judge: dict[str, Any] | None = None
) -> BenchmarkResult:
    """The BenchmarkResult of a run (interface shared with the judged benchmarks; IFEval has no judge)."""
    return benchmark_result(records, task_versions=task_versions)


def from_samples(
    samples: dict[str, list[dict[str, Any]]],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None = None,
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Item records and results from lm-eval's logged samples of ifeval_iopo (raw generations)."""
    records = []
    for sample in samples.get(TASK, []):
        item = IFEvalItem.from_doc(sample["doc"])
        response = sample["filtered_resps"][0]
        if not isinstance(response, str):
            raise TypeError(
                f"{TASK} sample {sample.get('doc_id')}: expected a generated string, got {response!r}"
            )
        records.append(score_response(item, response))
    return records, result_for(records, task_versions, judge)


def rescore(
    records: list[ItemRecord],
    task_versions: dict[str, Any],
    judge: dict[str, Any] | None = None,
    mirror: str | None = None,
) -> tuple[list[ItemRecord], BenchmarkResult]:
    """Recompute every record from its raw response with the current scoring code and data."""
    items = {str(item.key): item for item in load_ifeval(mirror=mirror)}
    fresh = []
    for rec in records:
        if rec.item_id not in items:
            raise KeyError(f"ifeval item {rec.item_id!r} is not in the IFEval data")
        fresh.append(score_response(items[rec.item_id], rec.extra.get("raw_response", rec.response)))
    return fresh, result_for(fresh, task_versions, judge)


# ---------------------------------------------------------------- responses files


class ResponsesError(ValueError):
    """A responses file is malformed or does not match the IFEval prompts. The message names the line."""


@dataclass(frozen=True)
class SkippedRow:
    """A row of a responses file whose prompt IFEval does not contain (e.g. an older wording)."""

    line: int
    prompt: str
    closest_key: int | None  # the IFEval prompt it most resembles, if any


def read_responses(
    path: Path, items: Sequence[IFEvalItem]
) -> tuple[list[tuple[IFEvalItem, str]], list[SkippedRow]]:
    """Pair each row of a Google ``input_response_data`` JSONL with its dataset row, by prompt text.

    Rows whose prompt is not an IFEval prompt are returned apart, for the caller to refuse or skip."""
    by_prompt = {item.prompt: item for item in items}
    seen: dict[str, int] = {}
    pairs: list[tuple[IFEvalItem, str]] = []
    unknown: list[SkippedRow] = []
    if not path.is_file():
        raise ResponsesError(f"{path}: responses file not found")
    try:
        rows = list(read_jsonl(path))
    except DataError as exc:
        raise ResponsesError(str(exc)) from exc
    for lineno, row in rows:
        where = f"{path} line {lineno}"
        prompt, response = row.get("prompt"), row.get("response")
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise ResponsesError(f"{where}: needs string fields 'prompt' and 'response'")
        item = by_prompt.get(prompt)
        if item is None:
            close = difflib.get_close_matches(prompt, by_prompt, n=1, cutoff=0.9)
            unknown.append(SkippedRow(lineno, prompt, by_prompt[close[0]].key if close else None))
            continue
        if prompt in seen:
            raise ResponsesError(
                f"{where}: second response to the prompt of key {item.key} (first on line {seen[prompt]})"
            )
        seen[prompt] = lineno
        pairs.append((item, response))
    if not pairs and not unknown:
        raise ResponsesError(f"{path}: no rows")
    return pairs, unknown


def _describe_unknown(path: Path, row: SkippedRow) -> str:
    hint = f"; closest is key {row.closest_key}" if row.closest_key is not None else ""
    return f"{path} line {row.line}: prompt is not an IFEval prompt ({row.prompt[:80]!r}...){hint}"


def score_responses_file(
    path: Path, out_dir: Path, mirror: str | None, *, allow_partial: bool = False, command: str = ""
) -> RunResults:
    """Score a JSONL of {"prompt", "response"} rows without a model; write results.json and the items
    JSONL under out_dir. Every IFEval prompt must have a response, and every row must be an IFEval
    prompt, unless allow_partial: then prompts without a response are counted as failures
    ("no_response"), never scored, and rows whose prompt IFEval does not contain are named, skipped and
    counted (``skipped_inputs``)."""
    items = load_ifeval(mirror=mirror)
    pairs, unknown = read_responses(path, items)
    if unknown and not allow_partial:
        more = f" (and {len(unknown) - 1} more such rows)" if len(unknown) > 1 else ""
        raise ResponsesError(
            f"{_describe_unknown(path, unknown[0])}{more}; pass --allow-partial to skip such rows and "
            "score the rest"
        )
    if not pairs:
        raise ResponsesError(f"{path}: no row holds an IFEval prompt")
    for row in unknown:
        log.warning("skipped: %s", _describe_unknown(path, row))
    missing = len(items) - len(pairs)
    if missing and not allow_partial:
        answered = {item.key for item, _ in pairs}
        first = [item.key for item in items if item.key not in answered][:5]
        raise ResponsesError(
            f"{path}: {missing} of {len(items)} IFEval prompts have no response (first keys {first}); "
            "pass --allow-partial to score the rest"
        )
    order = {item.key: i for i, item in enumerate(items)}
    pairs.sort(key=lambda pair: order[pair[0].key])
    records = [score_response(item, response) for item, response in pairs]
    result = benchmark_result(
        records, n_items=len(items), failures={"no_response": missing} if missing else None
    )
    if unknown:
        result.skipped_inputs = {"unknown_prompt": len(unknown)}
    model: dict[str, Any] = {
        "backend": "responses-file",
        "name": path.stem,
        "responses_file": str(path),
        "responses_sha256": sha256_of(path),
    }
    if unknown:
        model["skipped_rows"] = [
            {"line": row.line, "reason": "unknown_prompt", "closest_key": row.closest_key} for row in unknown
        ]
    command = command or f"iopo-eval score ifeval --responses {path}"
    run = write_single_run(out_dir, command=command, model=model, result=result, records=records)
    return run


def register_score_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """``iopo-eval score ifeval``: added by iopo_eval.commands.score to its sub-command parsers."""
    parser = subparsers.add_parser(
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
    parser.add_argument(
        "--data-mirror", metavar="DIR", help="offline data mirror (default: $IOPO_EVAL_DATA_MIRROR)"
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="score a file that covers only some prompts, skipping (and counting) rows whose prompt is not "
        "an IFEval prompt",
    )
    parser.set_defaults(func=_run_score_command)
    return parser


def _run_score_command(args: argparse.Namespace) -> int:
    out_dir = args.output or Path("runs") / new_run_id()
    try:
        run = score_responses_file(
            args.responses, out_dir, args.data_mirror, allow_partial=args.allow_partial
        )
    except (DataError, ResponsesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = run.benchmarks[BENCHMARK]
    for name in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose"):
        metric = result.metrics[name]
        print(
            f"{metric.label:32s} {metric.value:6.2f}  [{metric.ci_low:.2f}, {metric.ci_high:.2f}]  n={metric.n}"
        )
    for reason, n in result.skipped_inputs.items():
        print(
            f"skipped {n} row(s) of the file ({reason}); they are named in results.json under model.skipped_rows"
        )
    if result.failures:
        print("not scored: " + ", ".join(f"{reason} {n}" for reason, n in sorted(result.failures.items())))
    print(f"wrote {out_dir / 'results.json'} and {out_dir / result.items_file}")
    return 0
