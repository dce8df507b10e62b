"""Reader of IFEval responses files in Google's ``input_response_data`` format (``iopo-eval score ifeval``).

Each JSONL row is ``{"prompt", "response"}``; rows are matched to the data by prompt text (the format
carries no key). Rows whose prompt IFEval does not contain (an older wording, say) are refused, or with
``allow_partial`` named, skipped and counted; prompts without a response count as failures, never scores.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iopo_eval.aggregate import build_result
from iopo_eval.data.ifeval import IFEvalItem, load_ifeval
from iopo_eval.data.rows import read_jsonl
from iopo_eval.data.store import DataError, sha256_of
from iopo_eval.results import RunResults, write_single_run
from iopo_eval.scoring.ifeval import IFEVAL, score_response

log = logging.getLogger(__name__)


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
    result = build_result(
        IFEVAL,
        records,
        n_items=len(items),
        extra_failures={"no_response": missing} if missing else None,
        skipped_inputs={"unknown_prompt": len(unknown)} if unknown else None,
    )
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
