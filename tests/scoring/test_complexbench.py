"""ComplexBench: row validation, the dependency rule, DRFR and its breakdowns, the coherent test, failure
counting and the judge reply parsers, on the hand-made fixture (tests/fixtures/complexbench, rules in
upstream's syntax). Expected figures are computed by hand in the comments; the scripted judge replies and
responses live in script.json, with each question's [raw verdict, judge_rely].
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.aggregate import build_result
from iopo_eval.data.complexbench import DataError, load_generations, load_instances, parse_instance
from iopo_eval.importers.complexbench_generations import generation_responses
from iopo_eval.judges import judge_batch, load_judge_config
from iopo_eval.judges.parse import JudgeParseError, get_parser
from iopo_eval.judges.parse_complexbench import decode_extraction, parse_extract, parse_yesno
from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.scoring import complexbench as cb
from iopo_eval.scoring.complexbench_aggregation import judge_rely
from iopo_eval.testing.openai_server import OpenAIServer

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "complexbench"
DATA = FIXTURES / "data_final.json"
SCRIPT = json.loads((FIXTURES / "script.json").read_text(encoding="utf-8"))
MIRROR_GENERATIONS = Path("/work/shared/data/complexbench/llm_generations/gpt4_1106.jsonl")


def rows() -> list[dict[str, Any]]:
    return json.loads(DATA.read_text(encoding="utf-8"))


def write_rows(tmp_path: Path, data: list[dict[str, Any]]) -> Path:
    path = tmp_path / "data_final.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def scripted_outcomes(instance: Any, response: str) -> list[JudgeOutcome]:
    """The scripted judge's replies, parsed by the real parsers (no HTTP here)."""
    out = []
    for req in cb.judge_requests(instance, "zh", response):
        reply = SCRIPT["judge"][req.fields["question"]][0]
        parser = get_parser("complexbench_extract" if "mode" in req.fields else "complexbench_yesno")
        parsed = parser.parse(reply, 1)
        out.append(
            JudgeOutcome(key=req.key, status="ok", scores=parsed.scores, reasons=parsed.reasons, raw=reply)
        )
    return out


def scored_records() -> list[Any]:
    records = []
    for inst in load_instances(DATA):
        response = SCRIPT["responses"][str(inst.main_id)]
        records.append(
            cb.item_record(inst, "zh", "complexbench", response, scripted_outcomes(inst, response))
        )
    return records


# ---------------------------------------------------------------- data validation


def test_fixture_loads_with_every_field() -> None:
    instances = load_instances(DATA)
    assert [i.main_id for i in instances] == list(range(8))
    assert sum(len(i.scoring_questions) for i in instances) == 26
    assert [i.selection_depth for i in instances] == [None, None, 1, 1, 2, 2, None, 3]
    chain = instances[1]
    assert [q.point_id for q in chain.scoring_questions] == [1, 2, 3]
    assert [q.dep for q in chain.scoring_questions] == [(), (1,), (2,)]
    assert instances[0].prompt("en").startswith("Write a short piece")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r[3].__setitem__("main_id", 9), "row 3: main_id 9 differs from its position 3"),
        (lambda r: r[2].pop("instruction"), "row 2 (main_id 2): missing field 'instruction'"),
        (lambda r: r[1].__setitem__("scoring_questions", []), "row 1 (main_id 1): no scoring questions"),
        (
            lambda r: r[1]["scoring_questions"][2].__setitem__("dep", [7]),
            "row 1 (main_id 1) point_id 3: dep names unknown point_id(s) [7]",
        ),
        (
            lambda r: r[1]["scoring_questions"][1].__setitem__("dep", [2]),
            "row 1 (main_id 1) question 1 point_id 2: depends on itself",
        ),
        (
            lambda r: r[0]["scoring_questions"][1].__setitem__("point_id", 0),
            "row 0 (main_id 0): duplicate point_id",
        ),
        (
            lambda r: r[0]["scoring_questions"][0].__setitem__("constraint_dimensions", ["Colour"]),
            "unknown constraint dimension 'Colour'",
        ),
        (lambda r: r[0].__setitem__("composition_types", ["Or"]), "unknown composition type 'Or'"),
        (
            lambda r: r[2].__setitem__("category", "Selection"),
            "Selection group 'g1' but category 'Selection'",
        ),
        (lambda r: r[2].__setitem__("idx_in_group", "0"), "idx_in_group should be an integer or null"),
        (lambda r: r[0].__setitem__("task_types", []), "field 'task_types' is empty"),
        (
            lambda r: r[0]["scoring_questions"][0].__setitem__("rule", 5),
            "rule should be a string or null, got int",
        ),
    ],
)
def test_malformed_rows_name_the_row(tmp_path: Path, mutate: Any, message: str) -> None:
    data = rows()
    mutate(data)
    with pytest.raises(DataError, match=re.escape(message)):
        load_instances(write_rows(tmp_path, data))


def test_any_rule_string_loads(tmp_path: Path) -> None:
    """Rules are read at scoring time, as upstream reads them: an unknown rule (upstream's 2) and one whose
    arguments upstream cannot read (a recorded rule_error when scored) both load."""
    data = rows()
    data[4]["scoring_questions"][2]["rule"] = "model_keyword_count:[1]"
    data[0]["scoring_questions"][1]["rule"] = "model_length:[a,b]"
    data[0]["scoring_questions"][2]["rule"] = ""
    instances = load_instances(write_rows(tmp_path, data))
    assert instances[4].scoring_questions[2].rule == "model_keyword_count:[1]"
    assert [q.rule for q in instances[0].scoring_questions][1:3] == ["model_length:[a,b]", ""]


def test_dimension_spelling_is_normalised() -> None:
    row = copy.deepcopy(rows()[3])
    row["scoring_questions"][1]["constraint_dimensions"] = ["length", "target  LANGUAGE"]
    inst = parse_instance(row, "row")
    assert inst.scoring_questions[1].constraint_dimensions == ("Length", "Target Language")


def test_english_task_needs_instruction_en() -> None:
    row = copy.deepcopy(rows()[0])
    row["instruction_en"] = None
    with pytest.raises(DataError, match="no instruction_en"):
        parse_instance(row, "row").prompt("en")


# ---------------------------------------------------------------- dependencies


def test_dependency_chain_uses_direct_raw_judgements_only() -> None:
    chain = load_instances(DATA)[1]  # point 1 <- 2 <- 3
    rely = judge_rely(chain, {1: False, 2: True, 3: True})
    # 2 fails through its direct dependency 1; 3 depends on 2 only, whose RAW verdict is True, so 3
    # passes. A recursive rule would fail 3 as well (1 -> 2 -> 3).
    assert rely == {1: False, 2: False, 3: True}
    assert judge_rely(chain, {1: True, 2: False, 3: True}) == {1: True, 2: False, 3: False}
    with pytest.raises(KeyError, match="point_id"):
        judge_rely(chain, {1: True, 2: True})


def test_several_dependencies_all_count() -> None:
    inst = load_instances(DATA)[5]  # point 3 depends on 0 and 2
    assert judge_rely(inst, {0: True, 1: True, 2: False, 3: True})[3] is False
    assert judge_rely(inst, {0: True, 1: False, 2: True, 3: True})[3] is True


def test_an_unknown_rule_never_fails_a_dependant() -> None:
    inst = load_instances(DATA)[7]  # point 2 depends on 1, whose rule upstream does not know (2)
    # Upstream fails a question only through a dependency that is False; a 2 stays a 2.
    assert judge_rely(inst, {0: True, 1: 2, 2: True}) == {0: True, 1: 2, 2: True}
    assert judge_rely(inst, {0: False, 1: 2, 2: True}) == {0: False, 1: False, 2: True}


# ---------------------------------------------------------------- per-question verdicts and DRFR


def _typed(values: list[Any]) -> list[tuple[type, Any]]:
    return [(type(v), v) for v in values]  # 2 and True must not pass for each other


def test_question_verdicts_match_the_hand_computed_table() -> None:
    """Per question [raw verdict, judge_rely], derived by hand in script.json. The upstream quirks at
    work: Json wants exactly the listed keys (0#3 is false: the object also has "body");
    model_endswith_each leaves the last segment out (5#2 is true although "一起出发吧。" ends with 。);
    model_keyword_num counts how many listed keywords occur (4#1: 安全 and 天气, not 雨衣); a text-format
    reply with a header and a trailing note is read by upstream's preprocess (4#1: all); an unknown rule
    gives 2 (7#1), which does not fail its dependant (7#2)."""
    for inst, rec in zip(load_instances(DATA), scored_records(), strict=True):
        assert rec.status == "ok"
        got = [[q["judge"], q["rely"]] for q in rec.extra["questions"]]
        expected = [SCRIPT["judge"][q.question][1] for q in inst.scoring_questions]
        assert [_typed(g) for g in got] == [_typed(e) for e in expected], inst.main_id


def metric(result: Any, name: str) -> float:
    return result.metrics[name].value


def test_drfr_and_breakdowns_on_the_fixture() -> None:
    records = scored_records()
    result = build_result(
        cb.COMPLEXBENCH,
        records,
        docs=[{"data_sha256": "abc"}],
        task_versions={"complexbench": 2.0},
        bootstrap_iters=50,
    )
    # judge_rely true per instance: 3/4, 1/3, 3/3, 1/4, 4/4, 3/4, 0/1, 2/3 -> 17 of 26 questions. The 2 of
    # 7#1 is not a pass here (upstream counts `== True`).
    assert metric(result, "drfr") == pytest.approx(100 * 17 / 26)
    assert metric(result, "drfr_judged") == pytest.approx(100 * 17 / 26)  # nothing failed
    # No question False: instances 2, 4 and 7 (the 2 is not a failure for upstream's coherent test).
    assert metric(result, "all_pass") == pytest.approx(100 * 3 / 8)
    assert metric(result, "unknown_rule") == pytest.approx(100 * 1 / 26)
    expected = {
        "category/Chain_1": 1 / 3,
        "category/Selection_2": 7 / 8,  # instances 4 (4/4) and 5 (3/4)
        "category_family/Selection": 13 / 18,  # 3/3 + 1/4 + 4/4 + 3/4 + 2/3
        "task_type/Professional Writing": 6 / 8,  # instances 0 (3/4), 2 (3/3), 6 (0/1)
        "task_type/Task-oriented Role Play": 9 / 11,  # 4/4 + 3/4 + 2/3
        "nested/Chain_Selection": 7 / 8,  # upstream's label: sorted types joined by "_"
        "nested/Nested_Selection": 2 / 3,  # the 2 fails here
        "nested/Single": 0.0,
        "composition/And": 4 / 7,  # instance 0: 3 of 4; instance 3: points 1-3 -> 1 of 3
        "composition/Chain": 5 / 8,  # 1#1-3: 1/3; 4#1-2: 2/2; 5#1-3: 2/3
        # 2#0-2: 3/3; 3#0: 0/1; 4#0, 4#3: 2/2; 5#0: 1/1; 7#1 (the 2, a pass here as upstream's
        # truthiness test makes it): 1/1
        "composition/Selection": 7 / 8,
        "composition/Nested": 2 / 2,
        # 0#1 T, 0#3 F, 1#1-2 F F, 1#3 T T (End with + Punctuation: counted once per dimension, as
        # upstream's aggregation counts), 2#1-2 T T, 3#1 F, 3#2 F, 3#3 T, 4#3 T, 5#2 T, 7#1 (2: a pass) and
        # 7#2 T -> 10 of 15
        "group/Structure": 10 / 15,
        "group/Lexical": 5 / 6,
        "group/Utility": 1 / 3,
        "group/Semantic": 3 / 4,  # 0#0 T, 5#3 T, 6#0 F, 7#0 T
        "dimension/Length": 2 / 3,
        "dimension/Word Matching": 3 / 4,
        "dimension/End with": 3 / 3,
        "dimension/JSON Format": 2 / 3,  # 0#0 F, 7#1 (2: a pass), 7#2 T
    }
    for name, value in expected.items():
        assert metric(result, name) == pytest.approx(100 * value), name
    assert result.protocol["data_sha256"] == "abc"
    assert result.protocol["scoring_version"] == "complexbench-scoring-3"
    assert result.headline == ["drfr"]
    assert result.n_scored == 8 and result.failures == {}


def test_coherent_test_per_depth() -> None:
    result = build_result(
        cb.COMPLEXBENCH, scored_records(), task_versions={"complexbench": 2.0}, bootstrap_iters=10
    )
    # Upstream's grouping: a group's depth is the number of Selection questions of its first instance.
    # g1's first instance (2, category Selection_1) has three, so g1 is "multiple"; g2's first (4) has
    # two; g3's first (7) has one; the instances without a group (0, 1, 6) form one group whose first
    # instance (0) has none, which leaves it out.
    # depth 1: g3 = instance 7 (pass: its 2 is no failure)
    assert metric(result, "coherent/depth_1/origin") == pytest.approx(100.0)
    assert metric(result, "coherent/depth_1/coherent") == pytest.approx(100.0)
    assert metric(result, "coherent/depth_1/relative_drop") == pytest.approx(0.0)
    # depth >= 2: g1 = instances 2 (pass), 3 (fail); g2 = instances 4 (pass), 5 (fail)
    assert metric(result, "coherent/depth_2plus/origin") == pytest.approx(50.0)
    assert metric(result, "coherent/depth_2plus/coherent") == pytest.approx(0.0)
    assert metric(result, "coherent/depth_2plus/relative_drop") == pytest.approx(100.0)
    # all depths: 3 of 5 instances, 1 of 3 groups; drop (0.6 - 1/3) / 0.6
    assert metric(result, "coherent/all/origin") == pytest.approx(60.0)
    assert metric(result, "coherent/all/coherent") == pytest.approx(100 / 3)
    assert metric(result, "coherent/all/relative_drop") == pytest.approx(100 * (0.6 - 1 / 3) / 0.6)
    assert result.metrics["coherent/all/coherent"].n == 3
    assert result.to_json()["metrics"]["coherent/all/origin"]["ci_low"] is None


def test_failed_judgements_count_as_upstream_counts_them_and_are_recorded() -> None:
    records = scored_records()
    instances = load_instances(DATA)
    # 4#2's extraction failed to parse; its reply has no segment marker, so upstream's preprocess takes
    # the whole reply as the one segment, which holds 请 once: the rule passes, 4 stays 4/4.
    inst4 = instances[4]
    outcomes = scripted_outcomes(inst4, SCRIPT["responses"]["4"])
    outcomes[2] = JudgeOutcome(key="4#2", status="failed", error_kind="parse_error", raw="the tips: 请带伞")
    records[4] = cb.item_record(inst4, "zh", "complexbench", SCRIPT["responses"]["4"], outcomes)
    assert records[4].status == "judge_failed" and records[4].values["drfr"] == [4.0, 4.0]
    assert records[4].extra["questions"][2]["failed"] == "parse_error"
    # 7#2 (yes/no) got no reply at all: upstream's fallback is "no", so 7 drops to 1/3 (0, and the 2).
    inst7 = instances[7]
    outcomes = scripted_outcomes(inst7, SCRIPT["responses"]["7"])
    outcomes[2] = JudgeOutcome(key="7#2", status="failed", error_kind="server_error", raw=None)
    records[7] = cb.item_record(inst7, "zh", "complexbench", SCRIPT["responses"]["7"], outcomes)
    assert records[7].status == "judge_failed" and records[7].values["drfr"] == [1.0, 3.0]
    result = build_result(cb.COMPLEXBENCH, records, task_versions={"complexbench": 2.0}, bootstrap_iters=10)
    assert metric(result, "drfr") == pytest.approx(100 * 16 / 26)  # the headline: upstream's count
    # drfr_judged leaves instances 4 and 7 out: 17 - 4 - 2 = 11 of 26 - 4 - 3 = 19.
    assert metric(result, "drfr_judged") == pytest.approx(100 * 11 / 19)
    assert result.metrics["drfr_judged"].n == 6 and result.metrics["drfr"].n == 8
    assert result.failures == {"parse_error": 1, "server_error": 1} and result.n_scored == 6
    # Both stay in the coherent test (as in upstream's): 7 (g3, depth 1) now fails.
    assert metric(result, "coherent/depth_1/origin") == pytest.approx(0.0)
    assert metric(result, "coherent/depth_1/coherent") == pytest.approx(0.0)
    assert metric(result, "coherent/depth_2plus/origin") == pytest.approx(50.0)
    # A judgement never made (dry run, budget cap) leaves the instance without values.
    skipped = [JudgeOutcome(key="x", status="skipped", error_kind="budget_exhausted")] * 4
    rec = cb.item_record(inst4, "zh", "complexbench", "r", skipped)
    assert rec.status == "not_judged" and rec.values == {} and rec.judge["error_kind"] == "budget_exhausted"
    with pytest.raises(ValueError, match="3 judgements for 4 scoring questions"):
        cb.item_record(inst4, "zh", "complexbench", "r", skipped[:3])


def test_a_rule_upstream_cannot_check_is_a_recorded_error(tmp_path: Path) -> None:
    data = rows()
    data[0]["scoring_questions"][1]["rule"] = "model_length:[a,b]"  # upstream's eval raises on [a,b]
    inst = load_instances(write_rows(tmp_path, data))[0]
    rec = cb.item_record(inst, "zh", "complexbench", SCRIPT["responses"]["0"], scripted_outcomes(inst, "x"))
    assert rec.status == "error" and rec.values == {} and rec.judge["error_kind"] == "rule_error"
    assert "main_id 0 point_id 1" in rec.extra["rule_error"]
    result = build_result(
        cb.COMPLEXBENCH, [rec, *scored_records()[1:]], task_versions={"complexbench": 2.0}, bootstrap_iters=10
    )
    assert result.failures == {"rule_error": 1}
    assert metric(result, "drfr") == pytest.approx(100 * 14 / 22)  # instance 0 (3 of 4) is out


def test_scored_segments_follow_upstreams_preprocess() -> None:
    ok = JudgeOutcome(
        key="k",
        status="ok",
        reasons=["segments", "甲"],
        raw="【模型回复中评分问题的评测对象】\n评分对象：甲 || 乙",
    )
    assert cb.rule_segments("全文", ok) == ["甲", "乙"]  # the raw reply, read as upstream reads it
    as_json = JudgeOutcome(
        key="k",
        status="ok",
        reasons=["segments", " 甲 ", "乙"],
        raw='{"scope": "segments", "segments": [" 甲 ", "乙"]}',
    )
    assert cb.rule_segments("全文", as_json) == ["甲", "乙"]
    everything = dataclasses.replace(as_json, reasons=["all"], raw='{"scope": "all", "segments": []}')
    assert cb.rule_segments("全文", everything) == ["全文"]
    assert cb.rule_segments("全文", JudgeOutcome(key="k", status="failed", raw=None)) == []
    assert cb.yesno_verdict(JudgeOutcome(key="k", status="failed", raw="分析……\n答案：是")) is True
    assert cb.yesno_verdict(JudgeOutcome(key="k", status="failed", raw="no idea")) is False


def test_requests_one_per_question_with_extraction_mode() -> None:
    inst = load_instances(DATA)[2]
    reqs = cb.judge_requests(inst, "zh", "resp")
    assert [r.key for r in reqs] == ["2#0", "2#1", "2#2"]
    assert ["mode" in r.fields for r in reqs] == [False, True, True]
    assert reqs[1].fields["mode"] == "each" and reqs[2].fields["mode"] == "whole"
    en = cb.judge_requests(inst, "en", "resp")
    assert en[0].key == "en/2#0" and en[0].fields["question"].startswith("Did the model")
    assert en[0].fields["instruction"].startswith("If I am a student")


# ---------------------------------------------------------------- judge reply parsers


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"analysis": "ok", "answer": true}', True),
        ('{"analysis": "no", "answer": false}', False),
        ('{"analysis": "x", "answer": "是"}', True),
        ('{"analysis": "x", "answer": "否"}', False),
        ('```json\n{"analysis": "x", "answer": "yes"}\n```', True),
        ('Reasoning first. {"analysis": "x", "answer": false}', False),
        ("分析：满足要求。\n答案：是", True),
        (
            "分析：是否满足？不满足。\n答案：否",
            False,
        ),  # one 答案： match decides, despite 是 and 否 in the text
        ("答案：是 ... 答案：否", False),  # two matches: upstream's fallback, 否 present -> no
        ("是的，满足", True),  # no 答案： but 是 without 否
        ("不是，否定", False),
    ],
)
def test_yesno_parser(reply: str, verdict: bool) -> None:
    assert parse_yesno(reply, 1).scores == [float(verdict)]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("", "empty_reply"),
        ("   ", "empty_reply"),
        ('{"analysis": "x", "answer": "maybe"}', "parse_error"),
        ('{"analysis": "x", "answer": 1}', "parse_error"),
        ("I cannot tell.", "parse_error"),  # upstream would silently score this "no"
    ],
)
def test_yesno_parser_rejects(reply: str, kind: str) -> None:
    with pytest.raises(JudgeParseError) as info:
        parse_yesno(reply, 1)
    assert info.value.error_kind == kind


@pytest.mark.parametrize(
    ("reply", "scope", "segments"),
    [
        ('{"analysis": "", "scope": "segments", "segments": ["a", " ", "b"]}', "segments", ["a", "b"]),
        ('{"analysis": "", "scope": "all", "segments": ["ignored"]}', "all", []),
        ('{"analysis": "", "scope": "None", "segments": []}', "none", []),
        ("分析：标题\n评分对象：第一||第二 || 第三", "segments", ["第一", "第二", "第三"]),
        ("评分对象：all", "all", []),
        ("评分对象: None", "none", []),
        ("None", "none", []),
    ],
)
def test_extract_parser(reply: str, scope: str, segments: list[str]) -> None:
    parsed = parse_extract(reply, 1)
    assert decode_extraction(parsed.reasons) == (scope, segments)


@pytest.mark.parametrize(
    "reply",
    [
        '{"analysis": "", "scope": "some", "segments": []}',
        '{"analysis": "", "scope": "segments", "segments": []}',
        '{"analysis": "", "scope": "segments", "segments": [1]}',
        '{"analysis": "", "scope": "segments"}',
        "the title is X",
        "评分对象：",
    ],
)
def test_extract_parser_rejects(reply: str) -> None:
    with pytest.raises(JudgeParseError):
        parse_extract(reply, 1)


MALFORMED = {
    "Q-ok": '{"analysis": "fine", "answer": true}',
    "Q-text": "分析：可以。\n答案：否",
    "Q-maybe": '{"analysis": "?", "answer": "maybe"}',
    "Q-garbage": "I am not sure what you mean.",
    "Q-empty": "",
    "E-ok": "评分对象：甲||乙",
    "E-bad-scope": '{"analysis": "", "scope": "half", "segments": []}',
    "E-nothing": "no marker here",
}


def _reply_by_question(request: dict[str, Any]) -> str:
    text = request["messages"][-1]["content"]
    question = re.search(r"<question-(\w+)>\n(.*?)\n</question-\1>", text, re.S).group(2)
    return MALFORMED[question]


def test_malformed_replies_through_the_loopback_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real HTTP round trips: well-formed replies parse, malformed ones are recorded failures."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-complexbench")
    with OpenAIServer(reply=_reply_by_question) as server:
        results = {}
        for name, prefix in (
            ("complexbench-gpt4-1106-hardened", "Q"),
            ("complexbench-extract-gpt4-1106-hardened", "E"),
        ):
            config = load_judge_config(name).with_overrides(base_url=server.base_url, max_retries=0)
            reqs = [
                cb.JudgeRequest(
                    key=q,
                    fields={"instruction": "指令", "response": "回答", "question": q}
                    | ({"mode": "whole"} if prefix == "E" else {}),
                    n_expected=1,
                )
                for q in MALFORMED
                if q.startswith(prefix)
            ]
            run = judge_batch(reqs, config, tmp_path / "cache.sqlite", progress=False)
            results.update({o.key: o for o in run.outcomes})
    assert results["Q-ok"].status == "ok" and results["Q-ok"].scores == [1.0]
    assert results["Q-text"].status == "ok" and results["Q-text"].scores == [0.0]
    assert (results["Q-maybe"].status, results["Q-maybe"].error_kind) == ("failed", "parse_error")
    assert (results["Q-garbage"].status, results["Q-garbage"].error_kind) == ("failed", "parse_error")
    assert (results["Q-empty"].status, results["Q-empty"].error_kind) == ("failed", "empty_reply")
    assert decode_extraction(results["E-ok"].reasons) == ("segments", ["甲", "乙"])
    assert results["E-bad-scope"].error_kind == "parse_error" and results["E-bad-scope"].raw
    assert results["E-nothing"].error_kind == "parse_error"


# ---------------------------------------------------------------- upstream generation files


@pytest.mark.skipif(not MIRROR_GENERATIONS.is_file(), reason="needs the local data mirror")
def test_upstream_generation_file_reads_and_aligns(tmp_path: Path) -> None:
    gens = load_generations(MIRROR_GENERATIONS)
    assert len(gens) == 1150 and [g.main_id for g in gens[:3]] == [0, 1, 2]
    assert all(g.model == "gpt4_1106" for g in gens)
    # A fixture whose Chinese instructions are the first rows' (taken from the mirror at test time).
    data = rows()
    for row, gen in zip(data, gens, strict=False):
        row["instruction"] = gen.instruction
    instances = load_instances(write_rows(tmp_path, data))
    responses = generation_responses(MIRROR_GENERATIONS, instances, limit=3)
    assert list(responses) == [("complexbench", "complexbench", str(i)) for i in range(3)]
    assert responses[("complexbench", "complexbench", "1")] == gens[1].generated
    with pytest.raises(DataError, match="not in the ComplexBench data"):
        generation_responses(MIRROR_GENERATIONS, instances)  # 1,150 rows vs 8 instances
    with pytest.raises(DataError, match="main_id 0: its instruction differs"):
        generation_responses(MIRROR_GENERATIONS, load_instances(DATA), limit=1)


def test_generation_file_rows_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "gen.jsonl"
    path.write_text('{"main_id": 0, "model": "m", "instruction": "i", "generated": "g"}\n{"main_id": 0}\n')
    with pytest.raises(DataError, match="line 2: duplicate main_id 0"):
        load_generations(path)
    path.write_text('{"main_id": 0, "model": "m", "instruction": "i"}\n')
    with pytest.raises(DataError, match=re.escape("line 1 (main_id 0): missing field 'generated'")):
        load_generations(path)


def test_an_empty_response_fails_every_question_and_is_counted() -> None:
    inst = load_instances(DATA)[0]
    empty = [JudgeOutcome(key=f"0#{i}", status="failed", error_kind="empty_response") for i in range(4)]
    rec = cb.item_record(inst, "zh", "complexbench", "", empty)
    assert rec.status == "ok" and rec.extra["empty_response"] is True
    assert rec.values["drfr"] == [0.0, 4.0] and rec.values["empty_response"] == 1.0
    records = scored_records()
    records[0] = rec
    result = build_result(cb.COMPLEXBENCH, records, task_versions={"complexbench": 2.0}, bootstrap_iters=10)
    assert metric(result, "drfr") == pytest.approx(100 * 14 / 26)  # instance 0's 3 passes are lost
    assert metric(result, "empty_response") == pytest.approx(100 / 8)
