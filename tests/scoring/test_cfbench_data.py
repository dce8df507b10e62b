"""CFBench rows: the pinned file's counts (protocols.md §3.2), and every malformed row named."""

from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.data.cfbench import load_cfbench, parse_row, parse_rows
from iopo_eval.data.store import DataError

ROW: dict[str, Any] = {
    "idx": 3,
    "prompt": "写一首关于春天的诗。",
    "isanswer": "否",
    "gold": "",
    "doamin": "文学",
    "scenario": "创作",
    "source": "tob",
    "split": "easy",
    "criteria": [
        ["是一首诗", "主需", "内容约束", "元素内容约束"],
        ["不超过八行", "次需", "数值约束", "行数值约束"],
    ],
}


def test_pinned_file_matches_the_documented_counts(mirror: Path) -> None:
    items = load_cfbench()
    assert [i.idx for i in items] == list(range(1000))
    assert Counter(i.split for i in items) == {"easy": 500, "hard": 500}
    checkpoints = [c for i in items for c in i.criteria]
    assert len(checkpoints) == 4237
    assert Counter(c.priority for c in checkpoints) == {"次需": 2402, "主需": 1835}
    assert sum(i.has_gold for i in items) == 145  # 146 non-empty, one of them only whitespace
    assert min(len(i.criteria) for i in items) == 1 and max(len(i.criteria) for i in items) == 14
    assert items[810].prompt == ""  # an upstream defect, kept as it is


def test_doc_round_trip() -> None:
    item = parse_row(ROW, "row")
    doc = item.to_doc()
    assert doc["id"] == "3" and doc["doamin"] == "文学"
    assert parse_row(json.loads(json.dumps(doc)), "doc") == item
    assert [c.is_primary for c in item.criteria] == [True, False]


def broken(**changes: Any) -> dict[str, Any]:
    row = copy.deepcopy(ROW)
    for key, value in changes.items():
        if value is KeyError:
            row.pop(key)
        else:
            row[key] = value
    return row


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (broken(idx=KeyError), "missing field 'idx'"),
        (broken(idx="3"), "'idx' should be int"),
        (broken(idx=-1), "negative idx"),
        (broken(prompt=None), "'prompt' should be str"),
        (broken(isanswer="yes"), "isanswer 'yes'"),
        (broken(split="medium"), "split 'medium'"),
        (broken(doamin=KeyError), "missing field 'doamin'"),
        (broken(criteria=[]), "empty criteria"),
        (broken(criteria="是一首诗"), "'criteria' should be list"),
        (broken(criteria=[["是一首诗", "主需", "内容约束"]]), r"criteria\[0\] must be a list of 4 strings"),
        (
            broken(criteria=[["是一首诗", "主需", "内容约束", None]]),
            r"criteria\[0\] must be a list of 4 strings",
        ),
        (broken(criteria=[["  ", "主需", "内容约束", ""]]), "empty checkpoint text"),
        (broken(criteria=[["是一首诗", "primary", "内容约束", ""]]), "priority 'primary'"),
    ],
)
def test_malformed_rows_raise_naming_the_row(row: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message) as err:
        parse_row(row, "cfbench_data.json row 7")
    assert "cfbench_data.json row 7" in str(err.value)


def test_duplicate_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"row 1: duplicate idx 3 \(first at row 0\)"):
        parse_rows([ROW, ROW], "f.json")
    with pytest.raises(DataError, match="no rows"):
        parse_rows([], "f.json")
    path = tmp_path / "cfbench_data.json"
    path.write_text("[1]", encoding="utf-8")
    with pytest.raises(DataError, match="row 0: expected a JSON object"):
        load_cfbench(path)
