"""ComplexBench rule checks: one hand-written case per quirk of upstream's checker, with the expected
verdict stated, so that this file documents the semantics on its own (tasks/complexbench/README.md lists
them). The last tests also run every case through upstream's own checker (the ``complexbench_upstream``
fixture: the mirror's files, test-only) to show that the stated values are upstream's.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from iopo_eval.scoring.complexbench_rules import (
    UNKNOWN,
    RuleError,
    decom,
    judge_rule,
    split_extraction,
    to_chinese_punctuation,
    uses_each_prompt,
)

RAISES = "raises"

# (rule, segments, expected verdict: True, False, UNKNOWN (2) or RAISES), grouped by quirk.
CASES: list[tuple[str, list[str], object]] = [
    # List arguments are unquoted and split on ASCII commas; parts are stripped.
    ("model_keyword:[春天, 花]", ["春天的花"], True),
    ("model_keyword:[春天, 花]", ["春天"], False),
    ('model_keyword:["春天"]', ["春天"], False),  # quotes are part of the keyword
    ('model_keyword:["春天"]', ['他说"春天"'], True),
    ("model_keyword:[A,B]", ["A"], False),  # two keywords, A and B
    # model_keyword_num: [L, R, k1, k2, ...] counts how many listed keywords occur (not occurrences).
    ("model_keyword_num:[2, 3, 春天, 花, 雪]", ["春天的花"], True),
    ("model_keyword_num:[2, 3, 春天, 花, 雪]", ["春天春天"], False),
    ("model_keyword_num:[0, 0, 绝对]", ["今天很好"], True),
    # model_keyword_num_each keeps the spaces around its items.
    ("model_keyword_num_each:[1,1,请]", ["请带伞。", "请早到。"], True),
    ("model_keyword_num_each:[1, 1, 请]", ["请带伞。", "请早到。"], False),  # the key is " 请"
    ("model_keyword_num_each:[1,1,请]", ["请带伞。", "早到。"], False),
    # The combined two-line rules.
    ("model_keyword_num_each:[1,1,指南]\nmodel_forbidden_word_each:[危险]", ["出行指南", "安全指南"], True),
    ("model_keyword_num_each:[1,1,指南]\nmodel_forbidden_word_each:[危险]", ["出行指南", "危险指南"], False),
    ("model_startswith:您好\nmodel_endswith:再见", ["您好，我们明天再见。"], True),
    ("model_startswith:您好\nmodel_endswith:再见", ["您好，明天见"], False),
    ("model_startswith:您好 model_endswith:再见", ["您好"], RAISES),  # the two must be on two lines
    ("startswith:您好\nendswith:再见", ["您好再见"], True),
    # model_not_endswith_each, model_starts_with_list_each, model_constraint_punc_each.
    ("model_not_endswith_each:吗", ["你好吗？", "好的"], False),
    ("model_not_endswith_each:吗", ["你好", "好的"], True),
    ("model_starts_with_list_each:[首先, 其次, 最后]", ["首先a", "其次b", "最后c"], True),
    ("model_starts_with_list_each:[首先, 其次, 最后]", ["首先a", "其次b"], False),  # counts differ
    ("model_starts_with_list_each:[首先, 其次, 最后]", ["首先a", "最后b", "其次c"], False),
    ("model_constraint_punc_each:[，,。]", ["你好，世界。", "再见。"], True),  # allows ， and 。
    ("model_constraint_punc_each:[，,。]", ["你好！"], False),
    ("model_constraint_punc_each:[，,。]", ["你好,世界."], True),  # the segment is converted first
    # model_constraint_punc lists the ALLOWED marks; its (non-_each) segment is not converted, so
    # ASCII marks with a full-width form go unseen, while - " ' / and the like are seen as they are.
    ("model_constraint_punc:[。]", ["你好，世界。"], False),
    ("model_constraint_punc:[。]", ["你好,世界。"], True),
    ("model_constraint_punc:[。]", ["a-b。"], False),
    ("model_constraint_punc:[。]", ["他说“好”、《书》。"], True),  # “ ” 、 《 》 are never checked
    ("model_constraint_punc:[]", ["没有标点"], True),
    # Rules without the model_ prefix (read by upstream's second set of checks).
    ("keyword:[春天]", ["春天来了"], True),
    ("keyword:[None]", ["None"], False),  # a text holding "None" counts as nothing
    ("forbidden_word:[绝对]", [], True),
    ("forbidden_word:[绝对]", ["绝对好"], False),
    ("keyword:[春天]\nforbidden_word:[冬天]", ["春天"], RAISES),  # keyword: must end the rule
    ("forbidden_word:[冬天]\nkeyword:[春天]", ["春天"], RAISES),  # and so must forbidden_word:
    ("startswith:好的", ["好的，老师"], True),
    ("not_startswith:好的", ["好的，老师"], True),  # read as startswith: (not negated)
    ("not endswith:谢谢", ["谢谢"], False),
    ("not_endswith:谢谢", ["谢谢"], True),  # read as endswith: (not negated)
    ("endswith:。", ["好."], True),
    ("match:是", ["是。"], True),
    ("match:Hi!", ["Hi!"], False),  # the text is converted, the target is not
    ("length:[1,3]", ["春天了"], True),
    ("length_word:[2,2]", ["two words"], True),
    ("keyword_num:[1,1,a]", ["a"], UNKNOWN),
    ("keyword:[teach]", ["teach"], UNKNOWN),  # "each" anywhere makes the rule unknown
    ("forbidden_word:[model]", ["x"], UNKNOWN),  # and so does "model"
    # Json: the first balanced {...} must be an object with exactly the listed keys.
    ("Json:['title']", ['{"title": 1}'], True),
    ("Json:['title']", ['{"title": 1, "body": 2}'], False),
    ("Json:['title', '']", ['{"title": 1}'], True),  # "" is ignored
    ("Json:[]", ['{"a": 1}'], True),
    ("Json:['a']", ['x {"a": 1} y {"b": 2}'], True),
    ("Json:['a']", ['[{"a": 1}]'], True),  # a list around the object is ignored
    ("Json:['a']", ['{"a": "}"}'], False),  # braces are counted inside strings too
    ("Json:[title]", ['{"title": 1}'], RAISES),  # upstream evaluates [title]: a name error
    ("Json", ['{"a": 1}'], RAISES),  # upstream needs Json:[...]
    ("Json", [], False),
    # Nothing extracted (no segment or one empty one): forbidden-word and not-starts/ends rules pass.
    ("model_forbidden_word:[绝对]", [], True),
    ("model_forbidden_word:[绝对]", [""], True),
    ("model_forbidden_word_each:[绝对]", [], True),
    ("model_not_startswith:好的", [], True),
    ("model_not_endswith:谢谢", [""], True),
    ("model_not_endswith_each:谢谢", [], True),
    ("model_keyword:[春天]", [], False),
    ("model_length:[0,10]", [], False),
    ("model_number_each:[0,3]", [], False),
    ("model_length:[a,b]", [], False),  # arguments are not read when nothing was extracted
    # Two empty segments are not "nothing": _each rules skip empty segments, counts include them.
    ("model_keyword_each:[春天]", ["", ""], True),
    ("model_number_each:[2,2]", ["", ""], True),
    # ASCII punctuation is converted to full width (in the arguments, and in the segments of _each,
    # start/end and un-prefixed rules).
    ("model_startswith:Hi!", ["Hi! there"], True),
    ("model_keyword:[Hi!]", ["Hi!"], False),  # the keyword is converted, this segment is not
    ("model_keyword_each:[Hi!]", ["Hi!"], True),
    ("model_endswith:.", ["好。"], True),
    ("model_forbidden_word:[?]", ["why?"], True),  # looks for ？, the segment has ?
    # Starts/ends checks accept a trailing 。 or ？ after the suffix.
    ("model_endswith:谢谢", ["谢谢。"], True),
    ("model_endswith:谢谢", ["谢谢？"], True),
    ("model_endswith:谢谢", ["谢谢！"], False),
    ("model_not_endswith:谢谢", ["谢谢。"], False),
    ("model_startswith:[您好, 你好]", ["您好"], False),  # the argument is literal text, not a list
    # Non-_each rules read the first segment only.
    ("model_keyword:[花]", ["春天", "花开"], False),
    ("model_length:[1,2]", ["ab", "cdef"], True),
    ("model_startswith:A", ["B", "A"], False),
    # model_endswith_each leaves the last of several segments out.
    ("model_endswith_each:！", ["好！", "对！", "完了。"], True),
    ("model_endswith_each:！", ["完了。"], False),
    ("model_endswith_each:！", ["好。", "对！"], False),
    # Lengths count characters of the raw text or of decom (leading newlines, one pair of quotes off).
    ("model_length:[2,2]", ['"春天"'], True),
    ("model_length:[3,3]", ["\n春天了"], True),
    ("model_length_word:[3,4]", ["one two three"], True),
    ("model_length_each:[2,3]", ["ab", "abcd"], False),
    ("model_length:[1.5, 3]", ["ab"], True),  # any Python literal
    ("model_length:[0,5]", ["\n\n"], RAISES),  # upstream's decom fails on newlines only
    ("model_number_each:[3,3]", ["a", "b", "c"], True),
    # Unknown rules: 2.
    ("model_title:[x]", ["x"], UNKNOWN),
    ("model_title:[x]", [], UNKNOWN),
    ("colour:[red]", ["red"], UNKNOWN),
    ("", ["x"], UNKNOWN),
    # Malformed arguments: upstream's code raises, so does judge_rule (RuleError).
    ("model_length:[a,b]", ["x"], RAISES),
    ("model_length:[5]", ["abcdef"], RAISES),  # the missing upper bound is read
    ("model_length:[5]", ["ab"], False),  # ... only when the lower bound holds
    ("model_keyword_num:[x, 2, 春天]", ["春天"], RAISES),
    ("model_keyword:春天", ["春天"], RAISES),  # a list rule needs [...]
    # Not executed: upstream would evaluate [1+1, 5]; here a non-literal argument is malformed.
    ("model_length:[1+1, 5]", ["abc"], RAISES),
]

# (response, extraction reply, segments upstream's preprocess gives)
SPLITS: list[tuple[str, str | None, list[str]]] = [
    ("全文", "评分对象：all", ["全文"]),
    ("全文", "评分对象：allow", ["全文"]),  # anything starting with "all"
    ("全文", "评分对象： all", ["all"]),  # a space before it makes it text
    ("全文", "评分对象：None", []),
    ("全文", "评分对象：甲 None", []),  # "None" anywhere: nothing
    ("全文", "评分对象：第一||第二 || 第三", ["第一", "第二", "第三"]),
    ("全文", "评分对象：||", ["", ""]),
    ("全文", "评分对象：", [""]),
    (
        "全文",
        "【解释】\n略\n\n【模型回复中评分问题的评测对象】\n评分对象：甲||乙\n\n请注意：只输出一次",
        ["甲", "乙"],
    ),
    ("全文", "评测对象：甲", ["甲"]),
    ("全文", "分析：标题是：春天", ["春天"]),  # else after the last full-width colon
    ("全文", "the title is X", ["the title is X"]),  # no marker: the whole reply
    ("全文", "评分对象: 甲", ["评分对象: 甲"]),  # an ASCII colon is no marker
    ("全文", None, []),  # no reply at all
]


def _run(rule: str, segments: list[str]) -> object:
    try:
        return judge_rule(rule, segments)
    except RuleError:
        return RAISES


@pytest.mark.parametrize(("rule", "segments", "expected"), CASES)
def test_rule_quirks(rule: str, segments: list[str], expected: object) -> None:
    got = _run(rule, segments)
    assert (type(got), got) == (type(expected), expected)


@pytest.mark.parametrize(("response", "reply", "segments"), SPLITS)
def test_split_extraction(response: str, reply: str | None, segments: list[str]) -> None:
    assert split_extraction(response, reply) == segments


def test_judge_rule_leaves_the_segments_alone() -> None:
    segments = ["Hi! there"]
    assert judge_rule("model_startswith:Hi!", segments) is True
    assert segments == ["Hi! there"]  # upstream converts segments[0] in place; we do not


def test_helpers() -> None:
    assert to_chinese_punctuation("a,b.c!?:;()“x”-") == 'a，b。c！？：；（）"x"-'
    assert decom("\n\n“引用”") == "引用" and decom("`x") == "`x" and decom("") == ""
    with pytest.raises(RuleError, match="newlines only"):
        decom("\n")
    assert uses_each_prompt("model_length_each:[1,2]") and uses_each_prompt("keyword:[teach]")
    assert not uses_each_prompt("model_length:[1,2]")


def test_the_stated_values_are_upstreams(complexbench_upstream: ModuleType) -> None:
    for rule, segments, expected in CASES:
        try:
            value = complexbench_upstream.decompose_judge(rule, list(segments))
        except Exception:
            value = RAISES
        if rule == "model_length:[1+1, 5]":  # the documented difference: upstream executes it
            assert value is True
            continue
        assert (type(value), value) == (type(expected), expected), rule
    for response, reply, segments in SPLITS:
        assert complexbench_upstream.preprocess(response, reply)[1] == segments, reply
