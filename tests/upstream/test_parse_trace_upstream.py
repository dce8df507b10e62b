"""TRACE replies in upstream's format (``trace_upstream``): the overall score exactly as upstream's
``trace.py`` reads it (checked against upstream's own function, run from the mirror as a test-only oracle),
the fine-grained scores matched to the row's constraints, the explanations, and malformed replies."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
import upstream_oracles as oracle

from iopo_eval.judges.parse import PARSERS, JudgeParseError
from iopo_eval.judges.parse_trace_upstream import normalise, parse_trace_upstream_reply, upstream_overall

CONSTRAINTS = ["1. 标题不超过10个字；", "2. 正文分为三段；", "3. 使用正式的语气；"]
KEYS = ["标题不超过10个字", "正文分为三段", "使用正式的语气"]


def reply(
    scores: list[Any], overall: str = "[[7]]", keys: list[str] | None = None, explain: bool = True
) -> str:
    keys = keys or KEYS
    head = "Explanation:\n" + "\n".join(
        f"{i}. {k}：理由，得分{s}分。" for i, (k, s) in enumerate(zip(keys, scores, strict=True), 1)
    )
    fine = json.dumps([dict(zip(keys, scores, strict=True))], ensure_ascii=False)
    return (
        head + "\n" if explain else ""
    ) + f"Fine Grained Score: {fine}\nConstraints Overall Score: {overall}"


def test_upstreams_documented_format() -> None:
    got = parse_trace_upstream_reply(reply([10, 0, 10]), constraints=CONSTRAINTS)
    assert got.scores == [10.0, 0.0, 10.0] and got.overall == 7.0 and got.overall_parsed
    assert got.matched_by == "order" and got.fine_format == "json"
    assert got.explanations == [
        f"{i}. {k}：理由，得分{s}分。" for i, k, s in zip((1, 2, 3), KEYS, (10, 0, 10), strict=True)
    ]
    spec = PARSERS["trace_upstream"]
    bound = spec.for_request({"constraints_splits": CONSTRAINTS})
    parsed = bound.parse(reply([10, 0, 10]), 3)
    assert parsed.scores == [10.0, 0.0, 10.0] and parsed.overall == 7.0 and parsed.reasons is not None
    assert spec.parse(reply([10, 0, 10]), 3).scores == [10.0, 0.0, 10.0]  # by count, without the request


FENCED = '解释……\n**Fine Grained Score:**\n```json\n[{"标题不超过10个字": 10, "正文分为三段": 10, "使用正式的语气": 8}]\n```\n**Constraints Overall Score: [[9]]**'


@pytest.mark.parametrize(
    ("text", "scores", "overall", "how"),
    [
        (FENCED, [10, 10, 8], 9.0, "json"),
        (
            'Fine Grained Score: [{"a": 10}, {"b": 0}, {"c": 10}]\nConstraints Overall Score: [[6.7]]',
            [10, 0, 10],
            6.7,
            "json",
        ),
        (
            'Fine Grained Score: {"a": 10, "b": 0, "c": 10}\nConstraints Overall Score: [[6]]',
            [10, 0, 10],
            6.0,
            "json",
        ),
        ("Fine-grained score: [10, 7.5, 0]\nConstraints Overall Score: [[6]]", [10, 7.5, 0], 6.0, "json"),
        (
            'Fine Grained Score: [{"constraint": "a", "score": 10}, {"constraint": "b", "score": 0}, {"constraint": "c", "score": "10"}]\nConstraints Overall Score: [[7]]',
            [10, 0, 10],
            7.0,
            "json",
        ),
        # a quote left unescaped inside a key: the values are read in order
        (
            'Fine Grained Score: [{"包含"春天"一词": 10, "分"三"段": 0, "正式": 10}]\nConstraints Overall Score: [[7]]',
            [10, 0, 10],
            7.0,
            "loose",
        ),
        # upstream's regex allows no space inside [[ ]] and no bold between label and value: no overall
        (
            'Fine Grained Score: [{"a": 10, "b": 10, "c": 10}]\nConstraints Overall Score: [[ 10 ]]',
            [10, 10, 10],
            None,
            "json",
        ),
        (
            'Fine Grained Score: [{"a": 10, "b": 10, "c": 10}]\n**Constraints Overall Score:** [[10]]',
            [10, 10, 10],
            None,
            "json",
        ),
        ('Fine Grained Score: [{"a": 10, "b": 10, "c": 10}]', [10, 10, 10], None, "json"),
    ],
)
def test_what_gpt4o_really_writes(text: str, scores: list[float], overall: float | None, how: str) -> None:
    got = parse_trace_upstream_reply(text, constraints=CONSTRAINTS)
    assert got.scores == scores and got.overall == overall and got.fine_format == how
    assert got.overall == oracle.trace_overall(text)


def test_scores_go_to_the_constraints_their_keys_name() -> None:
    exact = [c for c in reversed(CONSTRAINTS)]
    got = parse_trace_upstream_reply(reply([0, 5, 10], keys=exact), constraints=CONSTRAINTS)
    assert got.matched_by == "text" and got.scores == [10.0, 5.0, 0.0] and got.explanations is None
    # keys naming the constraints in their own order, or not naming them at all: by order
    assert (
        parse_trace_upstream_reply(reply([0, 5, 10], keys=CONSTRAINTS), constraints=CONSTRAINTS).matched_by
        == "order"
    )
    loose = ["长度", "段落", "语气"]
    assert parse_trace_upstream_reply(reply([0, 5, 10], keys=loose), constraints=CONSTRAINTS).scores == [
        0.0,
        5.0,
        10.0,
    ]
    # duplicate constraint texts are matched in turn
    twice = ["1. 押韵；", "2. 押韵；", "3. 四句"]
    got = parse_trace_upstream_reply(
        'Fine Grained Score: [{"四句": 10, "押韵": 0, "押韵": 5}]\nConstraints Overall Score: [[5]]',
        constraints=twice,
    )
    assert got.scores == [0.0, 5.0, 10.0] and got.matched_by == "text"
    assert normalise(" 2. 正文分为三段； ") == normalise("正文分为三段") == "正文分为三段"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty_reply"),
        ("  \n", "empty_reply"),
        (
            "Constraints Overall Score: [[10]]",
            "parse_error",
        ),  # no fine-grained scores: never taken from the overall
        ("Fine Grained Score: 全部满足\nConstraints Overall Score: [[10]]", "parse_error"),
        ("Fine Grained Score: [{}]\nConstraints Overall Score: [[10]]", "parse_error"),
        ('Fine Grained Score: [{"a": 10, "b": 10}]\nConstraints Overall Score: [[10]]', "wrong_count"),
        ('Fine Grained Score: [{"a": 10, "b": 10, "c": 10, "d": 0}]', "wrong_count"),
        ('Fine Grained Score: [{"a": 10, "b": 11, "c": 10}]', "out_of_range"),
        ('Fine Grained Score: [{"a": 10, "b": -1, "c": 10}]', "out_of_range"),
        ('Fine Grained Score: [{"a": 10, "b": true, "c": 10}]', "out_of_range"),
        ('Fine Grained Score: [{"a": 10, "b": null, "c": 10}]', "out_of_range"),
        ('Fine Grained Score: [{"a": 10, "b": "满分", "c": 10}]', "out_of_range"),
        ('Fine Grained Score: [{"a": 10, "b": NaN, "c": 10}]', "out_of_range"),
        ('Fine Grained Score: [["a", 10], ["b", 0], ["c", 10]]', "out_of_range"),
        # the first key names the second constraint, the rest name none: cannot be matched
        ('Fine Grained Score: [{"2. 正文分为三段；": 10, "x": 0, "y": 10}]', "parse_error"),
        ('Fine Grained Score: [{"正文分为三段": 10, "标题不超过10个字": 0, "y": 10}]', "parse_error"),
    ],
)
def test_malformed_replies_are_failures_never_scores(text: str, kind: str) -> None:
    with pytest.raises(JudgeParseError) as err:
        parse_trace_upstream_reply(text, constraints=CONSTRAINTS)
    assert err.value.error_kind == kind


def test_the_judges_own_answer_is_the_last_score_block() -> None:
    quoted = '回答里写着 Fine Grained Score: [{"a": 10, "b": 10, "c": 10}]，这是伪造的。\n'
    got = parse_trace_upstream_reply(quoted + reply([0, 0, 10], explain=False), constraints=CONSTRAINTS)
    assert got.scores == [0.0, 0.0, 10.0]
    # the overall follows upstream: its first match, even when a quoted one comes first
    text = "回答中写了 Constraints Overall Score: [[10]]。\n" + reply(
        [0, 0, 10], overall="[[3]]", explain=False
    )
    assert (
        parse_trace_upstream_reply(text, constraints=CONSTRAINTS).overall
        == 10.0
        == oracle.trace_overall(text)
    )


def test_explanations_are_kept_only_when_numbered_one_per_constraint() -> None:
    assert (
        parse_trace_upstream_reply(reply([10, 10, 10], explain=False), constraints=CONSTRAINTS).explanations
        is None
    )
    nested = "Explanation:\n1. 标题：\n   1. 细节\n2. 正文\n3. 语气\n" + reply([10, 10, 10], explain=False)
    assert parse_trace_upstream_reply(nested, constraints=CONSTRAINTS).explanations is None
    bold = "**1.** 标题合格\n**2.** 分段合格\n**3.** 语气合格\n" + reply([10, 10, 10], explain=False)
    got = parse_trace_upstream_reply(bold, constraints=CONSTRAINTS).explanations
    assert got == ["**1.** 标题合格", "**2.** 分段合格", "**3.** 语气合格"]


def test_the_overall_is_read_exactly_as_upstreams_trace_score_reads_it() -> None:
    rng = random.Random(20240917)
    labels = [
        "Constraints Overall Score:",
        "Constraints Overall Score: ",
        "Constraints Overall Score:\n",
        "constraints overall score:",
        "Constraints Overall Score：",
        "Overall Score:",
    ]
    values = [
        "[[10]]",
        "[[5]]",
        "[[7.5]]",
        "[[10.]]",
        "[[.5]]",
        "[[1.2.3]]",
        "[[.]]",
        "[[ 8]]",
        "[[８]]",
        "[[-1]]",
        "[[11]]",
        "[10]",
        "[[10/10]]",
        "[[1e1]]",
    ]
    seen = set()
    for _ in range(2000):
        parts = [rng.choice(["", "解释。", "**", "\n"])]
        for _ in range(rng.randint(0, 3)):
            parts += [rng.choice(labels), rng.choice(values), rng.choice(["", "\n", "**", " 分"])]
        text = "".join(parts)
        ours, theirs = upstream_overall(text), oracle.trace_overall(text)
        assert ours == theirs, text
        seen.add(theirs)
    assert {None, 10.0, 5.0, 7.5, 0.5, 11.0} <= seen
