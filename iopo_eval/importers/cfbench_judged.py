"""Reader of CFBench files judged by upstream's own evaluate script (``iopo-eval score cfbench``).

Such a file is a JSON list of CFBench rows with the model's ``response`` and the judge's reply
``judge_response`` (and optionally upstream's own ``judge_score`` / ``judge_parsing``). Every row is
checked against the pinned data; each reply is read again with upstream's strict and fallback rules
(``scoring.cfbench.upstream_record``); no judge is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iopo_eval.aggregate import build_result
from iopo_eval.data.cfbench import CFBenchItem, load_cfbench, parse_row
from iopo_eval.data.rows import read_json_list
from iopo_eval.data.store import DataError, sha256_of
from iopo_eval.results import ItemRecord, RunResults, write_single_run
from iopo_eval.scoring.cfbench import CFBENCH, Counting, check_counting, counting_flags, upstream_record


class JudgedFileError(ValueError):
    """A judged file is malformed or does not match the CFBench data. The message names the row."""


def read_judged_file(path: Path) -> list[tuple[CFBenchItem, str, str, dict[str, Any]]]:
    """Rows of upstream's judged format: the data row plus ``response`` and ``judge_response`` (and
    optionally upstream's own ``judge_score`` / ``judge_parsing``, kept for comparison)."""
    if not path.is_file():
        raise JudgedFileError(f"{path}: judged file not found")
    try:
        rows = read_json_list(path)
    except DataError as exc:
        raise JudgedFileError(str(exc)) from exc
    out = []
    seen: dict[int, int] = {}
    for i, row in enumerate(rows):
        where = f"{path} row {i}"
        try:
            item = parse_row(row, where)
        except DataError as exc:
            raise JudgedFileError(str(exc)) from exc
        for field in ("response", "judge_response"):
            if not isinstance(row.get(field), str):
                raise JudgedFileError(f"{where} (idx {item.idx}): needs a string field {field!r}")
        if item.idx in seen:
            raise JudgedFileError(f"{where}: second row for idx {item.idx} (first at row {seen[item.idx]})")
        seen[item.idx] = i
        stored: dict[str, Any] = {k: row[k] for k in ("judge_score", "judge_parsing") if k in row}
        out.append((item, row["response"], row["judge_response"], stored))
    if not out:
        raise JudgedFileError(f"{path}: no rows")
    return out


def _check_against_data(
    path: Path, rows: list[tuple[CFBenchItem, str, str, dict[str, Any]]], data: list[CFBenchItem]
) -> None:
    by_idx = {item.idx: item for item in data}
    for i, (item, *_rest) in enumerate(rows):
        ref = by_idx.get(item.idx)
        if ref is None:
            raise JudgedFileError(f"{path} row {i}: idx {item.idx} is not in the CFBench data")
        if item.prompt != ref.prompt or item.criteria != ref.criteria:
            raise JudgedFileError(
                f"{path} row {i} (idx {item.idx}): prompt or criteria differ from the pinned CFBench data "
                "(a different version of the benchmark?)"
            )


def score_judged_file(
    path: Path,
    out_dir: Path,
    mirror: str | None = None,
    *,
    counting: Counting = "upstream",
    allow_partial: bool = False,
    bootstrap_iters: int = 1000,
) -> tuple[RunResults, list[ItemRecord]]:
    """Score a file judged by upstream's script, with no judge calls; write results.json and the items
    JSONL under ``out_dir``. Every CFBench item must be present unless ``allow_partial``. ``counting``:
    ``upstream`` (the fallback's zeros dropped, unreadable replies scored 0, as upstream's script does) or
    ``strict`` (zeros kept, unreadable replies counted as failures)."""
    keep_zeros, failed_as_zero = counting_flags(check_counting(counting, "score cfbench"))
    rows = read_judged_file(path)
    data = load_cfbench(mirror=mirror)
    _check_against_data(path, rows, data)
    missing = len(data) - len(rows)
    if missing and not allow_partial:
        have = {item.idx for item, *_ in rows}
        first = [item.idx for item in data if item.idx not in have][:5]
        raise JudgedFileError(
            f"{path}: {missing} of {len(data)} CFBench items are missing (first idx {first}); "
            "pass --allow-partial to score the rest"
        )
    rows.sort(key=lambda row: row[0].idx)
    records = [
        upstream_record(
            item,
            response,
            judge_response,
            keep_zeros=keep_zeros,
            failed_as_zero=failed_as_zero,
            stored=stored,
        )
        for item, response, judge_response, stored in rows
    ]
    result = build_result(
        CFBENCH,
        records,
        n_items=len(records) + missing,
        extra_failures={"no_response": missing} if missing else None,
        bootstrap_iters=bootstrap_iters,
    )
    model = {
        "backend": "judged-file",
        "name": path.stem,
        "judged_file": str(path),
        "judged_sha256": sha256_of(path),
    }
    command = f"iopo-eval score cfbench --judged {path}"
    run = write_single_run(out_dir, command=command, model=model, result=result, records=records)
    return run, records
