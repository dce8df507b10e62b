"""The paper's reported numbers, kept as data (``reported/*.json``) and shown beside measured runs.

Values are percentages as printed in the paper. A ``null`` is a column the row's table does not report
(the ablations of Table 4 report four of the eight columns); a row the paper does not report is absent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from iopo_eval.leaderboard.columns import column_keys

BUNDLED = "iopo_table3.json"


class ReportedError(Exception):
    """A reported-numbers file is malformed (the message names the file and row)."""


@dataclass
class ReportedRow:
    base_model: str
    method: str
    table: str
    values: dict[str, float | None]
    note: str = ""
    source: str = ""

    @property
    def label(self) -> str:
        return f"{self.base_model} · {self.method}"


@dataclass
class ReportedTable:
    source: str
    status: str
    rows: list[ReportedRow] = field(default_factory=list)

    @property
    def n_values(self) -> int:
        return sum(v is not None for r in self.rows for v in r.values.values())


def bundled_path() -> Path:
    return Path(str(resources.files("iopo_eval.leaderboard") / "reported" / BUNDLED))


def load_reported(path: str | Path | None = None) -> ReportedTable:
    p = Path(path) if path is not None else bundled_path()
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ReportedError(f"{p}: reported-numbers file not found") from exc
    except json.JSONDecodeError as exc:
        raise ReportedError(f"{p}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        raise ReportedError(f"{p}: expected an object with a 'rows' list")
    table = ReportedTable(source=str(doc.get("source", "")), status=str(doc.get("status", "")))
    for i, row in enumerate(doc["rows"]):
        table.rows.append(_row(row, f"{p} row {i}", table.source))
    return table


def _row(row: Any, where: str, source: str) -> ReportedRow:
    if not isinstance(row, dict):
        raise ReportedError(f"{where}: expected an object")
    for key in ("base_model", "method", "values"):
        if key not in row:
            raise ReportedError(f"{where}: missing {key!r}")
    values = row["values"]
    keys = column_keys()
    if not isinstance(values, dict):
        raise ReportedError(f"{where}: 'values' must be an object keyed by column")
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise ReportedError(f"{where}: unknown column {unknown[0]!r} (known: {', '.join(keys)})")
    clean: dict[str, float | None] = {}
    for key in keys:
        v = values.get(key)
        if v is not None and (
            isinstance(v, bool)
            or not isinstance(v, (int, float))
            or not math.isfinite(v)
            or not 0 <= v <= 100
        ):
            raise ReportedError(f"{where}: {key} must be a percentage between 0 and 100 or null, got {v!r}")
        clean[key] = None if v is None else float(v)
    return ReportedRow(
        base_model=str(row["base_model"]),
        method=str(row["method"]),
        table=str(row.get("table", "")),
        values=clean,
        note=str(row.get("note", "")),
        source=source,
    )
