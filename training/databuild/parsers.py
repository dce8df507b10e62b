"""Reply parsers of the build steps, registered with the judge engine (``iopo_eval.judges.parse``).

The engine keeps a reply only when its parser accepts it, and asks again when the parser raises
:class:`JudgeParseError`, so a parser here checks the *shape* of a reply (JSON keys, types, counts,
dimension ids); what a well-formed reply means for an item (kept, fixed, dropped) is decided by the step
that reads it again from ``outcome.raw`` (``steps.py``). A generation step has no scores: its parsed
value is an empty :class:`ParsedJudgement`, and the cached raw text is the result.

Parsers that check dimension ids depend on the taxonomy, so they are registered per taxonomy under a
name that carries its fingerprint (``build_expand_v1@1a2b3c4d``); the name is part of the engine's
identity hash, so replies checked against one taxonomy are never reused for another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from iopo_eval.judges.parse import (
    PARSERS,
    JudgeParseError,
    ParsedJudgement,
    ParserSpec,
    json_objects,
    register_parser,
    strip_fences,
)
from iopo_eval.training.databuild.distribution import MAX_CONSTRAINTS
from iopo_eval.training.databuild.taxonomy import Taxonomy

NO_SCORES = ParsedJudgement(scores=[], reasons=None, overall=None)
QC_KINDS = ("redundant", "conflicting", "incomplete", "unverifiable")
QC_VERDICTS = ("keep", "fix", "drop")
REWRITE_OPERATIONS = ("change", "remove")


def reply_object(reply: str, required: tuple[str, ...]) -> dict[str, Any]:
    """The JSON object a reply holds: the whole reply (code fences allowed), else the last object in it
    that has every ``required`` key. Raises ``JudgeParseError`` otherwise."""
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the LLM replied with no text")
    try:
        whole = json.loads(strip_fences(reply))
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict):
        candidates = [whole]
    else:
        candidates = [obj for _, obj in json_objects(reply) if all(k in obj for k in required)]
    if not candidates:
        raise JudgeParseError("parse_error", f"no JSON object with the keys {list(required)}")
    obj = candidates[-1]
    missing = [k for k in required if k not in obj]
    if missing:
        raise JudgeParseError("parse_error", f"the reply's JSON object has no {missing[0]!r}")
    return obj


def _text(obj: dict[str, Any], key: str, where: str, *, allow_empty: bool = False) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise JudgeParseError(
            "parse_error", f"{where}{key!r} must be a {'' if allow_empty else 'non-empty '}string"
        )
    return value.strip()


def constraint_list(value: Any, dimension_ids: set[str], where: str) -> list[dict[str, str]]:
    """[{"dimension", "constraint"}] with known dimension ids and non-empty texts."""
    if not isinstance(value, list):
        raise JudgeParseError("parse_error", f"{where} must be a list")
    out = []
    for i, entry in enumerate(value, start=1):
        if not isinstance(entry, dict):
            raise JudgeParseError("parse_error", f"{where} entry {i} is not an object")
        text = _text(entry, "constraint", f"{where} entry {i}: ")
        dim = entry.get("dimension")
        if dim not in dimension_ids:
            raise JudgeParseError("parse_error", f"{where} entry {i}: unknown dimension {dim!r}")
        out.append({"dimension": dim, "constraint": text})
    return out


def _constraint_schema(
    dimension_ids: list[str], min_items: int | None, max_items: int | None
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "dimension": {"type": "string", "enum": dimension_ids},
                "constraint": {"type": "string"},
            },
            "required": ["dimension", "constraint"],
            "additionalProperties": False,
        },
    }
    if min_items is not None:
        schema["minItems"] = min_items
    if max_items is not None:
        schema["maxItems"] = max_items
    return schema


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


# --- the parse functions (pure: reply text and the expected count in, parsed value out) -----------------
def parse_expand(reply: str, n_expected: int, dimension_ids: set[str]) -> dict[str, Any]:
    obj = reply_object(reply, ("usable", "instruction", "added"))
    usable = obj.get("usable")
    if not isinstance(usable, bool):
        raise JudgeParseError("parse_error", "'usable' must be true or false")
    reason = obj.get("reason", "")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not usable:
        return {"usable": False, "reason": reason, "instruction": "", "added": []}
    added = constraint_list(obj.get("added"), dimension_ids, "'added'")
    if len(added) != n_expected:
        raise JudgeParseError("wrong_count", f"expected {n_expected} added constraints, got {len(added)}")
    return {"usable": True, "reason": reason, "instruction": _text(obj, "instruction", ""), "added": added}


def parse_structure(reply: str, n_expected: int, dimension_ids: set[str]) -> dict[str, Any]:
    obj = reply_object(reply, ("description", "constraints"))
    constraints = constraint_list(obj.get("constraints"), dimension_ids, "'constraints'")
    if not 1 <= len(constraints) <= MAX_CONSTRAINTS:
        raise JudgeParseError(
            "wrong_count", f"expected 1-{MAX_CONSTRAINTS} constraints, got {len(constraints)}"
        )
    raw_input = obj.get("input", "")
    if raw_input is None:
        raw_input = ""
    if not isinstance(raw_input, str):
        raise JudgeParseError("parse_error", "'input' must be a string")
    return {
        "description": _text(obj, "description", ""),
        "input": raw_input.strip(),
        "constraints": constraints,
    }


def parse_quality(reply: str, n_expected: int, dimension_ids: set[str]) -> dict[str, Any]:
    obj = reply_object(reply, ("issues", "verdict"))
    verdict = obj.get("verdict")
    if verdict not in QC_VERDICTS:
        raise JudgeParseError("parse_error", f"'verdict' must be one of {QC_VERDICTS}, got {verdict!r}")
    issues_raw = obj.get("issues")
    if not isinstance(issues_raw, list):
        raise JudgeParseError("parse_error", "'issues' must be a list")
    issues = []
    for i, entry in enumerate(issues_raw, start=1):
        if not isinstance(entry, dict):
            raise JudgeParseError("parse_error", f"issue {i} is not an object")
        index, kind = entry.get("index"), entry.get("kind")
        if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= n_expected:
            raise JudgeParseError(
                "parse_error", f"issue {i}: 'index' must be a constraint number 1-{n_expected}"
            )
        if kind not in QC_KINDS:
            raise JudgeParseError("parse_error", f"issue {i}: 'kind' must be one of {QC_KINDS}, got {kind!r}")
        note = entry.get("note", "")
        issues.append({"index": index, "kind": kind, "note": note if isinstance(note, str) else ""})
    fixed: list[dict[str, str]] = []
    if verdict == "fix":
        fixed = constraint_list(obj.get("constraints"), dimension_ids, "'constraints'")
        if not 1 <= len(fixed) <= MAX_CONSTRAINTS:
            raise JudgeParseError(
                "wrong_count", f"a fix needs 1-{MAX_CONSTRAINTS} constraints, got {len(fixed)}"
            )
    return {"verdict": verdict, "issues": issues, "constraints": fixed}


def parse_rewrite(reply: str, n_expected: int) -> dict[str, Any]:
    obj = reply_object(reply, ("index", "operation"))
    index, operation = obj.get("index"), obj.get("operation")
    if isinstance(index, bool) or not isinstance(index, int) or not 1 <= index <= n_expected:
        raise JudgeParseError(
            "parse_error", f"'index' must be a constraint number 1-{n_expected}, got {index!r}"
        )
    if operation not in REWRITE_OPERATIONS:
        raise JudgeParseError(
            "parse_error", f"'operation' must be one of {REWRITE_OPERATIONS}, got {operation!r}"
        )
    new = obj.get("constraint", "")
    if not isinstance(new, str):
        raise JudgeParseError("parse_error", "'constraint' must be a string")
    if operation == "change" and not new.strip():
        raise JudgeParseError("parse_error", "a change needs the new constraint text")
    return {"index": index, "operation": operation, "constraint": new.strip()}


def parse_text(reply: str, n_expected: int) -> str:
    if reply is None or not reply.strip():
        raise JudgeParseError("empty_reply", "the LLM replied with no text")
    return reply.strip()


# --- schemas and registration ---------------------------------------------------------------------------
def _expand_schema(ids: list[str]) -> Callable[[int], dict[str, Any]]:
    return lambda n: _object(
        {
            "usable": {"type": "boolean"},
            "reason": {"type": "string"},
            "instruction": {"type": "string"},
            "added": _constraint_schema(ids, n, n),
        }
    )


def _structure_schema(ids: list[str]) -> Callable[[int], dict[str, Any]]:
    return lambda n: _object(
        {
            "description": {"type": "string"},
            "input": {"type": "string"},
            "constraints": _constraint_schema(ids, 1, MAX_CONSTRAINTS),
        }
    )


def _quality_schema(ids: list[str]) -> Callable[[int], dict[str, Any]]:
    def issue(n: int) -> dict[str, Any]:
        return _object(
            {
                "index": {"type": "integer", "minimum": 1, "maximum": n},
                "kind": {"type": "string", "enum": list(QC_KINDS)},
                "note": {"type": "string"},
            }
        )

    return lambda n: _object(
        {
            "issues": {"type": "array", "items": issue(n)},
            "verdict": {"type": "string", "enum": list(QC_VERDICTS)},
            "constraints": _constraint_schema(ids, None, MAX_CONSTRAINTS),
        }
    )


def _rewrite_schema(n: int) -> dict[str, Any]:
    return _object(
        {
            "reason": {"type": "string"},
            "index": {"type": "integer", "minimum": 1, "maximum": n},
            "operation": {"type": "string", "enum": list(REWRITE_OPERATIONS)},
            "constraint": {"type": "string"},
        }
    )


def _ensure(spec: ParserSpec) -> str:
    if spec.name not in PARSERS:
        register_parser(spec)
    return spec.name


def _checked(fn: Callable[[str, int], Any]) -> Callable[[str, int], ParsedJudgement]:
    def parse(reply: str, n_expected: int) -> ParsedJudgement:
        fn(reply, n_expected)
        return NO_SCORES

    return parse


TEXT_PARSER = _ensure(ParserSpec("build_text_v1", _checked(parse_text)))
REWRITE_PARSER = _ensure(ParserSpec("build_rewrite_v1", _checked(parse_rewrite), _rewrite_schema))


def taxonomy_parsers(taxonomy: Taxonomy) -> dict[str, str]:
    """Register (once) the taxonomy-dependent parsers; returns step -> parser name."""
    tag = taxonomy.fingerprint()[:8]
    ids = list(taxonomy.dimensions)
    known = set(ids)
    return {
        "expand": _ensure(
            ParserSpec(
                f"build_expand_v1@{tag}",
                _checked(lambda r, n: parse_expand(r, n, known)),
                _expand_schema(ids),
            )
        ),
        "structure": _ensure(
            ParserSpec(
                f"build_structure_v1@{tag}",
                _checked(lambda r, n: parse_structure(r, n, known)),
                _structure_schema(ids),
            )
        ),
        "quality": _ensure(
            ParserSpec(
                f"build_quality_v1@{tag}",
                _checked(lambda r, n: parse_quality(r, n, known)),
                _quality_schema(ids),
            )
        ),
        "rewrite": REWRITE_PARSER,
        "respond": TEXT_PARSER,
        "respond_x2": TEXT_PARSER,
    }
