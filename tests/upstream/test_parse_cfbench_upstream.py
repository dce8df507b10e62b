"""CFBench replies read exactly as upstream's ``code/evalaute.py`` reads them: the strict and fallback
readings are compared with upstream's own ``_get_judge_scores`` / ``_get_judge_scores_guaranteed``
(run from the mirror as test-only oracles) on generated replies over real checkpoints, including the
ones with stray spaces; then the engine-facing parser and the judged-file reader."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import upstream_oracles as oracle

from iopo_eval.data.cfbench import CFBenchItem, load_cfbench
from iopo_eval.importers.cfbench_judged import score_judged_file
from iopo_eval.judges.parse import PARSERS, JudgeParseError
from iopo_eval.judges.parse_cfbench_upstream import (
    FAILED,
    FALLBACK,
    STRICT,
    after_retries,
    parse_upstream_reply,
    strict_scores,
    upstream_fallback,
    upstream_strict,
)

SEPARATORS = ["\t", "\t", "\t", " ", "："]
SCORES = ["0", "1", "1.0", "0.0", " 1", "1\n", "-0", "2", "0.5", "x", "", "nan", "１", "1 1", "1e0"]


def items() -> list[CFBenchItem]:
    data = load_cfbench()
    spaced = [i for i in data if any(c.text != c.text.strip() for c in i.criteria)]
    plain = [i for i in data if len(i.criteria) >= 3 and all(c.text == c.text.strip() for c in i.criteria)][
        :5
    ]
    with_newline = [i for i in data if any("\n" in c.text for c in i.criteria)][:3]
    return list({i.idx: i for i in spaced + plain + with_newline}.values())


def generated_reply(rng: random.Random, criteria: list[str]) -> str:
    """Upstream's strict format, then none, one or two of the slips judges make."""
    echoes = list(criteria)
    separators = ["\t"] * len(criteria)
    scores = [rng.choice(["0", "1"]) for _ in criteria]
    joiner, tail = "\n\n", ""
    for _ in range(rng.choice([0, 0, 1, 1, 2])):
        k = rng.randrange(len(echoes))
        slip = rng.randrange(6)
        if slip == 0:
            text = echoes[k]
            echoes[k] = rng.choice([text.strip(), text + " ", f"{text}\t1", text[:-1] or "x"])
        elif slip == 1:
            separators[k] = rng.choice(SEPARATORS)
        elif slip == 2:
            scores[k] = rng.choice(SCORES)
        elif slip == 3:
            joiner = rng.choice(["\n", "\n\n\n"])
        elif slip == 4:
            tail = rng.choice(["\n", "\n\n", " "])
        elif len(echoes) > 1:
            del echoes[k], separators[k], scores[k]
    return joiner.join(e + sep + sc for e, sep, sc in zip(echoes, separators, scores, strict=True)) + tail


def test_strict_and_fallback_match_upstreams_own_functions() -> None:
    rng = random.Random(2408)
    states = {STRICT: 0, FALLBACK: 0, FAILED: 0}
    upstream_stopped = 0
    for item in items():
        criteria = [c.text for c in item.criteria]
        for _ in range(150):
            reply = generated_reply(rng, criteria)
            theirs = oracle.cfbench_strict(reply, criteria)
            ours = upstream_strict(reply, criteria)
            assert ours == (None if theirs is None else [float(s) for s in theirs]), (item.idx, reply)
            try:
                fallback = [float(s) for s in oracle.cfbench_fallback(reply)]
            except ValueError:  # upstream's run stops here; we skip the line (tasks/cfbench/README.md)
                upstream_stopped += 1
                fallback = None
            if fallback is not None:
                assert upstream_fallback(reply) == fallback, (item.idx, reply)
            states[parse_upstream_reply(reply, criteria).state] += 1
    assert all(states.values()) and upstream_stopped > 0, states


def test_a_checkpoint_with_a_leading_space_must_be_echoed_with_it() -> None:
    item = next(i for i in load_cfbench() if any(c.text.startswith(" ") for c in i.criteria))
    criteria = [c.text for c in item.criteria]
    echoed = "\n\n".join(f"{c}\t1" for c in criteria)
    trimmed = "\n\n".join(f"{c.strip()}\t1" for c in criteria)
    assert parse_upstream_reply(echoed, criteria).state == STRICT
    assert parse_upstream_reply(trimmed, criteria) == after_retries(trimmed)
    assert parse_upstream_reply(trimmed, criteria).state == FALLBACK
    assert oracle.cfbench_strict(trimmed, criteria) is None and oracle.cfbench_strict(echoed, criteria) == [
        "1"
    ] * len(criteria)


def test_the_fallback_drops_zeros_as_upstream_unless_asked_to_keep_them() -> None:
    reply = "a\t1\nb\t0\nc\t1.0\nd\t0.5\ne 1"
    assert upstream_fallback(reply) == [1.0, 1.0] == [float(s) for s in oracle.cfbench_fallback(reply)]
    assert upstream_fallback(reply, keep_zeros=True) == [1.0, 0.0, 1.0]
    assert after_retries("a\t0\nb\t0") == after_retries(None) == after_retries("无法评估")
    assert after_retries("a\t0\nb\t0").state == FAILED and after_retries("a\t0").scores == [0.0]
    assert after_retries("a\t0\nb\t0", keep_zeros=True).state == FALLBACK
    assert after_retries("a\tyes\nb\t1").scores == [1.0]  # upstream stops on "yes"; the line is skipped here


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("甲\t1\n\n乙\t0", "wrong_count"),
        ("甲\t1\n\n乙\t0\n\n丙\t1\n\n", "wrong_count"),  # a trailing blank line is a fourth block
        ("甲\t1\n\n乙 0\n\n丙\t1", "parse_error"),
        ("甲\t1\n\n乙\t0\t0\n\n丙\t1", "parse_error"),
        ("甲\t1\n\n 乙\t0\n\n丙\t1", "parse_error"),
        ("甲\t1\n\n乙\t0.5\n\n丙\t1", "out_of_range"),
        ("甲\t1\n\n乙\t满足\n\n丙\t1", "out_of_range"),
        ("", "empty_reply"),
    ],
)
def test_the_engine_parser_rejects_what_upstream_re_judges(reply: str, kind: str) -> None:
    parser = PARSERS["cfbench_upstream"].for_request({"criteria": ["甲", "乙", "丙"]})
    with pytest.raises(JudgeParseError) as err:
        parser.parse(reply, 3)
    assert err.value.error_kind == kind
    assert parser.parse("甲\t1\n\n乙\t0.0\n\n丙\t 1 \n", 3).scores == [1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="needs the request's 'criteria'"):
        PARSERS["cfbench_upstream"].parse("甲\t1", 1)
    assert strict_scores("甲\t-0", ["甲"]) == [0.0]


def test_the_judged_file_reader_reads_as_upstream_did(tmp_path: Path) -> None:
    """Replies in a judged file are read exactly as upstream read them: its own functions' scores and
    parse states (computed here by the oracle and stored as upstream stores them) all agree."""
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    for item in items():
        criteria = [c.text for c in item.criteria]
        reply = generated_reply(rng, criteria)
        theirs = oracle.cfbench_strict(reply, criteria)
        if theirs is not None:
            stored, state = theirs, "1"
        else:
            try:
                stored = oracle.cfbench_fallback(reply)
            except ValueError:
                continue  # upstream's run would have stopped: there is no upstream reading to compare
            stored, state = (stored, "0") if stored else (["0"], "-1")
        doc = item.to_doc()
        doc.pop("id")
        rows.append(
            {**doc, "response": "r", "judge_response": reply, "judge_score": stored, "judge_parsing": state}
        )
    path = tmp_path / "judged.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    _run, records = score_judged_file(
        path, tmp_path / "out", allow_partial=True, counting="upstream", bootstrap_iters=10
    )
    assert len(records) == len(rows) > 10
    assert all(r.extra["matches_stored"] for r in records), [
        (r.item_id, r.extra["parse_state"]) for r in records if not r.extra["matches_stored"]
    ]
    assert {r.extra["parse_state"] for r in records} >= {"1", "0"}
