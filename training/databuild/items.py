"""One item of a build: a seed on its way to an instruction, responses and preference data.

An item is a plain record; every step adds fields (its *delta*) or drops the item with a reason. The
record is what the state files hold, so a resumed build rebuilds every item from its seed plus the
deltas the finished steps stored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from iopo_eval.training.databuild.taxonomy import Taxonomy

TRACE_SYSTEM = "You are a helpful assistant."  # TRACE's system prompt in its evaluation rows
ROW_CATEGORY = "iopo-eval-build-v1"  # the `category` field of built rows (TRACE's says trace1.0/trace2.0)


@dataclass
class Candidate:
    text: str
    scores: list[float] | None = None  # per constraint, once judged

    def passed(self, pass_score: float) -> bool:
        return self.scores is not None and all(s >= pass_score for s in self.scores)

    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass
class BuildItem:
    id: str
    seed: str
    seed_fields: dict[str, Any] = field(default_factory=dict)  # the seed row's other fields (lang, ...)
    target_n: int = 0
    dimensions: list[str] = field(default_factory=list)  # drawn for the expansion
    # expansion
    expanded: str | None = None
    added: list[dict[str, str]] | None = None
    # structuring, then quality control (which may replace the constraints)
    description: str | None = None
    input: str = ""
    constraints: list[dict[str, str]] | None = None  # [{"dimension", "constraint"}]
    structured_n: int | None = None  # constraints right after structuring
    quality: dict[str, Any] | None = None
    # responses to x1
    candidates: list[dict[str, Any]] = field(default_factory=list)
    chosen: int | None = None  # index of y1 in candidates
    rejected: int | None = None  # the DPO pair's rejected response
    # preference: x2, responses to x2, cross judgements
    x2: dict[str, Any] | None = None  # {"constraints", "operation", "index", "old", "new"}
    y1_on_x2: list[float] | None = None
    candidates2: list[dict[str, Any]] = field(default_factory=list)
    chosen2: int | None = None
    y2_on_x1: list[float] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildItem:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def update(self, delta: dict[str, Any]) -> None:
        for key, value in delta.items():
            if not hasattr(self, key):
                raise KeyError(f"unknown item field {key!r}")
            setattr(self, key, value)

    # --- views ----------------------------------------------------------------------------------------
    def constraint_texts(self, which: str = "x1") -> list[str]:
        cons = self.constraints if which == "x1" else (self.x2 or {}).get("constraints")
        return [c["constraint"] for c in cons or []]

    def prompt(self, which: str = "x1") -> str:
        assert self.description is not None
        return render_prompt(self.description, self.constraint_texts(which), self.input)

    def y1(self) -> str:
        assert self.chosen is not None
        return str(self.candidates[self.chosen]["text"])

    def y2(self) -> str:
        assert self.chosen2 is not None
        return str(self.candidates2[self.chosen2]["text"])


def render_prompt(description: str, constraints: list[str], input_text: str = "") -> str:
    """TRACE's prompt layout (protocols.md §1.2): description, numbered constraints, then the input."""
    text = description.strip() + "\n" + "\n".join(f"{i}. {c}" for i, c in enumerate(constraints, 1)) + "\n"
    if input_text.strip():
        text += f"# Inputs:\n{input_text.strip()}\n"
    return text


def trace_row(item: BuildItem, taxonomy: Taxonomy) -> dict[str, Any]:
    """The item's instruction as a row of TRACE's evaluation schema, plus the dimension ids and seed id."""
    assert item.description is not None and item.constraints
    splits = [f"{i}. {c['constraint']}" for i, c in enumerate(item.constraints, 1)]
    return {
        "id": item.id,
        "messages": [{"role": "system", "content": TRACE_SYSTEM}, {"role": "user", "content": item.prompt()}],
        "type": "trace",
        "description": item.description,
        "constraints": "\n".join(splits),
        "input": item.input.strip() or "NULL",
        "constraints_num": len(splits),
        "constraints_splits": splits,
        "levels2": [taxonomy.dimensions[c["dimension"]].zh for c in item.constraints],
        "category": ROW_CATEGORY,
        "dimensions": [c["dimension"] for c in item.constraints],
        "seed": item.seed,
    }
