"""The build steps' reply parsers: what parses, what is refused (and so asked again by the engine)."""

from __future__ import annotations

import json

import pytest

from iopo_eval.judges.parse import PARSERS, JudgeParseError
from iopo_eval.training.databuild.parsers import (
    parse_expand,
    parse_quality,
    parse_rewrite,
    parse_structure,
    parse_text,
    taxonomy_parsers,
)
from iopo_eval.training.databuild.taxonomy import load_taxonomy

DIMS = {"inclusion", "numerical", "tone_and_style"}


def _expand(n: int = 2, **extra: object) -> str:
    added = [
        {"dimension": d, "constraint": f"constraint {i}"}
        for i, d in enumerate(["inclusion", "numerical"][:n])
    ]
    return json.dumps({"usable": True, "reason": "", "instruction": "Do it.", "added": added, **extra})


def test_expand() -> None:
    assert parse_expand(_expand(), 2, DIMS)["added"][1]["dimension"] == "numerical"
    assert parse_expand("```json\n" + _expand() + "\n```", 2, DIMS)["instruction"] == "Do it."
    assert parse_expand("Here you go: " + _expand(), 2, DIMS)["usable"]
    refusal = json.dumps({"usable": False, "reason": "harmful", "instruction": "", "added": []})
    assert parse_expand(refusal, 3, DIMS) == {
        "usable": False,
        "reason": "harmful",
        "instruction": "",
        "added": [],
    }
    for reply, kind in (
        (_expand(1), "wrong_count"),
        (_expand().replace("numerical", "astrology"), "parse_error"),
        (_expand().replace('"Do it."', '""'), "parse_error"),
        (_expand().replace("true", '"yes"'), "parse_error"),
        ("no json here", "parse_error"),
        ("  ", "empty_reply"),
    ):
        with pytest.raises(JudgeParseError) as err:
            parse_expand(reply, 2, DIMS)
        assert err.value.error_kind == kind, reply


def test_structure() -> None:
    ok = {
        "description": "Write.",
        "input": None,
        "constraints": [{"dimension": "inclusion", "constraint": "Say kiwi."}],
    }
    assert parse_structure(json.dumps(ok), 4, DIMS)["input"] == ""
    with pytest.raises(JudgeParseError, match="1-15"):
        parse_structure(json.dumps({**ok, "constraints": []}), 4, DIMS)
    with pytest.raises(JudgeParseError, match="unknown dimension"):
        parse_structure(json.dumps({**ok, "constraints": [{"dimension": "x", "constraint": "y"}]}), 1, DIMS)


def test_quality() -> None:
    keep = {"issues": [], "verdict": "keep", "constraints": []}
    assert parse_quality(json.dumps(keep), 2, DIMS)["verdict"] == "keep"
    fix = {
        "issues": [{"index": 2, "kind": "unverifiable", "note": "vague"}],
        "verdict": "fix",
        "constraints": [{"dimension": "numerical", "constraint": "Use 3 lines."}],
    }
    assert parse_quality(json.dumps(fix), 2, DIMS)["constraints"][0]["constraint"] == "Use 3 lines."
    for bad, message in (
        ({**keep, "verdict": "maybe"}, "'verdict' must be one of"),
        ({**fix, "issues": [{"index": 3, "kind": "redundant", "note": ""}]}, "constraint number 1-2"),
        ({**fix, "issues": [{"index": 1, "kind": "boring", "note": ""}]}, "'kind' must be one of"),
        ({**fix, "constraints": []}, "a fix needs 1-15"),
    ):
        with pytest.raises(JudgeParseError, match=message):
            parse_quality(json.dumps(bad), 2, DIMS)


def test_rewrite_and_text() -> None:
    change = {"reason": "r", "index": 2, "operation": "change", "constraint": "Use 9 lines."}
    assert parse_rewrite(json.dumps(change), 3)["constraint"] == "Use 9 lines."
    assert (
        parse_rewrite(json.dumps({**change, "operation": "remove", "constraint": ""}), 3)["operation"]
        == "remove"
    )
    for bad, message in (
        ({**change, "index": 4}, "1-3"),
        ({**change, "index": True}, "1-3"),
        ({**change, "constraint": " "}, "needs the new constraint"),
        ({**change, "operation": "swap"}, "'operation' must be one of"),
    ):
        with pytest.raises(JudgeParseError, match=message):
            parse_rewrite(json.dumps(bad), 3)
    assert parse_text("  an answer \n", 1) == "an answer"
    with pytest.raises(JudgeParseError):
        parse_text("", 1)


def test_parsers_register_per_taxonomy_with_schemas() -> None:
    names = taxonomy_parsers(load_taxonomy())
    assert names == taxonomy_parsers(load_taxonomy())  # registering twice is harmless
    schema = PARSERS[names["expand"]].schema(3)
    added = schema["properties"]["added"]
    assert (
        added["minItems"] == added["maxItems"] == 3
        and len(added["items"]["properties"]["dimension"]["enum"]) == 26
    )
    assert (
        PARSERS[names["quality"]].schema(4)["properties"]["issues"]["items"]["properties"]["index"]["maximum"]
        == 4
    )
    for name in names.values():  # strict-mode shape: every object lists all its keys as required
        spec = PARSERS[name]
        if spec.schema is not None:
            _all_required(spec.schema(2))


def _all_required(node: object) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object":
            assert set(node["required"]) == set(node["properties"]) and node["additionalProperties"] is False
        for value in node.values():
            _all_required(value)
    elif isinstance(node, list):
        for value in node:
            _all_required(value)
