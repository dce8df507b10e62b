"""Quadruple builders: rule-based (checker-labelled) and LLM-based against a real loopback
OpenAI-compatible server; both refuse evaluation data."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.training import constraints as C
from iopo_eval.training.data import load_examples
from iopo_eval.training.eval_guard import EvaluationDataError, evaluation_prompt_index, refuse_evaluation_file
from iopo_eval.training.llm_builder import EndpointSettings, build_from_trace_rows
from iopo_eval.training.rule_builder import HELDOUT_TOPICS, TRAIN_TOPICS, build_quadruples, heldout_items

MIRROR = Path(os.environ.get("IOPO_EVAL_DATA_MIRROR", "/work/shared/data"))
TRACE_EVAL = MIRROR / "trace/202409_trace_evaluation.jsonl"


def test_checkers_by_hand() -> None:
    assert C.LOWER.check("all lower, fine.") and not C.LOWER.check("Not lower")
    assert C.UPPER.check("ALL CAPS 42.") and not C.UPPER.check("123")
    assert C._at_most(5).check("one two three four five") and not C._at_most(5).check("a b c d e f")
    assert C._include("river").check("River and river.") and not C._include("river").check("rivers river")
    assert C._avoid("river").check("rivers only") and not C._avoid("river").check("a River")
    assert C.JSON_FORMAT.check('```json\n{"a": 1}\n```') and not C.JSON_FORMAT.check("a: 1")
    assert C._bullets(2).check("* one\n* two") and not C._bullets(2).check("* one\n* two\n- three")
    assert C._ending("Thank you.").check('Done. thank you."') and not C._ending("Thank you.").check(
        "Thank you. Bye"
    )


def test_rule_quadruples_are_checker_verified() -> None:
    quads = build_quadruples(60, seed=3)
    assert len(quads) == 60
    assert build_quadruples(5, seed=3)[0] == quads[0]  # reproducible from the seed
    for q in quads:
        assert q.x1 != q.x2 and q.y1 != q.y2
        assert any(t in q.x1[0]["content"] for t in TRAIN_TOPICS)


def test_rendered_responses_satisfy_their_constraints_and_fail_the_contrast() -> None:
    import random

    rng = random.Random(0)
    for family in C.STAGES:
        for _ in range(5):
            a, b = C.contrast_pair(family, rng, C.FamilyValues(), ["Filler words go here to pad the text."])
            text = "A plain sentence about cooking. Another one follows here. And a third one ends it."
            ya, yb = C.render(text, [a]), C.render(text, [b])
            assert a.check(ya) and not b.check(ya), (family, a.kind, ya)
            assert b.check(yb) and not a.check(yb), (family, b.kind, yb)


def test_heldout_items_use_other_topics_and_values() -> None:
    items = heldout_items(30)
    assert all(any(t in i.prompt for t in HELDOUT_TOPICS) for i in items)
    assert not any(t in i.prompt for i in items for t in TRAIN_TOPICS)
    assert all(2 <= len(i.constraints) <= 3 for i in items)


def _fake_llm(request: dict) -> str:
    """A scripted generator/judge: rewrites constraints, answers with a tag, scores tag matches (the
    judge is asked with the TRACE judge template, and answers in its JSON format)."""
    prompt = request["messages"][-1]["content"]
    if prompt.startswith("You write training data"):
        return '```json\n{"constraints": ["The title has 16 to 20 characters", "Use a plain tone"]}\n```'
    if prompt.startswith("You are an impartial and strict judge"):
        constraints = re.search(r"<constraints-(\w+)>\n(.*?)\n</constraints-\1>", prompt, re.S).group(2)
        response = re.search(r"<response-(\w+)>\n(.*?)\n</response-\1>", prompt, re.S).group(2)
        version = "B" if "16 to 20" in constraints else "A"
        n = len(constraints.splitlines())
        score = 10 if f"version {version}" in response else 4
        entries = [{"index": i, "reason": "checked", "score": score} for i in range(1, n + 1)]
        return json.dumps({"constraints": entries, "overall": score})
    return "Answer for version B" if "16 to 20" in prompt else "Answer for version A"


def test_llm_builder_against_loopback_server(tmp_path) -> None:
    rows = [
        {"id": "t1", "description": "Write a title for an essay about studying", "constraints_splits":
         ["1. The title has 10 to 15 characters;", "2. Use an inspiring tone;"], "input": "NULL"},
        {"id": "t2", "description": "Name a podcast about gardening", "constraints": "1. Two words\n2. Playful"},
    ]  # fmt: skip
    src = tmp_path / "instructions.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "quads.jsonl"
    with OpenAIServer(reply=_fake_llm) as server:
        settings = EndpointSettings(base_url=server.base_url, model="fake", api_key_env="IOPO_TEST_NO_KEY")
        cache = tmp_path / "cache.sqlite"
        report = build_from_trace_rows(src, out, settings, judge=settings, concurrency=2, cache_path=cache)
        # 2 rows x (rewrite + 2 answers + 4 judge calls), all through the judge engine and its cache
        assert server.calls == 14
        assert all(b["model"] == "fake" for b in server.bodies)
        # A rerun pays for nothing twice: every call is answered from the cache.
        again = build_from_trace_rows(
            src, tmp_path / "again.jsonl", settings, judge=settings, cache_path=cache
        )
        assert server.calls == 14 and again.built == 2 and again.usd == 0.0
    assert report.built == 2 and not report.skipped
    quads = load_examples(out)
    assert (
        quads[0]
        .x1[0]["content"]
        .startswith("Write a title for an essay about studying\n1. The title has 10 to 15")
    )
    assert "# Inputs" not in quads[0].x1[0]["content"]
    assert "2. Use a plain tone" in quads[0].x2[0]["content"]
    assert (quads[0].y1, quads[0].y2) == ("Answer for version A", "Answer for version B")


def test_llm_builder_judge_filter_drops_bad_pairs(tmp_path) -> None:
    src = tmp_path / "i.jsonl"
    src.write_text(
        json.dumps({"description": "Write a haiku about rain", "constraints_splits": ["1. Three lines"]})
    )
    with OpenAIServer(reply=lambda r: _fake_llm(r).replace("version B", "version A")) as server:
        settings = EndpointSettings(base_url=server.base_url, model="fake")
        report = build_from_trace_rows(
            src, tmp_path / "o.jsonl", settings, judge=settings, cache_path=tmp_path / "c.sqlite"
        )
    assert report.built == 0 and report.skipped == {"empty or identical responses": 1}

    # An answer to x2 that also follows x1 is dropped by the judge's crossed check.
    def both(request: dict) -> str:
        return _fake_llm(request).replace("Answer for version B", "Answer for version A and version B")

    with OpenAIServer(reply=both) as server:
        settings = EndpointSettings(base_url=server.base_url, model="fake")
        report = build_from_trace_rows(
            src, tmp_path / "o2.jsonl", settings, judge=settings, cache_path=tmp_path / "c2.sqlite"
        )
        assert server.calls == 1 + 2 + 4
    assert report.built == 0
    assert report.skipped == {"judge: a response also follows the other instruction": 1}


@pytest.mark.skipif(not TRACE_EVAL.is_file(), reason="data mirror not available")
def test_builders_refuse_evaluation_data(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IOPO_EVAL_DATA_MIRROR", str(MIRROR))
    evaluation_prompt_index.cache_clear()
    with pytest.raises(EvaluationDataError, match="trace/eval"):
        refuse_evaluation_file(TRACE_EVAL)
    settings = EndpointSettings(base_url="http://127.0.0.1:9/v1", model="never-called")
    with pytest.raises(EvaluationDataError, match="evaluation file"):
        build_from_trace_rows(TRACE_EVAL, tmp_path / "o.jsonl", settings)
    # a copy of one evaluation row in another file is caught by its content
    first = TRACE_EVAL.read_text(encoding="utf-8").splitlines()[5]
    copy = tmp_path / "mine.jsonl"
    copy.write_text(first + "\n", encoding="utf-8")
    with pytest.raises(EvaluationDataError, match="evaluation prompt"):
        build_from_trace_rows(copy, tmp_path / "o.jsonl", settings)
    assert not (tmp_path / "o.jsonl").exists()


def test_replication_report_table_and_paired_comparisons() -> None:
    from iopo_eval.training.replication_report import report

    def result(heldout: list[list[bool]], ifeval: list[list[bool]]) -> dict:
        rows = [
            {"set": "heldout", "followed": f, "kinds": [f"case:{i}" for i in range(len(f))]} for f in heldout
        ]
        rows += [{"set": "ifeval", "followed": f, "kinds": ["x"] * len(f)} for f in ifeval]
        return {"rows": rows}

    results = {
        "sft": result([[True, False], [False, False], [True, True], [False, True]], [[True], [False]]),
        "dpo@0": result([[True, True], [False, False], [True, True], [False, True]], [[True], [False]]),
        "iopo@0": result([[True, True], [True, True], [True, True], [False, True]], [[True], [True]]),
    }
    text, blob = report(results, {"seed": 0})
    assert blob["table"]["iopo@0"]["heldout/instruction"]["value"] == 0.75
    assert blob["table"]["sft"]["heldout/constraint"]["value"] == 0.5
    cmp = {(c["candidate"], c["baseline"], c["metric"]): c for c in blob["comparisons"]}
    iopo_dpo = cmp[("iopo@0", "dpo@0", "heldout/instruction")]
    assert iopo_dpo["delta"] == 0.25 and iopo_dpo["discordant"] == [0, 1]
    assert "| iopo@0 | 75.0 [" in text


def test_replication_refuses_stale_stages(tmp_path) -> None:
    import argparse

    from iopo_eval.training.replicate import _check_settings, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    _check_settings(tmp_path, parser.parse_args([]))
    _check_settings(tmp_path, parser.parse_args(["--seeds", "0,1"]))  # more seeds reuse the same stages
    with pytest.raises(ValueError, match="n_train"):
        _check_settings(tmp_path, parser.parse_args(["--n-train", "7"]))


def test_replication_report_pools_seeds_item_by_item() -> None:
    from iopo_eval.training.replication_report import report

    def result(heldout: list[bool]) -> dict:
        return {"rows": [{"set": "heldout", "followed": [f], "kinds": ["keyword:include"]} for f in heldout]}

    results = {
        "sft": result([False, False, False, False]),
        "dpo@0": result([True, False, False, False]),
        "dpo@1": result([False, False, False, False]),
        "iopo@0": result([True, True, False, False]),
        "iopo@1": result([True, False, True, False]),
    }
    _, blob = report(results, {})
    assert blob["table"]["iopo@pooled"]["heldout/instruction"]["value"] == 0.5
    assert blob["table"]["dpo@pooled"]["heldout/instruction"]["value"] == 0.125
    pooled = [c for c in blob["comparisons"] if c["candidate"] == "iopo@pooled"]
    assert [c["baseline"] for c in pooled] == ["dpo@pooled"]
    assert (
        pooled[0]["delta"] == 0.375
        and pooled[0]["mcnemar_p"] is None
        and pooled[0]["sign_flip_p"] is not None
    )
    assert not any(c["candidate"] == "iopo@1" and c["baseline"] == "dpo@0" for c in blob["comparisons"])
    assert blob["by_family"]["iopo"]["keyword"] == [4, 8] and blob["by_family"]["sft"]["keyword"] == [0, 4]
