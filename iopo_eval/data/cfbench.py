"""CFBench rows (protocols.md §3.2): validation, checkpoints with priorities, the easy/hard split.

Every row carries its gold checklist in ``criteria``: 4-tuples ``[checkpoint, priority, type_L1,
type_L2]`` with priority 主需 (primary) or 次需 (secondary). The file has no upstream license: it is
downloaded for the user (or read from a local mirror) and never redistributed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iopo_eval.data.rows import read_json_list, require
from iopo_eval.data.store import DataError, data_path

CFBENCH_FILE_KEY = "cfbench/data"
PRIMARY = "主需"
SECONDARY = "次需"
PRIORITIES = (PRIMARY, SECONDARY)
SPLITS = ("easy", "hard")
ISANSWER_VALUES = ("是", "否", "")  # undocumented upstream; one row has ""
UNLABELLED_TYPE = "(unlabelled)"  # 129 checkpoints have an empty type_L1


@dataclass(frozen=True)
class Checkpoint:
    text: str
    priority: str  # 主需 | 次需
    type_l1: str
    type_l2: str

    @property
    def is_primary(self) -> bool:
        return self.priority == PRIMARY

    @property
    def type_label(self) -> str:
        return self.type_l1.strip() or UNLABELLED_TYPE

    def to_row(self) -> list[str]:
        return [self.text, self.priority, self.type_l1, self.type_l2]


@dataclass(frozen=True)
class CFBenchItem:
    idx: int
    prompt: str
    isanswer: str
    gold: str
    domain: str  # upstream field name: "doamin"
    scenario: str
    source: str
    split: str  # easy | hard
    criteria: tuple[Checkpoint, ...]

    @property
    def id(self) -> str:
        return str(self.idx)

    @property
    def has_gold(self) -> bool:
        """A whitespace-only gold answer (one row upstream) counts as no gold answer."""
        return bool(self.gold.strip())

    def to_doc(self) -> dict[str, Any]:
        """The upstream row (upstream field names) plus ``id``, the string key used across iopo-eval."""
        return {
            "id": self.id,
            "idx": self.idx,
            "prompt": self.prompt,
            "isanswer": self.isanswer,
            "gold": self.gold,
            "doamin": self.domain,
            "scenario": self.scenario,
            "source": self.source,
            "split": self.split,
            "criteria": [c.to_row() for c in self.criteria],
        }


def _checkpoint(raw: Any, where: str, position: int) -> Checkpoint:
    at = f"{where}: criteria[{position}]"
    if not isinstance(raw, (list, tuple)) or len(raw) != 4 or not all(isinstance(x, str) for x in raw):
        raise DataError(
            f"{at} must be a list of 4 strings [checkpoint, priority, type_L1, type_L2], got {raw!r}"
        )
    text, priority, type_l1, type_l2 = raw
    if not text.strip():
        raise DataError(f"{at}: empty checkpoint text")
    if priority not in PRIORITIES:
        raise DataError(f"{at}: priority {priority!r} is neither {PRIMARY!r} nor {SECONDARY!r}")
    return Checkpoint(text=text, priority=priority, type_l1=type_l1, type_l2=type_l2)


def parse_row(row: dict[str, Any], where: str) -> CFBenchItem:
    """Validate one upstream row (or an lm-eval doc built from one). Errors name the row."""
    idx = require(row, "idx", int, where)
    where = f"{where} (idx {idx})"
    if idx < 0:
        raise DataError(f"{where}: negative idx")
    # Row 810 of the pinned file has an empty prompt; upstream sends it as it is, and so do we.
    prompt = require(row, "prompt", str, where)
    isanswer = require(row, "isanswer", str, where)
    if isanswer not in ISANSWER_VALUES:
        raise DataError(f"{where}: isanswer {isanswer!r} is not one of {ISANSWER_VALUES}")
    split = require(row, "split", str, where)
    if split not in SPLITS:
        raise DataError(f"{where}: split {split!r} is not one of {SPLITS}")
    criteria = require(row, "criteria", list, where)
    if not criteria:
        raise DataError(f"{where}: empty criteria (every item needs at least one checkpoint)")
    return CFBenchItem(
        idx=idx,
        prompt=prompt,
        isanswer=isanswer,
        gold=require(row, "gold", str, where),
        domain=require(row, "doamin", str, where),
        scenario=require(row, "scenario", str, where),
        source=require(row, "source", str, where),
        split=split,
        criteria=tuple(_checkpoint(c, where, i) for i, c in enumerate(criteria)),
    )


def parse_rows(rows: list[dict[str, Any]], name: str) -> list[CFBenchItem]:
    items: list[CFBenchItem] = []
    seen: dict[int, int] = {}
    for i, row in enumerate(rows):
        item = parse_row(row, f"{name} row {i}")
        if item.idx in seen:
            raise DataError(f"{name} row {i}: duplicate idx {item.idx} (first at row {seen[item.idx]})")
        seen[item.idx] = i
        items.append(item)
    if not items:
        raise DataError(f"{name}: no rows")
    return items


def load_cfbench(path: Path | None = None, mirror: str | None = None) -> list[CFBenchItem]:
    """All rows of the pinned ``cfbench_data.json`` (1,000 items, idx 0..999), validated."""
    path = path or data_path(CFBENCH_FILE_KEY, mirror)
    return parse_rows(read_json_list(path), path.name)
