"""The client's retry policy against a real scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable

import pytest

from iopo_eval.judges import JudgeCache, JudgeConfig, JudgeRequest, judge_batch
from iopo_eval.judges.client import parse_retry_after
from iopo_eval.testing.openai_server import Fault, OpenAIServer

Make = Callable[..., list[JudgeRequest]]


def one(config: JudgeConfig, cache: JudgeCache, make_requests: Make):  # type: ignore[no-untyped-def]
    run = judge_batch(make_requests(1), config, cache, progress=False)
    return run, run.outcomes[0]


def test_good_reply_is_parsed_and_costed(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    run, outcome = one(config, cache, make_requests)
    assert outcome.status == "ok" and outcome.scores == [10.0, 10.0] and outcome.overall == 10.0
    assert outcome.attempts == 1 and server.calls == 1 and run.calls == 1
    body = server.bodies[0]
    assert body["model"] == "gpt-4o-2024-08-06" and body["temperature"] == 0.0 and body["seed"] == 1234
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    # The server reports usage; cost follows the config's price per token.
    usage = outcome.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert outcome.cost_usd == pytest.approx((usage.prompt_tokens * 2.5 + usage.completion_tokens * 10) / 1e6)
    assert run.usd == pytest.approx(outcome.cost_usd)


def test_json_object_mode_sends_the_schema(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    _, outcome = one(config.with_overrides(response_format="json_object"), cache, make_requests)
    assert outcome.status == "ok"
    fmt = server.bodies[0]["response_format"]
    assert fmt["type"] == "json_object"
    assert fmt["schema"]["properties"]["constraints"]["maxItems"] == 2


def test_429_waits_for_retry_after(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(Fault.rate_limited(retry_after=1))
    _, outcome = one(config, cache, make_requests)
    assert outcome.status == "ok" and outcome.attempts == 2
    waited = server.arrivals[1] - server.arrivals[0]
    assert 1.0 <= waited < 2.5  # the backoff alone would be at most 0.05 s


def test_503_with_an_http_date_retry_after(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(Fault.unavailable(retry_after=email.utils.formatdate(time.time() + 2, usegmt=True)))
    _, outcome = one(config, cache, make_requests)
    assert outcome.status == "ok" and outcome.attempts == 2
    assert server.arrivals[1] - server.arrivals[0] >= 0.9  # HTTP dates have one-second resolution


def test_500_then_success(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(Fault.server_error(500))
    _, outcome = one(config, cache, make_requests)
    assert (outcome.status, outcome.attempts, server.calls) == ("ok", 2, 2)


def test_persistent_500_fails_after_max_retries(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(*[Fault.server_error(502)] * 3)
    run, outcome = one(config, cache, make_requests)
    assert (outcome.status, outcome.error_kind, outcome.attempts) == ("failed", "server_error", 3)
    assert outcome.scores is None
    assert run.failures == {"server_error": 1}


def test_other_4xx_is_not_retried(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(Fault.http_status(400))
    _, outcome = one(config, cache, make_requests)
    assert (outcome.status, outcome.error_kind, server.calls) == ("failed", "bad_request", 1)


def test_slow_reply_times_out_then_is_retried(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(Fault.sleep(2.0))
    started = time.monotonic()
    _, outcome = one(config.with_overrides(timeout_s=0.3), cache, make_requests)
    assert (outcome.status, outcome.attempts, server.calls) == ("ok", 2, 2)
    assert time.monotonic() - started < 1.8  # did not wait for the slow answer


def test_slow_reply_without_retries_is_a_timeout_failure(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(Fault.sleep(2.0))
    _, outcome = one(config.with_overrides(timeout_s=0.3, max_retries=0), cache, make_requests)
    assert (outcome.status, outcome.error_kind, outcome.attempts) == ("failed", "timeout", 1)


@pytest.mark.parametrize("fault", [Fault.malformed_json(), Fault.cut_body()])
def test_broken_bodies_are_retried(
    fault: Fault, server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(fault)
    _, outcome = one(config, cache, make_requests)
    assert (outcome.status, outcome.attempts) == ("ok", 2)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("not json at all", "parse_error"),
        (
            json.dumps({"constraints": [{"index": 1, "reason": "r", "score": 10}], "overall": 10}),
            "wrong_count",
        ),
        (
            json.dumps(
                {
                    "constraints": [
                        {"index": 1, "reason": "r", "score": 11},
                        {"index": 2, "reason": "r", "score": 1},
                    ],
                    "overall": 5,
                }
            ),
            "out_of_range",
        ),
        ("", "empty_reply"),
    ],
)
def test_bad_replies_are_reasked_then_recorded_failed(
    text: str, kind: str, server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(*[Fault.reply_text(text)] * 3)
    run, outcome = one(config, cache, make_requests)
    assert (outcome.status, outcome.error_kind, outcome.attempts, server.calls) == ("failed", kind, 3, 3)
    assert outcome.raw == text and outcome.scores is None
    assert run.failures == {kind: 1}
    assert outcome.usage.prompt_tokens > 0  # the failed attempts were paid for and are counted


def test_bad_reply_then_good_reply(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(Fault.reply_text("no scores here"))
    _, outcome = one(config, cache, make_requests)
    assert (outcome.status, outcome.attempts) == ("ok", 2)


def test_concurrency_limit_is_respected(config: JudgeConfig, cache: JudgeCache, make_requests: Make) -> None:
    from iopo_eval.testing.replies import trace_scores

    with OpenAIServer(trace_scores(10), latency_s=0.05) as slow:
        run = judge_batch(
            make_requests(12),
            config.with_overrides(base_url=slow.base_url, concurrency=3),
            cache,
            progress=False,
        )
        assert run.judged == 12 and slow.max_in_flight == 3


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    future = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after({"retry-after": future}) or 0) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
