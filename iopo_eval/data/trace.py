"""TRACE evaluation rows: validation, the single/multi split, and the constraint taxonomy.

The taxonomy maps the Chinese ``levels2`` labels to the paper's 26 dimensions in 5 categories
(protocols.md §1.3). Two noisy labels in the released file are mapped to "Other" on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iopo_eval.data.rows import read_jsonl, require
from iopo_eval.data.store import DataError, data_path

TRACE_FILE_KEY = "trace/eval"

# levels2 label -> (category, dimension)
TAXONOMY: dict[str, tuple[str, str]] = {
    "主题约束": ("Content", "Theme"),
    "排除约束": ("Content", "Exclusion"),
    "包含约束": ("Content", "Inclusion"),
    "价值观约束": ("Content", "Value"),
    "隐私约束": ("Content", "Privacy"),
    "数值约束": ("Content", "Numerical"),
    "角色扮演约束": ("Situation", "Role-playing"),
    "受众目标约束": ("Situation", "Target Audience"),
    "先验条件约束": ("Situation", "Prior Condition"),
    "自然语言流程背景信息约束": ("Situation", "Natural Language Process Background"),
    "markdown流程背景信息约束": ("Situation", "Markdown Process Background"),
    "表格背景信息约束": ("Situation", "Table Background"),
    "文本背景信息约束": ("Situation", "Text Background"),
    "语气风格约束": ("Style", "Tone and Style"),
    "情感情绪约束": ("Style", "Emotion"),
    "语言特征约束": ("Style", "Linguistic Characteristics"),
    "多语言约束": ("Style", "Multilingual"),
    "输出格式约束": ("Format", "Output Format"),
    "文本样式约束": ("Format", "Text Pattern"),
    "语法结构约束": ("Format", "Grammar Structure"),
    "引用和参考约束": ("Format", "Citation"),
    "编号和列表约束": ("Format", "Numbering and List"),
    "层次化结构约束": ("Format", "Hierarchical Structure"),
    "模版约束": ("Format", "Template"),
    "正例约束": ("Example", "Positive Example"),
    "负例约束": ("Example", "Negative Example"),
}
OTHER = ("Other", "Other")
CATEGORIES = ("Content", "Situation", "Style", "Format", "Example")


def classify(label: str) -> tuple[str, str]:
    """(category, dimension) of a levels2 label; unknown labels (2 noisy rows upstream) are Other."""
    return TAXONOMY.get(label.strip(), OTHER)


@dataclass(frozen=True)
class TraceItem:
    id: str
    messages: list[dict[str, str]]
    description: str
    constraints: str
    input: str | None
    constraints_splits: list[str]
    levels2: list[str]
    category: str  # trace1.0 / trace2.0

    @property
    def subset(self) -> str:
        """IF-S covers the single-constraint rows, IF-M the multi-constraint rows (protocols.md §1.5)."""
        return "single" if len(self.constraints_splits) == 1 else "multi"

    @property
    def user_prompt(self) -> str:
        return next(m["content"] for m in self.messages if m["role"] == "user")

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "messages": self.messages,
            "description": self.description,
            "constraints": self.constraints,
            "input": self.input if self.input is not None else "NULL",
            "constraints_num": len(self.constraints_splits),
            "constraints_splits": self.constraints_splits,
            "levels2": self.levels2,
            "category": self.category,
        }


def parse_row(row: dict[str, Any], where: str) -> TraceItem:
    """Validate one upstream row. Every inconsistency raises DataError naming the row."""
    rid = require(row, "id", (str, int), where)
    where = f"{where} (id {rid!r})"
    messages = require(row, "messages", list, where)
    if not messages or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        raise DataError(f"{where}: 'messages' must be a non-empty list of {{role, content}} strings")
    if not any(m["role"] == "user" for m in messages):
        raise DataError(f"{where}: 'messages' has no user turn")
    splits = require(row, "constraints_splits", list, where)
    if not splits or not all(isinstance(s, str) and s.strip() for s in splits):
        raise DataError(f"{where}: 'constraints_splits' must be a non-empty list of non-empty strings")
    levels2 = require(row, "levels2", list, where)
    if len(levels2) != len(splits) or not all(isinstance(s, str) for s in levels2):
        raise DataError(
            f"{where}: 'levels2' has {len(levels2)} labels for {len(splits)} constraints (must be aligned 1:1)"
        )
    num = require(row, "constraints_num", int, where)
    if num != len(splits):
        raise DataError(f"{where}: constraints_num={num} but constraints_splits has {len(splits)} entries")
    raw_input = require(row, "input", str, where)
    return TraceItem(
        id=str(rid),
        messages=[{"role": m["role"], "content": m["content"]} for m in messages],
        description=require(row, "description", str, where),
        constraints=require(row, "constraints", str, where),
        input=None if raw_input == "NULL" else raw_input,
        constraints_splits=list(splits),
        levels2=list(levels2),
        category=require(row, "category", str, where),
    )


def load_trace(path: Path | None = None, mirror: str | None = None) -> list[TraceItem]:
    path = path or data_path(TRACE_FILE_KEY, mirror)
    items: list[TraceItem] = []
    seen: set[str] = set()
    for lineno, row in read_jsonl(path):
        item = parse_row(row, f"{path.name} line {lineno}")
        if item.id in seen:
            raise DataError(f"{path.name} line {lineno}: duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise DataError(f"{path}: no rows")
    return items
