"""ComplexBench rule checks: every rule family on hand-made segments, and rule-string validation."""

from __future__ import annotations

import pytest

from iopo_eval.scoring.complexbench_rules import RULE_NAMES, RuleError, check_rule, decom, parse_rule


def check(rule: str, segments: list[str] | None) -> bool:
    return check_rule(parse_rule(rule), segments)


@pytest.mark.parametrize(
    ("rule", "segments", "expected"),
    [
        # model_length: characters of the joined segments, raw or normalised (decom)
        ("model_length:[3,5]", ["abcd"], True),
        ("model_length:[3,5]", ["ab", "cd"], True),  # joined: 4 characters
        ("model_length:[3,5]", ["abcdef"], False),
        ("model_length:[5,5]", ["春天来了啊"], True),  # one character per Chinese character
        ("model_length:[1,4]", ["## 春天\n- 花开"], True),  # raw 10 characters, decom "春天花开" 4
        ("model_length:[10,10]", ["## 春天\n- 花开"], True),  # the raw form fits too
        ("model_length:[5,9]", ["## 春天\n- 花开"], False),  # neither 10 nor 4
        # model_length_each: every segment on its own
        ("model_length_each:[2,3]", ["ab", "abc"], True),
        ("model_length_each:[2,3]", ["ab", "abcd"], False),
        # model_length_word: whitespace-separated words
        ("model_length_word:[3,4]", ["one two three"], True),
        ("model_length_word:[3,4]", ["one two", "three four five"], False),  # 5 words joined
        ("model_length_word:[1,2]", ["one  two\nthree"], False),
        # model_keyword[_each]: every keyword occurs
        ('model_keyword:["春天", "花"]', ["春天的花"], True),
        ('model_keyword:["春天", "花"]', ["春天", "花开"], True),  # across segments when joined
        ('model_keyword:["春天", "雪"]', ["春天的花"], False),
        ('model_keyword_each:["指南"]', ["出行指南", "安全指南"], True),
        ('model_keyword_each:["指南"]', ["出行指南", "安全须知"], False),
        ('model_keyword:"春天"', ["春天"], True),  # a bare string is one keyword
        # model_keyword_num[_each]: occurrence count in [min, max] (max optional)
        ('model_keyword_num:["注意", 2]', ["注意安全，注意天气"], True),
        ('model_keyword_num:["注意", 3]', ["注意安全，注意天气"], False),
        ('model_keyword_num:["注意", 1, 1]', ["注意安全，注意天气"], False),
        ('model_keyword_num_each:["请", 1, 1]', ["请带伞。", "请早到。"], True),
        ('model_keyword_num_each:["请", 1, 1]', ["请带伞。", "请请早到。"], False),
        # model_forbidden_word[_each]: none occurs
        ('model_forbidden_word:["绝对"]', ["今天很好"], True),
        ('model_forbidden_word:["绝对", "肯定"]', ["今天肯定好"], False),
        ("model_forbidden_word_each:['可能']", ["好！", "我们可能去"], False),
        ("model_forbidden_word_each:['可能']", ["好！", "我们去"], True),
        # start / end, with surrounding whitespace ignored; a list means "one of them"
        ('model_startswith:["您好", "你好"]', ["  你好，朋友"], True),
        ('model_startswith:["您好"]', ["朋友您好"], False),
        ('model_startswith:["A"]', ["A first", "B second"], True),  # non-each: the joined text
        ('model_startswith_each:["-"]', ["- a", "- b"], True),
        ('model_startswith_each:["-"]', ["- a", "* b"], False),
        ('model_endswith:["。"]', ["总结完毕。\n"], True),
        ('model_endswith:["。"]', ["总结完毕！"], False),
        ('model_endswith_each:["！"]', ["好！", "对！"], True),
        ('model_endswith_each:["！"]', ["好！", "对。"], False),
        ('model_not_startswith:["好的"]', ["好的，老师"], False),
        ('model_not_startswith:["好的"]', ["老师好"], True),
        ('model_not_endswith:["谢谢"]', ["多谢谢谢"], False),
        ('model_not_endswith:["谢谢"]', ["谢谢大家"], True),
        # model_constraint_punc: none of the marks occurs
        ('model_constraint_punc:["，", ","]', ["没有逗号。"], True),
        ('model_constraint_punc:["，", ","]', ["有,逗号"], False),
        # model_number_each: number of segments
        ("model_number_each:[3,3]", ["a", "b", "c"], True),
        ("model_number_each:[3,3]", ["a", "b"], False),
        ("model_number_each:[1,5]", ["a", "b"], True),
        # Json: valid JSON holding the keys (object, or every object of a list)
        ('Json:["title"]', ['{"title": "x", "body": 1}'], True),
        ('Json:["title"]', ['{"name": "x"}'], False),
        ('Json:["title"]', ['[{"title": 1}, {"title": 2}]'], True),
        ('Json:["title"]', ['[{"title": 1}, {"x": 2}]'], False),
        ("Json", ['```json\n{"a": 1}\n```'], True),  # fenced block
        ("Json", ['Here it is: {"a": 1} done'], True),  # outermost braces
        ("Json", ["{not json}"], False),
        ("Json:[]", ["[1, 2]"], True),
    ],
)
def test_rule_cases(rule: str, segments: list[str], expected: bool) -> None:
    assert check(rule, segments) is expected


@pytest.mark.parametrize("rule", [*RULE_NAMES])
def test_nothing_extracted_fails_every_rule(rule: str) -> None:
    args = {
        "model_length": "[0,100]",
        "model_length_each": "[0,100]",
        "model_length_word": "[0,100]",
        "model_number_each": "[0,100]",
        "model_keyword_num": '["x", 0]',
        "model_keyword_num_each": '["x", 0]',
        "Json": "",
    }.get(rule, '["zzz"]')
    text = f"{rule}:{args}" if args else rule
    # Rules that would pass on any text (forbidden "zzz", length 0-100) still fail with no target.
    assert check_rule(parse_rule(text), None) is False
    assert check_rule(parse_rule(text), []) is False


def test_each_flag_follows_the_rule_name() -> None:
    assert parse_rule("model_length_each:[1,2]").each
    assert parse_rule("model_number_each:[1,2]").each
    assert not parse_rule("model_length:[1,2]").each
    assert not parse_rule("Json").each


def test_decom_removes_markup_and_whitespace() -> None:
    assert decom("# 标题\n- 第一点 **重点**\n1. 第二点\n> 引用 `code`") == "标题第一点重点第二点引用code"


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("model_lenght:[1,2]", "unknown rule 'model_lenght'"),
        ("model_length:[5,2]", "min 5 is greater than max 2"),
        ("model_length:[1]", "expected [min, max]"),
        ("model_length:[1,-2]", "whole number >= 0"),
        ("model_length:[1,true]", "whole number >= 0"),
        ("model_length", "needs arguments"),
        ("model_keyword:[]", "non-empty list of strings"),
        ('model_keyword:["a", 3]', "non-empty string"),
        ('model_keyword_num:["a"]', "[keyword, min]"),
        ("model_keyword_num:[1, 2]", "keyword must be a non-empty string"),
        ("model_startswith:[oops", "not a JSON or Python literal"),
        ("", "not a non-empty string"),
    ],
)
def test_malformed_rules_are_errors(rule: str, message: str) -> None:
    with pytest.raises(RuleError, match=__import__("re").escape(message)):
        parse_rule(rule)


def test_arguments_accept_python_literals() -> None:
    assert parse_rule("model_forbidden_word:['可能', '也许']").args == ("可能", "也许")
    assert parse_rule(" model_length : [1, 2] ").args == (1, 2)
