"""The engine end to end: real server, real SQLite file, budget, dry run, resumption, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from iopo_eval.judges import JudgeCache, JudgeConfig, JudgeRequest, judge_batch, judge_many
from iopo_eval.testing.openai_server import Fault, OpenAIServer

Make = Callable[..., list[JudgeRequest]]
DEAD_ENDPOINT = "http://127.0.0.1:9/v1"  # nothing listens there: any call would fail


def test_rerun_is_served_from_the_cache_with_zero_calls(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    requests = make_requests(6)
    first = judge_batch(requests, config, cache, progress=False)
    assert first.judged == 6 and first.calls == 6 and first.cache_hits == 0 and len(cache) == 6
    server.reset_counters()
    second = judge_batch(requests, config, cache, progress=False)
    assert server.calls == 0 and second.calls == 0 and second.cache_hits == 6 and second.usd == 0.0
    assert [o.scores for o in second.outcomes] == [o.scores for o in first.outcomes]
    assert all(o.cached and o.cost_usd == 0.0 for o in second.outcomes)
    assert [o.key for o in second.outcomes] == [r.key for r in requests]
    # The stored record keeps what the judgement cost when it was made.
    record = cache.get(first.outcomes[0].cache_key)
    assert record is not None and record.raw == first.outcomes[0].raw
    assert record.cost_usd == pytest.approx(first.outcomes[0].cost_usd) and record.latency_s > 0


def test_a_changed_judge_or_response_is_not_a_cache_hit(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    requests = make_requests(2)
    judge_batch(requests, config, cache, progress=False)
    server.reset_counters()
    judge_batch(requests, config.with_overrides(model="another-judge"), cache, progress=False)
    assert server.calls == 2
    changed = [JudgeRequest(r.key, {**r.fields, "response": "different"}, r.n_expected) for r in requests]
    judge_batch(changed, config, cache, progress=False)
    assert server.calls == 4
    # An endpoint change is not a judge change.
    server.reset_counters()
    run = judge_batch(requests, config.with_overrides(concurrency=2, timeout_s=9.0), cache, progress=False)
    assert server.calls == 0 and run.cache_hits == 2


def test_cache_reopened_in_another_process(
    config: JudgeConfig, cache: JudgeCache, make_requests: Make, tmp_path: Path
) -> None:
    requests = make_requests(3)
    first = judge_batch(requests, config, cache, progress=False)
    key = first.outcomes[1].cache_key
    child = textwrap.dedent(
        f"""
        import json, sys
        from iopo_eval.judges import JudgeCache, JudgeRequest, judge_batch, load_judge_config
        cache = JudgeCache(sys.argv[1])
        record = cache.get({key!r})
        requests = [JudgeRequest(**r) for r in json.loads(sys.argv[2])]
        config = load_judge_config("trace-gpt4o-hardened").with_overrides(
            base_url={DEAD_ENDPOINT!r}, api_key_env="IOPO_TEST_JUDGE_KEY", max_retries=0)
        run = judge_batch(requests, config, cache, progress=False)
        print(json.dumps({{"raw": record.raw, "scores": record.scores, "calls": run.calls,
                          "hits": run.cache_hits, "status": [o.status for o in run.outcomes]}}))
        """
    )
    payload = json.dumps([{"key": r.key, "fields": r.fields, "n_expected": r.n_expected} for r in requests])
    done = subprocess.run(
        [sys.executable, "-c", child, str(cache.path), payload], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["raw"] == first.outcomes[1].raw and seen["scores"] == first.outcomes[1].scores
    assert (seen["calls"], seen["hits"], seen["status"]) == (0, 3, ["ok"] * 3)


def test_failures_are_not_cached_and_a_rerun_retries_them(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    server.script(*[Fault.reply_text("garbage")] * 3)
    run = judge_batch(make_requests(1), config.with_overrides(concurrency=1), cache, progress=False)
    assert run.outcomes[0].status == "failed" and len(cache) == 0
    assert [f["error_kind"] for f in cache.failures()] == ["parse_error"]
    assert cache.failures()[0]["raw"] == "garbage"
    again = judge_batch(make_requests(1), config, cache, progress=False)
    assert again.outcomes[0].status == "ok" and again.calls == 1 and len(cache) == 1


def test_budget_stops_cleanly_and_a_rerun_resumes(
    server: OpenAIServer, config: JudgeConfig, tmp_path: Path, make_requests: Make
) -> None:
    config = config.with_overrides(price={"input_per_mtok": 10.0, "output_per_mtok": 10.0}, max_tokens=200)
    with JudgeCache(tmp_path / "probe.sqlite") as probe:
        one_call = judge_batch(make_requests(1, prefix="probe"), config, probe, progress=False).usd
    assert one_call > 0
    budget = 3.5 * one_call
    requests = make_requests(10)
    with JudgeCache(tmp_path / "budget.sqlite") as cache:
        server.reset_counters()
        run = judge_batch(
            requests, config.with_overrides(concurrency=2), cache, budget_usd=budget, progress=False
        )
        assert 1 <= run.calls < 10 and server.calls == run.calls
        assert run.usd <= budget  # reservations cover calls in flight
        skipped = [o for o in run.outcomes if o.status == "skipped"]
        assert len(skipped) == 10 - run.judged and {o.error_kind for o in skipped} == {"budget_exhausted"}
        assert run.failures == {"budget_exhausted": len(skipped)}
        assert all(o.scores is None for o in skipped)
        server.reset_counters()
        resumed = judge_batch(requests, config, cache, progress=False)
        assert resumed.judged == 10 and resumed.cache_hits == run.judged and server.calls == len(skipped)


def test_dry_run_makes_no_call_and_estimates_the_cost(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    requests = make_requests(4, n_constraints=3)
    judge_batch(requests[:1], config, cache, progress=False)
    server.reset_counters()
    run = judge_batch(requests, config, cache, dry_run=True, progress=False)
    assert server.calls == 0 and run.calls == 0 and run.usd == 0.0 and run.failures == {}
    assert [o.status for o in run.outcomes] == ["ok", "skipped", "skipped", "skipped"]
    estimate = run.estimate
    assert estimate is not None and estimate.items == 3
    assert estimate.prompt_tokens > 3 * 400 and estimate.completion_tokens == 3 * (20 + 70 * 3)
    assert estimate.usd == pytest.approx(
        (estimate.prompt_tokens * 2.5 + estimate.completion_tokens * 10) / 1e6
    )
    assert estimate.usd_upper_bound > estimate.usd


def test_empty_response_fails_without_a_call(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    requests = make_requests(3)
    requests[1].fields["response"] = "  \n"
    requests[2].fields["response"] = None
    run = judge_batch(requests, config, cache, progress=False)
    assert server.calls == 1
    assert [o.status for o in run.outcomes] == ["ok", "failed", "failed"]
    assert [o.error_kind for o in run.outcomes[1:]] == ["empty_response", "empty_response"]
    assert run.failures == {"empty_response": 2}


def test_duplicate_requests_are_asked_once(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    base = make_requests(1)[0]
    twins = [JudgeRequest("a", base.fields, 2), JudgeRequest("b", dict(base.fields), 2)]
    run = judge_batch(twins, config, cache, progress=False)
    assert server.calls == 1 and [o.key for o in run.outcomes] == ["a", "b"]
    assert run.outcomes[0].scores == run.outcomes[1].scores and run.outcomes[1].cost_usd == 0.0


def test_judge_batch_works_inside_a_running_event_loop(
    server: OpenAIServer, config: JudgeConfig, cache: JudgeCache, make_requests: Make
) -> None:
    async def caller() -> int:
        run = judge_batch(make_requests(2), config, cache, progress=False)  # sync call from async code
        direct = await judge_many(make_requests(2), config, cache, progress=False)
        return run.judged + direct.cache_hits

    assert asyncio.run(caller()) == 4


def test_the_api_key_is_never_written_or_logged(
    server: OpenAIServer,
    config: JudgeConfig,
    tmp_path: Path,
    make_requests: Make,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    canary = f"sk-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("IOPO_TEST_JUDGE_KEY", canary)
    caplog.set_level(logging.DEBUG)
    for name in ("openai", "httpx2", "httpx", "iopo_eval"):
        caplog.set_level(logging.DEBUG, logger=name)
    # Error paths too: a 429, a 500, a rejected reply, and an item that fails for good.
    server.script(
        Fault.rate_limited(0.1), Fault.server_error(), Fault.reply_text("nope"), *[Fault.http_status(401)] * 1
    )
    folder = tmp_path / "cachedir"
    with JudgeCache(folder / "judge.sqlite") as cache:
        run = judge_batch(make_requests(4), config.with_overrides(concurrency=1), cache, progress=False)
        dump = json.dumps(run.to_json())
    assert run.judged >= 1
    assert any(h.get("authorization") == f"Bearer {canary}" for h in server.headers)  # the key was used
    assert canary not in caplog.text
    assert canary not in dump
    for path in folder.iterdir():
        assert canary.encode() not in path.read_bytes(), path
    assert canary not in json.dumps(config.summary()) and canary not in repr(config)


def test_missing_key_for_the_openai_api_is_a_clear_error(
    cache: JudgeCache, make_requests: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iopo_eval.judges import JudgeConfigError, load_judge_config

    monkeypatch.delenv("IOPO_TEST_ABSENT_KEY", raising=False)
    config = load_judge_config("trace-gpt4o-hardened").with_overrides(api_key_env="IOPO_TEST_ABSENT_KEY")
    with pytest.raises(JudgeConfigError, match="IOPO_TEST_ABSENT_KEY"):
        judge_batch(make_requests(1), config, cache, progress=False)
    # A dry run needs no key.
    assert judge_batch(make_requests(1), config, cache, dry_run=True, progress=False).estimate is not None
