"""Every step against the scripted loopback server: replies that parse, replies that do not (asked again,
then the item fails the run and is asked again on the next one), and replies that drop items."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from iopo_eval.testing.build_replies import block, mark, numbered
from tests.training.databuild.conftest import build, phase

GARBAGE = "I would rather not answer in JSON."


def _seed(request: dict[str, Any]) -> str:
    return block(request["messages"][-1]["content"], "seed").strip()


def _items(out) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    return {row["id"]: row for row in rows}


def test_expansion_parses_drops_and_fails_then_resumes(tmp_path, server, scripted) -> None:
    asked: Counter[str] = Counter()

    def expand(request: dict[str, Any]) -> str | None:
        seed = _seed(request)
        asked[seed] += 1
        if seed.startswith("Explain how a bicycle"):
            return json.dumps({"usable": False, "reason": "scripted", "instruction": "", "added": []})
        if seed.startswith("Suggest a weekend plan"):
            return GARBAGE  # never parses: two attempts (max_retries 1), then the item fails
        if seed.startswith("Write a product description") and asked[seed] == 1:
            return GARBAGE  # parses on the second attempt
        return None

    scripted.overrides["expand"] = expand
    code, report = build(server, tmp_path / "out", limit=4)
    row = phase(report, "expand")
    assert (row["in"], row["kept"]) == (4, 2)
    assert row["dropped"] == {"expand: the LLM found the seed unusable": 1}
    assert row["failed"] == {"parse_error": 1} and code == 3
    assert sum(asked.values()) == 1 + 1 + 2 + 2
    # the rerun asks only for the failed item (now answered), and nothing else is paid again
    del scripted.overrides["expand"]
    server.reset_counters()
    code, report = build(server, tmp_path / "out", limit=4)
    assert code == 0 and phase(report, "expand")["kept"] == 3
    assert report["cost"]["this_run"]["by_step"]["expand"]["calls"] == 1
    assert report["cost"]["this_run"]["by_step"]["structure"]["calls"] == 1  # only the new item


def test_structuring_into_trace_rows(tmp_path, server, scripted) -> None:
    def structure(request: dict[str, Any]) -> str | None:
        text = block(request["messages"][-1]["content"], "instruction")
        if text.startswith("Explain how a bicycle"):
            twice = [{"dimension": "inclusion", "constraint": "Say kiwi."}] * 2
            return json.dumps({"description": "Explain gears.", "input": "", "constraints": twice})
        if text.startswith("Suggest a weekend plan"):
            many = [{"dimension": "inclusion", "constraint": f"Say word {i}."} for i in range(16)]
            return json.dumps({"description": "Plan.", "input": "", "constraints": many})
        if text.startswith("Write a product description"):
            cons = [{"dimension": "table_background", "constraint": "Use only the prices in the table."}]
            return json.dumps(
                {"description": "Describe the bottle.", "input": "| item | price |", "constraints": cons}
            )
        return None

    scripted.overrides["structure"] = structure
    code, report = build(server, tmp_path / "out", limit=4)
    row = phase(report, "structure")
    assert row["dropped"] == {"structure: duplicate constraints": 1} and row["failed"] == {"wrong_count": 1}
    rows = {
        r["id"]: r
        for r in map(json.loads, (tmp_path / "out" / "instructions.jsonl").read_text().splitlines())
    }
    bottle = rows["en-04"]
    assert bottle["levels2"] == ["表格背景信息约束"] and bottle["input"] == "| item | price |"
    assert (
        bottle["messages"][1]["content"]
        == "Describe the bottle.\n1. Use only the prices in the table.\n# Inputs:\n| item | price |\n"
    )
    from iopo_eval.data.trace import parse_row

    for rid, r in rows.items():  # TRACE's own row validation accepts every built row
        assert parse_row(r, rid).constraints_splits == r["constraints_splits"]
    assert code == 3


def test_quality_control_keeps_fixes_and_drops(tmp_path, server, scripted) -> None:
    def quality(request: dict[str, Any]) -> str | None:
        prompt = request["messages"][-1]["content"]
        task = block(prompt, "task")
        lines = numbered(block(prompt, "constraints"))
        if task.startswith("Explain how a bicycle"):
            return json.dumps(
                {
                    "issues": [{"index": 1, "kind": "conflicting", "note": "n"}],
                    "verdict": "drop",
                    "constraints": [],
                }
            )
        if task.startswith("Write a short description"):
            first = re.match(r"(.*) \[([a-z0-9_]+)\]$", lines[0])
            assert first is not None
            fixed = [{"dimension": first.group(2), "constraint": "Mention the harbour twice."}]
            issues = [
                {"index": 1, "kind": "unverifiable", "note": "vague"},
                {"index": 1, "kind": "redundant", "note": ""},
            ]
            return json.dumps({"issues": issues, "verdict": "fix", "constraints": fixed})
        return None

    scripted.overrides["quality"] = quality
    code, report = build(server, tmp_path / "out", limit=3)
    row = phase(report, "quality")
    assert row["dropped"] == {"quality: conflicting": 1} and row["kept"] == 2 and code == 0
    assert row["stats"]["verdict: fix"] == 1 and row["stats"]["issue: unverifiable"] == 1
    item = _items(tmp_path / "out")["en-01"]
    assert item["constraints"] == [
        {"dimension": item["added"][0]["dimension"], "constraint": "Mention the harbour twice."}
    ]
    assert item["quality"]["verdict"] == "fix"


def test_responses_sft_rows_and_dpo_pairs(tmp_path, server, scripted) -> None:
    def respond(request: dict[str, Any]) -> str:
        prompt = request["messages"][-1]["content"]
        constraints = numbered(prompt)
        if prompt.startswith("Explain how a bicycle"):
            return f"Nothing useful (sample {request['seed']})."  # follows no constraint
        marks = " ".join(mark(c) for c in constraints) if request["seed"] in (1234, 1236) else ""
        return f"Answer {request['seed']}. {marks}"

    scripted.overrides["respond"] = respond
    code, report = build(server, tmp_path / "out", limit=2, candidates=3)
    assert code == 0
    row = phase(report, "judge")
    assert row["dropped"] == {"responses: no candidate followed every constraint": 1}
    assert row["stats"] == {"candidates followed every constraint": 2, "candidates judged": 6}
    sft = [json.loads(line) for line in (tmp_path / "out" / "sft.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in sft if "/x1/" in r["id"]) == ["en-01/x1/0", "en-01/x1/2"]
    (pair,) = [json.loads(line) for line in (tmp_path / "out" / "dpo_pairs.jsonl").read_text().splitlines()]
    assert pair["chosen"][0]["content"].startswith("Answer 1234.") and pair["rejected"][0][
        "content"
    ].startswith("Answer 1235.")
    # the candidates differ only by the sampling seed the generator was asked with
    seeds = Counter(b.get("seed") for b in server.bodies if not b.get("response_format"))
    assert {1234, 1235, 1236} <= set(seeds)
    assert report["judge"]["x1_responses"]["followed_every_constraint"] == 2


def test_preference_step_drops_pairs_without_an_input_preference(tmp_path, server, scripted) -> None:
    # x2 by removing a constraint: y1 follows a subset of its own constraints, so it follows x2 too
    code, report = build(server, tmp_path / "remove", limit=6, remove_share=1.0, distribution="2-3")
    assert code == 0
    row = phase(report, "cross_y1")
    assert (
        row["dropped"] == {"preference: y1 also follows x2": row["in"]}
        and report["outputs"]["quadruples"] == 0
    )
    assert phase(report, "rewrite")["stats"]["operation: remove"] == row["in"]


def test_rewrite_and_cross_judgements(tmp_path, server, scripted) -> None:
    def rewrite(request: dict[str, Any]) -> str | None:
        prompt = request["messages"][-1]["content"]
        if block(prompt, "task").startswith("Explain how a bicycle"):
            same = numbered(block(prompt, "constraints"))[0]
            return json.dumps({"reason": "r", "index": 1, "operation": "change", "constraint": same})
        return None

    def respond(request: dict[str, Any]) -> str | None:
        prompt = request["messages"][-1]["content"]
        if prompt.startswith("Suggest a weekend plan") and "Do the opposite" in prompt:
            # a y2 that follows x2 and, by accident, x1 too: no input preference
            own = [mark(c) for c in numbered(prompt)]
            old = [mark(re.sub(r" Do the opposite, variant \d+\.$", "", c)) for c in numbered(prompt)]
            return "Both. " + " ".join(own + old)
        return None

    scripted.overrides.update(rewrite=rewrite, respond=respond)
    code, report = build(server, tmp_path / "out", limit=4, distribution="2-3")
    assert code == 0
    assert phase(report, "rewrite")["dropped"] == {"rewrite: the changed constraint is unchanged": 1}
    assert phase(report, "cross_y2")["dropped"] == {"preference: y2 also follows x1": 1}
    items = _items(tmp_path / "out")
    quads = [json.loads(line) for line in (tmp_path / "out" / "quadruples.jsonl").read_text().splitlines()]
    assert len(quads) == report["outputs"]["quadruples"] == 2
    for q in quads:
        item = items[q["id"]]
        # y1 follows x1 and fails x2; y2 follows x2 and fails x1, per the judge
        assert (
            all(s == 10 for s in item["candidates"][item["chosen"]]["scores"]) and min(item["y1_on_x2"]) < 10
        )
        assert (
            all(s == 10 for s in item["candidates2"][item["chosen2"]]["scores"])
            and min(item["y2_on_x1"]) < 10
        )
        assert q["x1"] != q["x2"] and q["y1"] != q["y2"]
        assert (
            len(item["x2"]["constraints"]) == len(item["constraints"]) and item["x2"]["operation"] == "change"
        )


def test_a_judge_that_never_parses_fails_the_item(tmp_path, server, scripted) -> None:
    scripted.overrides["judge"] = lambda request: (
        GARBAGE if "Explain how a bicycle" in request["messages"][-1]["content"] else None
    )
    code, report = build(server, tmp_path / "out", limit=2, candidates=2)
    assert phase(report, "judge")["failed"] == {"parse_error": 1} and code == 3
