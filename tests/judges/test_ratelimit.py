"""Client-side pacing: the schedule it computes (on a fake clock: no timed assertions), its correction by
reported usage, its sharing per judge config, the config's ``rate_limit`` reaching the client, and,
against a loopback server that enforces a limit, far fewer 429s for an engine run at concurrency 64 than
without it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest
from pydantic import ValidationError

from iopo_eval.judges import JudgeCache, judge_batch, resolve_judge_config
from iopo_eval.judges.client import JudgeClient
from iopo_eval.judges.ratelimit import Clock, RateLimiter, RateLimitSettings, limiter_for
from iopo_eval.judges.types import Usage
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.rate_limits import EnforcedLimit
from iopo_eval.testing.replies import trace_scores

from .conftest import KEY_ENV, build_requests


class FakeClock(Clock):
    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


def starts(limiter: RateLimiter, n: int, prompt: int = 0) -> list[float]:
    return [round(limiter.reserve(prompt, 0).start, 6) for _ in range(n)]


def test_requests_flow_at_the_rate_after_a_burst() -> None:
    limiter = RateLimiter(600, burst_s=1.0, clock=FakeClock())  # 10 per second
    assert starts(limiter, 13) == [0.0] * 10 + [0.1, 0.2, 0.3]


def test_no_window_of_a_minute_holds_more_than_the_limit_plus_the_burst() -> None:
    limiter = RateLimiter(120, burst_s=2.0, clock=FakeClock())  # 2 per second, 4 at once
    times = starts(limiter, 500)
    assert all(b >= a for a, b in itertools.pairwise(times))
    for i, t in enumerate(times):
        in_window = sum(1 for u in times[i:] if u < t + 60)
        assert in_window <= 120 + 4


def test_tokens_pace_calls_and_a_call_above_the_burst_waits_for_an_empty_bucket() -> None:
    clock = FakeClock()
    limiter = RateLimiter(tokens_per_minute=600, burst_s=1.0, clock=clock)  # 10 tokens per second
    assert limiter.reserve(25, 0).start == 0.0  # larger than the burst: goes when the bucket is empty
    assert limiter.reserve(5, 0).start == pytest.approx(2.0)  # backlog until 2.5 s, 0.5 s of it, 1 s burst
    assert limiter.reserve(30, 0).start == pytest.approx(3.0)  # waits until the backlog is gone
    clock.t = 100.0
    assert limiter.reserve(5, 0).start == 100.0  # an idle bucket has drained


def test_both_limits_apply_and_the_later_start_wins() -> None:
    limiter = RateLimiter(60, 6000, burst_s=1.0, clock=FakeClock())  # 1 call/s, 100 tokens/s
    assert starts(limiter, 3, prompt=10) == [0.0, 1.0, 2.0]  # requests bind
    limiter = RateLimiter(6000, 600, burst_s=1.0, clock=FakeClock())  # 100 calls/s, 10 tokens/s
    assert starts(limiter, 3, prompt=10) == [0.0, 1.0, 2.0]  # tokens bind


def test_settle_replaces_the_estimate_with_the_reported_usage() -> None:
    limiter = RateLimiter(tokens_per_minute=600, burst_s=1.0, completion_tokens=20, clock=FakeClock())
    first = limiter.reserve(100)  # 100 prompt + 20 expected reply = 12 s of tokens
    assert first.tokens == 120 and limiter.reserve(10, 0).start == pytest.approx(12.0)
    limiter.release(limiter.reserve(0, 0))
    limiter.settle(first, Usage(prompt_tokens=50, completion_tokens=10))  # 60 tokens: 6 s given back
    # Backlog until 13 - 6 = 7 s; the next 10-token prompt now counts 9.5 (the scale learnt 0.95).
    assert limiter.reserve(10, 0).start == pytest.approx(7.0 + 0.95 - 1.0)
    # The estimates learn: prompts were counted twice too high, replies were half the guess.
    assert limiter.prompt_scale == pytest.approx(0.95) and limiter.completion_mean == pytest.approx(19.0)
    before = limiter.prompt_scale
    limiter.settle(limiter.reserve(100), None)  # no usage reported: nothing learnt
    assert limiter.prompt_scale == before
    for _ in range(200):
        limiter.settle(limiter.reserve(100), Usage(1000, 5))
    assert limiter.prompt_scale == 4.0  # bounded


def test_acquire_sleeps_until_its_slot_and_a_cancelled_wait_gives_it_back() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst_s=1.0, clock=clock)

    async def scenario() -> None:
        await limiter.acquire(0, 0)
        await limiter.acquire(0, 0)
        assert clock.sleeps == [1.0] and clock.t == 1.0

        class Stuck(FakeClock):
            async def sleep(self, seconds: float) -> None:
                raise asyncio.CancelledError

        limiter.clock = Stuck()
        limiter.clock.t = 1.0  # type: ignore[attr-defined]
        with pytest.raises(asyncio.CancelledError):
            await limiter.acquire(0, 0)
        limiter.clock = clock
        assert limiter.reserve(0, 0).start == pytest.approx(2.0)  # the cancelled slot was released

    asyncio.run(scenario())


def test_one_limiter_per_judge_endpoint_model_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    config = resolve_judge_config("trace-gpt4o-hardened", base_url="http://127.0.0.1:9/v1")
    limits = RateLimitSettings(requests_per_minute=500, tokens_per_minute=30_000)
    assert limiter_for(config, None) is None and limiter_for(config, RateLimitSettings()) is None
    shared = limiter_for(config, limits)
    assert shared is not None and limiter_for(config.with_overrides(concurrency=3), limits) is shared
    assert limiter_for(config.with_overrides(model="other"), limits) is not shared
    assert limiter_for(config, RateLimitSettings(requests_per_minute=100)) is not shared


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="requests_per_minute"):
        RateLimitSettings(requests_per_minute=0)
    with pytest.raises(ValidationError, match="extra"):
        RateLimitSettings.model_validate({"rpm": 5})


def test_the_configs_rate_limit_paces_its_client(monkeypatch: pytest.MonkeyPatch) -> None:
    config = resolve_judge_config("trace-gpt4o", base_url="http://127.0.0.1:9/v1")
    assert config.rate_limit is None and JudgeClient(config).limiter is None
    limits = RateLimitSettings(requests_per_minute=500, tokens_per_minute=30_000)
    paced = config.with_overrides(rate_limit=limits)
    assert paced.identity_hash() == config.identity_hash()  # pacing cannot change a judgement
    assert JudgeClient(paced).limiter is limiter_for(paced) is not None
    assert JudgeClient(paced).limiter is JudgeClient(paced.with_overrides(concurrency=2)).limiter


def test_pacing_meets_far_fewer_429s_at_concurrency_64(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test")
    rpm, burst = 6000, 0.2  # the server takes 100 calls a second, 20 at once; each call takes 20 ms
    config0 = resolve_judge_config("trace-gpt4o-hardened", base_url="http://127.0.0.1:9/v1").with_overrides(
        api_key_env=KEY_ENV,
        max_retries=40,
        backoff_initial_s=0.05,
        backoff_max_s=0.5,
        timeout_s=10.0,
        concurrency=64,
    )
    requests = build_requests(100)
    rejected = {}
    for paced in (False, True):
        limit = EnforcedLimit(rpm, burst_s=burst)
        with OpenAIServer(trace_scores(10), latency_s=0.02, faults=limit) as server:
            config = config0.with_overrides(base_url=server.base_url)
            if paced:  # the judge config states the account's limit
                config = config.with_overrides(
                    rate_limit=RateLimitSettings(requests_per_minute=rpm, burst_s=burst)
                )
            with JudgeCache(tmp_path / f"paced-{paced}.sqlite") as cache:
                run = judge_batch(requests, config, cache, progress=False)
        rejected[paced] = limit.rejected
        assert run.judged == 100 and limit.accepted == 100
    assert rejected[False] >= 200  # without pacing, calls meet several 429s each (429s are retried as before)
    # With it, a few at most (a stalled event loop can still send a bunch at once).
    assert rejected[True] <= 10 and rejected[True] * 20 <= rejected[False]
