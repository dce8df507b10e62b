"""IFEval rows (Google's ``input_data.jsonl``, protocols.md §2): validation and loading.

A row is valid only when every one of its checkers builds from the row's kwargs exactly as given, so no
checker parameter is ever left to upstream's random draw (one documented exception:
``keywords:letter_frequency`` with a non-letter, where the literal character is counted). The 25
checkers are lm-eval's port of Google's ``instructions.py``; they are imported only after the offline
Punkt model is in place.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from iopo_eval.data.rows import read_jsonl, require
from iopo_eval.data.store import DataError, data_path
from iopo_eval.punkt import ensure_punkt

DATA_KEY = "ifeval/input"
LETTER_FREQUENCY = "keywords:letter_frequency"
LANGDETECT_SEED = 0


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
            build_checker(instruction_id, params, prompt)
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


def build_checker(instruction_id: str, params: dict[str, Any], prompt: str) -> Any:
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
