"""Shared helpers for reading benchmark files row by row with errors that name the file and row."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from iopo_eval.data.store import DataError


def read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object). A line that is not a JSON object raises DataError."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise DataError(f"{path} line {lineno}: not valid UTF-8 JSON ({exc})") from exc
            if not isinstance(obj, dict):
                raise DataError(f"{path} line {lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj


def read_json_list(path: Path) -> list[dict[str, Any]]:
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(obj, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(obj).__name__}")
    for i, row in enumerate(obj):
        if not isinstance(row, dict):
            raise DataError(f"{path} row {i}: expected a JSON object, got {type(row).__name__}")
    return obj


def require(row: dict[str, Any], field: str, kind: type | tuple[type, ...], where: str) -> Any:
    """Return row[field], or raise DataError naming the row when it is missing or of the wrong type."""
    if field not in row:
        raise DataError(f"{where}: missing field {field!r}")
    value = row[field]
    # bool is an int subclass; a boolean where a count is expected is a malformed row.
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        expected = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise DataError(f"{where}: field {field!r} should be {expected}, got {type(value).__name__}")
    return value
