"""ComplexBench's yes/no verdict read as upstream's ``get_answer`` reads it (run from the mirror as a
test-only oracle, with a scripted stand-in for its OpenAI call), and the extraction reply kept as it is."""

from __future__ import annotations

import random

import pytest
import upstream_oracles as oracle

from iopo_eval.judges.parse import PARSERS, JudgeParseError
from iopo_eval.judges.parse_complexbench_upstream import EXTRACT, YESNO, upstream_verdict

PIECES = [
    "分析：",
    "答案：是",
    "答案：否",
    "答案:是",
    "答案： 否",
    "是",
    "否",
    "是否",
    "不是",
    "yes",
    "\n",
    "模型回复满足要求。",
    "**答案**：是",
]


def test_the_verdict_is_upstreams_on_generated_replies() -> None:
    rng = random.Random(1106)
    seen = set()
    for _ in range(1500):
        reply = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))
        ours = PARSERS[YESNO].parse(reply, 1).scores
        assert ours == [float(oracle.complexbench_verdict(reply))], reply
        assert upstream_verdict(reply) == oracle.complexbench_verdict(reply)
        seen.add(ours[0])
    assert seen == {0.0, 1.0}


def test_every_non_empty_reply_is_a_verdict_and_an_empty_one_is_asked_again() -> None:
    assert PARSERS[YESNO].parse("I cannot tell.", 1).scores == [0.0]  # upstream: "no"
    assert PARSERS[YESNO].parse(" ", 1).scores == [0.0] == [float(oracle.complexbench_verdict(" "))]
    for parser in (YESNO, EXTRACT):
        with pytest.raises(JudgeParseError) as err:
            PARSERS[parser].parse("", 1)
        assert err.value.error_kind == "empty_reply"
        with pytest.raises(ValueError, match="one question each"):
            PARSERS[parser].parse("答案：是", 2)


def test_an_extraction_reply_is_kept_for_the_rule_stage() -> None:
    for reply in ("【解释】\n……\n评分对象：甲||乙", "all", "None", "随便什么"):
        parsed = PARSERS[EXTRACT].parse(reply, 1)
        assert parsed.scores == [1.0] and parsed.reasons is None
