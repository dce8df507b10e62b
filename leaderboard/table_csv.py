"""The main table as CSV (``leaderboard.csv`` beside ``index.html``): the same rows and values as the page,
for spreadsheets and scripts. Values are percentages as shown; an empty cell is a value the run did not
measure or the paper did not report."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from iopo_eval.leaderboard.columns import Column
from iopo_eval.leaderboard.views import MainRow

CSV_NAME = "leaderboard.csv"


def table_frame(rows: list[MainRow], columns: tuple[Column, ...]) -> pd.DataFrame:
    records = []
    for row in rows:
        record: dict[str, object] = {"model": row.label, "kind": row.kind, "source": row.sublabel}
        for col, cell in zip(columns, row.cells, strict=True):
            record[f"{col.group} {col.label}"] = cell.value
            record[f"{col.group} {col.label} ci"] = cell.ci or None
        record.update(
            judge=row.judge or None,
            not_paper_comparable=row.not_comparable or None,
            protocol=row.protocol or None,
            smoke_test=row.smoke,
            failures=row.failures,
            mean_response_chars=row.mean_chars,
            cost_usd=row.cost_usd,
            date=row.created_at or None,
        )
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    # Reported rows have no failure count: a nullable integer column keeps the others integers.
    return frame.astype({"failures": "Int64"}) if "failures" in frame else frame


def write_table_csv(path: Path, rows: list[MainRow], columns: tuple[Column, ...]) -> Path:
    table_frame(rows, columns).to_csv(path, index=False, encoding="utf-8")
    return path
