"""The build's steps, each a pure pair of functions over one item:

``requests(item, ctx)``   the LLM or judge requests the step needs for the item (none for a local check);
``apply(item, replies, ctx)``  the item's delta (fields to set) or a drop reason, from the parsed replies.

The runner (``pipeline.py``) sends the requests of many items through the judge engine at once and
records each item's result in the step's state file. Steps are grouped into the paper's phases:
expansion, structuring, quality control, responses, and then the preference data of the IOPO paper.

A reply that does not parse never reaches ``apply``: the engine asks again, and after its retries the
item *fails* the step (recorded in the report, not in the state, so a rerun asks again); ``apply``
decides only what well-formed replies mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.scoring.trace import NO_INPUT, request_fields
from iopo_eval.training.databuild.distribution import _unit
from iopo_eval.training.databuild.items import BuildItem, Candidate
from iopo_eval.training.databuild.parsers import parse_expand, parse_quality, parse_rewrite, parse_structure
from iopo_eval.training.databuild.taxonomy import Taxonomy
from iopo_eval.training.eval_guard import norm_text


@dataclass
class Ask:
    """One request of a step: ``variant`` k asks the generator with its seed + k (candidate k)."""

    key: str
    fields: dict[str, Any]
    n_expected: int
    variant: int = 0


@dataclass
class Result:
    delta: dict[str, Any] | None = None  # kept, with these fields set
    drop: str | None = None  # dropped, for this reason
    stats: dict[str, int] = field(default_factory=dict)  # counters for the report (issues by kind ...)

    @classmethod
    def dropped(cls, reason: str, **stats: int) -> Result:
        return cls(drop=reason, stats=dict(stats))


@dataclass
class Ctx:
    """What the steps read besides the item (fixed for a build; recorded in its manifest)."""

    taxonomy: Taxonomy
    parsers: dict[str, str]  # step -> registered parser name
    candidates: int = 4  # responses sampled per instruction (x1 and x2)
    pass_score: float = 10.0  # a constraint counts as followed at this score (the paper: 10)
    remove_share: float = 0.0  # share of x2 made by removing a constraint instead of changing one
    build_seed: int = 0
    contamination: Callable[[str], str | None] | None = None  # text -> reason, or None when clean


@dataclass
class Step:
    name: str
    phase: str
    role: str  # "llm" (the generator), "judge" or "local" (no call)
    requests: Callable[[BuildItem, Ctx], list[Ask]]
    apply: Callable[[BuildItem, list[JudgeOutcome], Ctx], Result]
    template: str | None = None  # file in templates/ for "llm" steps
    json_reply: bool = True  # False: free text (responses), sent without a response format


def _duplicates(constraints: list[dict[str, str]]) -> bool:
    texts = [norm_text(c["constraint"]) for c in constraints]
    return len(set(texts)) != len(texts)


def judge_fields(item: BuildItem, which: str, response: str) -> dict[str, Any]:
    """The per-constraint judge's fields, made as iopo-eval's TRACE benchmark makes them for a row of
    TRACE's schema (numbered constraints, "NULL" input), so either TRACE judge (upstream's prompt, the
    hardened one) judges built data exactly as it judges the evaluation set."""
    assert item.description is not None
    splits = [f"{i}. {c}" for i, c in enumerate(item.constraint_texts(which), 1)]
    return request_fields(
        description=item.description,
        task_input=item.input.strip() or None,
        constraints="\n".join(splits),
        constraints_splits=splits,
        user_prompt=item.prompt(which),
        response=response,
    )


# --- seeds and decontamination (local) ------------------------------------------------------------------
def _no_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    return []


def _check_seed(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    reason = ctx.contamination(item.seed) if ctx.contamination else None
    return Result.dropped(f"decontamination: seed {reason}") if reason else Result(delta={})


def _check_instruction(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    if ctx.contamination:
        for text in (item.prompt(), item.description or ""):
            reason = ctx.contamination(text)
            if reason:
                return Result.dropped(f"decontamination: instruction {reason}")
    return Result(delta={})


# --- expansion ------------------------------------------------------------------------------------------
def _expand_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    fields = {"seed": item.seed, "dimensions": ctx.taxonomy.prompt_block(item.dimensions)}
    return [Ask(item.id, fields, item.target_n)]


def _expand_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    parsed = parse_expand(replies[0].raw or "", item.target_n, set(ctx.taxonomy.dimensions))
    if not parsed["usable"]:
        return Result.dropped("expand: the LLM found the seed unusable")
    if _duplicates(parsed["added"]):
        return Result.dropped("expand: duplicate constraints")
    used = [c["dimension"] for c in parsed["added"]]
    drift = sum(1 for a, b in zip(used, item.dimensions, strict=True) if a != b)
    return Result(
        delta={"expanded": parsed["instruction"], "added": parsed["added"]}, stats={"dimension_drift": drift}
    )


# --- structuring ----------------------------------------------------------------------------------------
def _structure_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    fields = {"instruction": item.expanded, "dimensions": ctx.taxonomy.prompt_block(examples=False)}
    return [Ask(item.id, fields, item.target_n)]


def _structure_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    parsed = parse_structure(replies[0].raw or "", item.target_n, set(ctx.taxonomy.dimensions))
    if _duplicates(parsed["constraints"]):
        return Result.dropped("structure: duplicate constraints")
    n = len(parsed["constraints"])
    return Result(
        delta={**parsed, "structured_n": n},
        stats={"count_changed": int(n != item.target_n)},
    )


# --- quality control ------------------------------------------------------------------------------------
def _tagged(item: BuildItem) -> list[str]:
    return [f"{c['constraint']} [{c['dimension']}]" for c in item.constraints or []]


def _quality_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    fields = {
        "description": item.description,
        "input": item.input.strip() or NO_INPUT,
        "constraints": _tagged(item),
        "dimension_ids": ", ".join(ctx.taxonomy.dimensions),
    }
    return [Ask(item.id, fields, len(item.constraints or []))]


def _quality_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    n = len(item.constraints or [])
    parsed = parse_quality(replies[0].raw or "", n, set(ctx.taxonomy.dimensions))
    stats = {f"issue: {issue['kind']}": 1 for issue in parsed["issues"]}
    stats[f"verdict: {parsed['verdict']}"] = 1
    record = {"verdict": parsed["verdict"], "issues": parsed["issues"]}
    if parsed["verdict"] == "drop":
        kind = parsed["issues"][0]["kind"] if parsed["issues"] else "no reason given"
        return Result.dropped(f"quality: {kind}", **stats)
    if parsed["verdict"] == "fix":
        if _duplicates(parsed["constraints"]):
            return Result.dropped("quality: the fix left duplicate constraints", **stats)
        return Result(delta={"constraints": parsed["constraints"], "quality": record}, stats=stats)
    return Result(delta={"quality": record}, stats=stats)


# --- responses ------------------------------------------------------------------------------------------
def _respond(which: str) -> Callable[[BuildItem, Ctx], list[Ask]]:
    def requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
        prompt = item.prompt(which)
        return [Ask(f"{item.id}#{k}", {"instruction": prompt}, 1, variant=k) for k in range(ctx.candidates)]

    return requests


def _distinct(texts: list[str], exclude: set[str]) -> list[dict[str, Any]]:
    seen = set(exclude)
    out = []
    for text in texts:
        text = text.strip()
        if text and text not in seen:
            seen.add(text)
            out.append({"text": text, "scores": None})
    return out


def _respond_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    candidates = _distinct([r.raw or "" for r in replies], set())
    return Result(
        delta={"candidates": candidates}, stats={"duplicate responses": len(replies) - len(candidates)}
    )


def _judge_candidates(item: BuildItem, ctx: Ctx) -> list[Ask]:
    n = len(item.constraints or [])
    return [
        Ask(f"{item.id}#{k}", judge_fields(item, "x1", c["text"]), n) for k, c in enumerate(item.candidates)
    ]


def _judge_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    judged = [
        {"text": c["text"], "scores": list(r.scores or [])}
        for c, r in zip(item.candidates, replies, strict=True)
    ]
    views = [Candidate(c["text"], c["scores"]) for c in judged]
    passing = [k for k, c in enumerate(views) if c.passed(ctx.pass_score)]
    failing = [k for k, c in enumerate(views) if not c.passed(ctx.pass_score)]
    stats = {"candidates judged": len(views), "candidates followed every constraint": len(passing)}
    if not passing:
        return Result(
            delta={"candidates": judged},
            drop="responses: no candidate followed every constraint",
            stats=stats,
        )
    rejected = min(failing, key=lambda k: (views[k].mean(), k)) if failing else None
    return Result(delta={"candidates": judged, "chosen": passing[0], "rejected": rejected}, stats=stats)


# --- preference data ------------------------------------------------------------------------------------
def _operation(item: BuildItem, ctx: Ctx) -> str:
    if len(item.constraints or []) >= 2 and _unit(ctx.build_seed, item.id, "operation") < ctx.remove_share:
        return "remove"
    return "change"


def _rewrite_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    fields = {
        "description": item.description,
        "input": item.input.strip() or NO_INPUT,
        "constraints": item.constraint_texts(),
        "operation": _operation(item, ctx),
    }
    return [Ask(item.id, fields, len(item.constraints or []))]


def _rewrite_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    constraints = list(item.constraints or [])
    parsed = parse_rewrite(replies[0].raw or "", len(constraints))
    index, operation = parsed["index"], parsed["operation"]
    asked = _operation(item, ctx)
    stats = {f"operation: {operation}": 1, "operation differs from the one asked": int(operation != asked)}
    old = constraints[index - 1]
    if operation == "remove":
        if len(constraints) < 2:
            return Result.dropped("rewrite: removed the only constraint", **stats)
        new_constraints = constraints[: index - 1] + constraints[index:]
        new = None
    else:
        if norm_text(parsed["constraint"]) == norm_text(old["constraint"]):
            return Result.dropped("rewrite: the changed constraint is unchanged", **stats)
        new = {"dimension": old["dimension"], "constraint": parsed["constraint"]}
        new_constraints = [*constraints[: index - 1], new, *constraints[index:]]
        if _duplicates(new_constraints):
            return Result.dropped("rewrite: x2 repeats a constraint", **stats)
    x2 = {"constraints": new_constraints, "operation": operation, "index": index, "old": old, "new": new}
    if ctx.contamination:
        probe = BuildItem(item.id, item.seed, description=item.description, input=item.input, x2=x2)
        reason = ctx.contamination(probe.prompt("x2"))
        if reason:
            return Result.dropped(f"decontamination: x2 {reason}", **stats)
    return Result(delta={"x2": x2}, stats=stats)


def _cross_y1_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    n = len(item.constraint_texts("x2"))
    return [Ask(f"{item.id}#y1", judge_fields(item, "x2", item.y1()), n)]


def _cross_y1_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    scores = list(replies[0].scores or [])
    if Candidate("", scores).passed(ctx.pass_score):
        return Result.dropped("preference: y1 also follows x2")
    return Result(delta={"y1_on_x2": scores})


def _respond_x2_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    candidates = _distinct([r.raw or "" for r in replies], {item.y1()})
    if not candidates:
        return Result.dropped("preference: every response to x2 equals y1")
    return Result(delta={"candidates2": candidates})


def _judge_x2_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    n = len(item.constraint_texts("x2"))
    return [
        Ask(f"{item.id}#{k}", judge_fields(item, "x2", c["text"]), n) for k, c in enumerate(item.candidates2)
    ]


def _judge_x2_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    judged = [
        {"text": c["text"], "scores": list(r.scores or [])}
        for c, r in zip(item.candidates2, replies, strict=True)
    ]
    passing = sum(Candidate(c["text"], c["scores"]).passed(ctx.pass_score) for c in judged)
    stats = {"candidates judged": len(judged), "candidates followed every constraint": passing}
    if not passing:
        return Result(delta={"candidates2": judged}, drop="preference: no response followed x2", stats=stats)
    return Result(delta={"candidates2": judged}, stats=stats)


def _first_passing2(item: BuildItem, ctx: Ctx) -> int:
    return next(
        k for k, c in enumerate(item.candidates2) if Candidate(c["text"], c["scores"]).passed(ctx.pass_score)
    )


def _cross_y2_requests(item: BuildItem, ctx: Ctx) -> list[Ask]:
    """Only the first y2 that follows x2 is judged on x1: a response to x2 that also follows x1 means the
    changed constraint does not separate them, which the other responses to x2 rarely undo, and one
    call per item keeps the cost of a quadruple down."""
    k = _first_passing2(item, ctx)
    return [
        Ask(
            f"{item.id}#{k}",
            judge_fields(item, "x1", item.candidates2[k]["text"]),
            len(item.constraints or []),
        )
    ]


def _cross_y2_apply(item: BuildItem, replies: list[JudgeOutcome], ctx: Ctx) -> Result:
    scores = list(replies[0].scores or [])
    if Candidate("", scores).passed(ctx.pass_score):
        return Result.dropped("preference: y2 also follows x1")
    return Result(delta={"chosen2": _first_passing2(item, ctx), "y2_on_x1": scores})


STEPS: tuple[Step, ...] = (
    Step("seeds", "seeds", "local", _no_requests, _check_seed),
    Step("expand", "expansion", "llm", _expand_requests, _expand_apply, "expand_v1.txt"),
    Step("structure", "structuring", "llm", _structure_requests, _structure_apply, "structure_v1.txt"),
    Step("quality", "quality control", "llm", _quality_requests, _quality_apply, "quality_v1.txt"),
    Step("decontaminate", "quality control", "local", _no_requests, _check_instruction),
    Step("respond", "responses", "llm", _respond("x1"), _respond_apply, "respond_v1.txt", json_reply=False),
    Step("judge", "responses", "judge", _judge_candidates, _judge_apply),
    Step("rewrite", "preference", "llm", _rewrite_requests, _rewrite_apply, "rewrite_v1.txt"),
    Step("cross_y1", "preference", "judge", _cross_y1_requests, _cross_y1_apply),
    Step(
        "respond_x2",
        "preference",
        "llm",
        _respond("x2"),
        _respond_x2_apply,
        "respond_v1.txt",
        json_reply=False,
    ),
    Step("judge_x2", "preference", "judge", _judge_x2_requests, _judge_x2_apply),
    Step("cross_y2", "preference", "judge", _cross_y2_requests, _cross_y2_apply),
)
