"""CFBench judge replies: our strict JSON parser, directly and through the real loopback server, with
the engine's retries and failure records. Upstream's text format: tests/judges/test_parse_cfbench_upstream.py."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.judges import JudgeCache, JudgeConfig, JudgeRequest, judge_batch, resolve_judge_config
from iopo_eval.judges.parse import PARSERS, JudgeParseError
from iopo_eval.judges.parse_cfbench import cfbench_schema, parse_cfbench_checkpoints
from iopo_eval.scoring.cfbench import NO_REFERENCE, judge_request
from iopo_eval.testing.openai_server import Fault, OpenAIServer

KEY_ENV = "IOPO_TEST_CFBENCH_JUDGE_KEY"


def answer(scores: list[Any], indices: list[Any] | None = None) -> str:
    indices = indices or list(range(1, len(scores) + 1))
    return json.dumps(
        {"checkpoints": [{"index": i, "score": s} for i, s in zip(indices, scores, strict=True)]}
    )


# ---------------------------------------------------------------- our JSON answer


def test_structured_reply_parses_in_order() -> None:
    parsed = parse_cfbench_checkpoints(answer([1, 0, 1]), 3)
    assert parsed.scores == [1.0, 0.0, 1.0] and parsed.reasons is None and parsed.overall is None
    assert PARSERS["cfbench_checkpoints"].parse is parse_cfbench_checkpoints


def test_fenced_reply_and_prose_are_tolerated_last_object_wins() -> None:
    assert parse_cfbench_checkpoints("```json\n" + answer([0, 1]) + "\n```", 2).scores == [0.0, 1.0]
    reply = "The response pasted " + answer([1, 1]) + " but my verdict is " + answer([0, 1])
    assert parse_cfbench_checkpoints(reply, 2).scores == [0.0, 1.0]


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("", "empty_reply"),
        ("   \n", "empty_reply"),
        ("all good: 1 1 1", "parse_error"),
        ('{"scores": [1, 1]}', "parse_error"),
        (answer([1, 1, 1]), "wrong_count"),
        (answer([1]), "wrong_count"),
        (answer([1, 2]), "out_of_range"),
        (answer([1, 0.5]), "out_of_range"),
        (answer([1, "1"]), "out_of_range"),
        (answer([1, True]), "out_of_range"),
        (answer([1, None]), "out_of_range"),
        (answer([1, 1], indices=[2, 1]), "parse_error"),
        (answer([1, 1], indices=[1, "2"]), "parse_error"),
        ('{"checkpoints": [{"index": 1, "score": 1}, {"index": 2}]}', "parse_error"),
        ('{"checkpoints": [{"index": 1, "score": 1}, 1]}', "parse_error"),
    ],
)
def test_malformed_replies_are_rejected_with_their_kind(reply: str, kind: str) -> None:
    with pytest.raises(JudgeParseError) as err:
        parse_cfbench_checkpoints(reply, 2)
    assert err.value.error_kind == kind


def test_schema_asks_for_exactly_n_binary_scores() -> None:
    schema = cfbench_schema(4)
    entries = schema["properties"]["checkpoints"]
    assert entries["minItems"] == entries["maxItems"] == 4
    assert entries["items"]["properties"]["score"]["enum"] == [0, 1]
    assert schema["required"] == ["checkpoints"]


# ---------------------------------------------------------------- through the real loopback server

_COUNT = re.compile(r"恰好包含 (\d+) 项")


def all_ones(request: dict[str, Any]) -> str:
    n = int(_COUNT.search(request["messages"][-1]["content"]).group(1))
    return answer([1] * n)


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(all_ones) as srv:
        yield srv


@pytest.fixture
def config(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> JudgeConfig:
    monkeypatch.setenv(KEY_ENV, "sk-test-not-secret")
    for name in ("IOPO_EVAL_JUDGE", "IOPO_EVAL_JUDGE_BASE_URL", "IOPO_EVAL_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return resolve_judge_config("cfbench-gpt4o-hardened", base_url=server.base_url).with_overrides(
        api_key_env=KEY_ENV,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        timeout_s=5.0,
        max_retries=2,
        concurrency=1,
    )


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[JudgeCache]:
    with JudgeCache(tmp_path / "judge.sqlite") as c:
        yield c


def request(n: int = 3, gold: str = "") -> JudgeRequest:
    from iopo_eval.data.cfbench import CFBenchItem, Checkpoint

    item = CFBenchItem(
        idx=1,
        prompt="写一段介绍",
        isanswer="否",
        gold=gold,
        domain="",
        scenario="",
        source="tob",
        split="easy",
        criteria=tuple(Checkpoint(f"检查点{i}", "主需", "内容约束", "") for i in range(n)),
    )
    return judge_request(item, "这是回答。")


def test_the_request_follows_upstreams_settings(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache
) -> None:
    run = judge_batch([request(3, gold="参考答案文本")], config, cache, progress=False)
    assert run.outcomes[0].status == "ok" and run.outcomes[0].scores == [1.0, 1.0, 1.0]
    body = server.bodies[0]
    assert body["model"] == "gpt-4o-2024-05-13" and body["temperature"] == 0.01
    assert "response_format" not in body  # that snapshot has no json_schema mode: the prompt asks for JSON
    prompt = body["messages"][0]["content"]
    assert (
        len(body["messages"]) == 1
        and "参考答案文本" in prompt
        and "1. 检查点0\n2. 检查点1\n3. 检查点2" in prompt
    )
    judge_batch([request(2)], config, cache, progress=False)
    assert NO_REFERENCE in server.bodies[1]["messages"][0]["content"]


def test_a_malformed_reply_is_retried_then_accepted(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache
) -> None:
    server.script(Fault.reply_text(answer([1, 2, 1])), Fault.reply_text("我认为都满足。"))
    run = judge_batch([request(3)], config, cache, progress=False)
    got = run.outcomes[0]
    assert got.status == "ok" and got.scores == [1.0, 1.0, 1.0] and got.attempts == 3
    assert server.calls == 3 and len(cache) == 1


@pytest.mark.parametrize(
    ("bad", "kind"),
    [
        (answer([1, 1]), "wrong_count"),
        (answer([1, 1, "0"]), "out_of_range"),
        (answer([1, 1, 1], indices=[1, 3, 2]), "parse_error"),
        ("", "empty_reply"),
    ],
)
def test_a_reply_that_never_parses_is_recorded_as_a_failure(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, bad: str, kind: str
) -> None:
    server.script(*[Fault.reply_text(bad)] * 3)
    run = judge_batch([request(3)], config, cache, progress=False)
    got = run.outcomes[0]
    assert got.status == "failed" and got.error_kind == kind and got.scores is None
    assert got.attempts == 3 and got.raw == bad  # the last reply is kept for inspection
    assert server.calls == 3 and len(cache) == 0  # a failure is never cached (a rerun asks again)
    assert run.failures == {kind: 1}
