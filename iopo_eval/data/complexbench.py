"""ComplexBench instances (``data/data_final.json``, protocols.md §4.2) and upstream generation files.

Every row is validated strictly against the documented schema; any inconsistency raises DataError
naming the file, the row and (for questions) the point_id. The taxonomy maps the 19 constraint
dimensions to their 4 groups. A rule is kept as the string upstream wrote: the rule checker
(iopo_eval.scoring.complexbench_rules) reads it at scoring time, as upstream's does; an unknown rule is
upstream's verdict 2 there, not a load error.

Upstream's ``data_final.json`` is not in the local mirror: ``load_complexbench`` reads the registry
file (mirror, cache, or a download), or a file named by ``$IOPO_EVAL_COMPLEXBENCH_DATA`` (fixtures,
or a copy obtained elsewhere).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iopo_eval.data.rows import read_json_list, read_jsonl, require
from iopo_eval.data.store import DataError, data_path

DATA_KEY = "complexbench/data"
DATA_ENV = "IOPO_EVAL_COMPLEXBENCH_DATA"

# dimension -> constraint group (the paper's taxonomy: 19 dimensions in 4 groups)
DIMENSION_GROUPS: dict[str, str] = {
    "Word Matching": "Lexical",
    "Keywords": "Lexical",
    "JSON Format": "Structure",
    "Markdown Format": "Structure",
    "Bullets Format": "Structure",
    "Length": "Structure",
    "Start with": "Structure",
    "End with": "Structure",
    "Punctuation": "Structure",
    "Template": "Structure",
    "Language Style": "Semantic",
    "Personalization": "Semantic",
    "Topic": "Semantic",
    "Sentiment": "Semantic",
    "Helpfulness": "Utility",
    "Target Language": "Utility",
    "Supportiveness": "Utility",
    "Consistency": "Utility",
    "Factuality": "Utility",
}
GROUPS = ("Lexical", "Structure", "Semantic", "Utility")
COMPOSITION_TYPES = ("And", "Chain", "Selection", "Nested")
_DIM_BY_FOLDED = {" ".join(k.casefold().split()): k for k in DIMENSION_GROUPS}
_DEPTH = re.compile(r"_(\d+)$")


def canonical_dimension(name: str, where: str) -> str:
    """The taxonomy's spelling of a dimension (case and spacing are ignored); unknown names are errors."""
    folded = " ".join(name.casefold().split())
    if folded not in _DIM_BY_FOLDED:
        raise DataError(
            f"{where}: unknown constraint dimension {name!r} (known: {', '.join(DIMENSION_GROUPS)})"
        )
    return _DIM_BY_FOLDED[folded]


@dataclass(frozen=True)
class Question:
    point_id: int
    question: str
    question_en: str | None
    rule: str | None  # None: answered by the LLM judge; else checked by a rule on extracted segments
    constraint_dimensions: tuple[str, ...]
    composition_types: tuple[str, ...]
    dep: tuple[int, ...]  # point_ids this question depends on (direct dependencies)

    def text(self, language: str) -> str:
        return self.question_en if language == "en" and self.question_en else self.question


@dataclass(frozen=True)
class Instance:
    main_id: int
    group: str | None  # Selection task group for the coherent test (None: in no group)
    idx_in_group: int | None
    instruction: str
    instruction_en: str | None
    task_types: tuple[str, ...]
    constraint_dimensions: tuple[str, ...]
    composition_types: tuple[str, ...]
    category: str
    scoring_questions: tuple[Question, ...]

    @property
    def category_family(self) -> str:
        """ "Selection_2" -> "Selection" (the prefix before the first "_")."""
        return self.category.split("_", 1)[0]

    @property
    def nested(self) -> str:
        """The nesting label of upstream's aggregation: the instruction's composition types sorted and
        joined by "_", repeats kept ("And_And_Selection"); "Single" where upstream's label is the empty
        string (an instruction without composition)."""
        return "_".join(sorted(self.composition_types)) or "Single"

    @property
    def selection_questions(self) -> int:
        """How many of its questions carry the Selection composition type: upstream's coherent test takes
        a group's depth from this number for the group's first instance (``get_selection_depth``)."""
        return sum("Selection" in q.composition_types for q in self.scoring_questions)

    @property
    def selection_depth(self) -> int | None:
        """Depth of the Selection nesting for the coherent test: the number ending the category
        ("Selection_2" -> 2). None for instances outside a Selection group."""
        if self.group is None or "Selection" not in self.composition_types:
            return None
        match = _DEPTH.search(self.category)
        return int(match.group(1)) if match else None

    def prompt(self, language: str) -> str:
        if language == "en":
            if self.instruction_en is None:
                raise DataError(
                    f"ComplexBench main_id {self.main_id}: no instruction_en for the English task"
                )
            return self.instruction_en
        return self.instruction


def _string_list(row: dict[str, Any], field: str, where: str, allow_empty: bool = True) -> list[str]:
    value = require(row, field, (list, str), where)
    items = [value] if isinstance(value, str) else value
    if not all(isinstance(v, str) and v.strip() for v in items):
        raise DataError(f"{where}: field {field!r} must hold non-empty strings")
    if not items and not allow_empty:
        raise DataError(f"{where}: field {field!r} is empty")
    return [v.strip() for v in items]


def _optional_str(row: dict[str, Any], field: str, where: str) -> str | None:
    value = row.get(field)
    if value is not None and not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} should be a string or null, got {type(value).__name__}")
    return value


def _compositions(row: dict[str, Any], where: str) -> tuple[str, ...]:
    types = _string_list(row, "composition_types", where)
    for t in types:
        if t not in COMPOSITION_TYPES:
            raise DataError(
                f"{where}: unknown composition type {t!r} (known: {', '.join(COMPOSITION_TYPES)})"
            )
    return tuple(types)  # repeats kept: upstream's aggregation counts every entry


def parse_question(raw: Any, where: str) -> Question:
    if not isinstance(raw, dict):
        raise DataError(f"{where}: a scoring question must be an object, got {type(raw).__name__}")
    pid = require(raw, "point_id", int, where)
    where = f"{where} point_id {pid}"
    text = require(raw, "question", str, where)
    if not text.strip():
        raise DataError(f"{where}: empty question")
    rule = raw.get("rule")
    if rule is not None and not isinstance(rule, str):
        raise DataError(f"{where}: rule should be a string or null, got {type(rule).__name__}")
    dep = require(raw, "dep", list, where)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in dep):
        raise DataError(f"{where}: dep must be a list of point_ids (integers), got {dep!r}")
    if pid in dep:
        raise DataError(f"{where}: depends on itself")
    dims = _string_list(raw, "constraint_dimensions", where)
    return Question(
        point_id=pid,
        question=text,
        question_en=_optional_str(raw, "question_en", where),
        rule=rule,
        # Repeats kept: upstream's aggregation counts a question once per listed dimension.
        constraint_dimensions=tuple(canonical_dimension(d, where) for d in dims),
        composition_types=_compositions(raw, where),
        dep=tuple(dict.fromkeys(dep)),
    )


def parse_instance(row: dict[str, Any], where: str) -> Instance:
    """Validate one instance of data_final.json; every inconsistency raises DataError naming the row."""
    main_id = require(row, "main_id", int, where)
    where = f"{where} (main_id {main_id})"
    instruction = require(row, "instruction", str, where)
    if not instruction.strip():
        raise DataError(f"{where}: empty instruction")
    group = row.get("group")
    if group is not None and (isinstance(group, bool) or not isinstance(group, (int, str))):
        raise DataError(f"{where}: group should be an integer, a string or null, got {group!r}")
    idx = row.get("idx_in_group")
    if idx is not None and (isinstance(idx, bool) or not isinstance(idx, int)):
        raise DataError(f"{where}: idx_in_group should be an integer or null, got {idx!r}")
    raw_questions = require(row, "scoring_questions", list, where)
    if not raw_questions:
        raise DataError(f"{where}: no scoring questions")
    questions = [parse_question(q, f"{where} question {i}") for i, q in enumerate(raw_questions)]
    ids = [q.point_id for q in questions]
    if len(set(ids)) != len(ids):
        raise DataError(f"{where}: duplicate point_id in {ids}")
    for q in questions:
        unknown = [d for d in q.dep if d not in ids]
        if unknown:
            raise DataError(f"{where} point_id {q.point_id}: dep names unknown point_id(s) {unknown}")
    category = require(row, "category", str, where)
    instance = Instance(
        main_id=main_id,
        group=None if group is None else str(group),
        idx_in_group=idx,
        instruction=instruction,
        instruction_en=_optional_str(row, "instruction_en", where),
        task_types=tuple(_string_list(row, "task_types", where, allow_empty=False)),
        constraint_dimensions=tuple(
            canonical_dimension(d, where) for d in _string_list(row, "constraint_dimensions", where)
        ),
        composition_types=_compositions(row, where),
        category=category,
        scoring_questions=tuple(questions),
    )
    if (
        instance.group is not None
        and "Selection" in instance.composition_types
        and instance.selection_depth is None
    ):
        raise DataError(
            f"{where}: Selection group {instance.group!r} but category {category!r} gives no depth "
            "(expected a name ending in _<depth>, e.g. Selection_2)"
        )
    return instance


def load_instances(path: Path) -> list[Instance]:
    """Every instance of a data_final.json file. ``main_id`` must equal the list index: upstream's
    aggregation looks instances up by main_id while its judging scripts index them by position."""
    rows = read_json_list(path)
    if not rows:
        raise DataError(f"{path}: no instances")
    out = []
    for index, row in enumerate(rows):
        inst = parse_instance(row, f"{path.name} row {index}")
        if inst.main_id != index:
            raise DataError(
                f"{path.name} row {index}: main_id {inst.main_id} differs from its position {index} "
                "(upstream's scripts need main_id == list index)"
            )
        out.append(inst)
    return out


def complexbench_path(mirror: str | None = None, data_file: str | None = None) -> Path:
    """The data file to read: ``data_file``, else $IOPO_EVAL_COMPLEXBENCH_DATA, else the registry file."""
    explicit = data_file or os.environ.get(DATA_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise DataError(
                f"ComplexBench data file {path} (from {'metadata' if data_file else DATA_ENV}) not found"
            )
        return path
    return data_path(DATA_KEY, mirror)


def load_complexbench(mirror: str | None = None, data_file: str | None = None) -> list[Instance]:
    return load_instances(complexbench_path(mirror, data_file))


@dataclass(frozen=True)
class Generation:
    main_id: int
    model: str
    instruction: str
    generated: str


def load_generations(path: Path) -> list[Generation]:
    """An upstream generation file (``llm_generations/<model>.jsonl``): one
    ``{main_id, model, instruction, generated}`` row per instance. Duplicate main_ids are errors."""
    out: list[Generation] = []
    seen: set[int] = set()
    for lineno, row in read_jsonl(path):
        where = f"{path.name} line {lineno}"
        main_id = require(row, "main_id", int, where)
        if main_id in seen:
            raise DataError(f"{where}: duplicate main_id {main_id}")
        seen.add(main_id)
        out.append(
            Generation(
                main_id=main_id,
                model=str(row.get("model", "")),
                instruction=require(row, "instruction", str, f"{where} (main_id {main_id})"),
                generated=require(row, "generated", str, f"{where} (main_id {main_id})"),
            )
        )
    if not out:
        raise DataError(f"{path}: no rows")
    return out
