"""Batch mode end to end through the engine (``judge_batch`` with ``mode: batch``) against the loopback
files + batches API: a real HTTP server, the openai SDK, a real SQLite cache file. Every batch state,
partial error files, expiry, cancellation, splitting, retries and the synchronous fallback, budget,
resuming from the ledger, and identity with synchronous mode."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from iopo_eval.judges import (
    JudgeCache,
    JudgeConfig,
    JudgeOutcome,
    JudgeRequest,
    Price,
    judge_batch,
    resolve_judge_config,
)
from iopo_eval.judges.batch import METADATA_KEY, BatchItem, BatchReport, batch_price
from iopo_eval.judges.batch_estimate import estimate_modes
from iopo_eval.judges.batch_ledger import BatchLedger, HeldKey
from iopo_eval.judges.client import JudgeClient
from iopo_eval.judges.engine import batch_items
from iopo_eval.judges.parse import get_parser
from iopo_eval.judges.settings import BatchSettings
from iopo_eval.testing.batch_driver import same_items
from iopo_eval.testing.batch_server import BatchServer
from iopo_eval.testing.openai_server import Fault, OpenAIServer
from iopo_eval.testing.replies import hashed_scores

from .conftest import KEY_ENV, build_requests

FAST = {"poll_interval_s": 0.02}
Result = JudgeOutcome


@pytest.fixture
def bserver() -> Iterator[BatchServer]:
    with BatchServer(hashed_scores) as srv:
        yield srv


@pytest.fixture
def bconfig(bserver: BatchServer, monkeypatch: pytest.MonkeyPatch) -> JudgeConfig:
    monkeypatch.setenv(KEY_ENV, "sk-batch-secret-0123456789")
    for name in ("IOPO_EVAL_JUDGE", "IOPO_EVAL_JUDGE_BASE_URL", "IOPO_EVAL_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return resolve_judge_config("trace-gpt4o-hardened", base_url=bserver.base_url).with_overrides(
        api_key_env=KEY_ENV, backoff_initial_s=0.01, backoff_max_s=0.05, timeout_s=5.0, max_retries=1
    )


def run(
    requests: list[JudgeRequest], config: JudgeConfig, cache: JudgeCache, **options: Any
) -> tuple[dict[str, Result], BatchReport]:
    """The engine in batch mode: outcomes by request key, and the batch report (empty when every item
    was in the cache)."""
    settings = BatchSettings(**{**FAST, **options.pop("settings", {})})
    config = config.with_overrides(mode="batch", batch=settings, batch_price=options.pop("price", None))
    judged = judge_batch(requests, config, cache, progress=False, **options)
    return {o.key: o for o in judged.outcomes}, judged.batch or BatchReport()


def in_thread(
    requests: list[JudgeRequest], config: JudgeConfig, cache_path: Path, **options: Any
) -> concurrent.futures.Future[tuple[dict[str, Result], BatchReport]]:
    """A batch run on its own thread (with its own cache connection), so the test can act meanwhile."""

    def work() -> tuple[dict[str, Result], BatchReport]:
        with JudgeCache(cache_path) as cache:
            return run(requests, config, cache, **options)

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    future = pool.submit(work)
    pool.shutdown(wait=False)
    return future


def wait_first_batch_completed(server: BatchServer, n: int) -> None:
    """Until the first batch created has answered ``n`` lines."""
    server.wait_for(
        lambda: (
            bool(server.batch_ids())
            and server.batch(server.batch_ids()[0])["request_counts"]["completed"] == n
        )
    )


def input_keys(server: BatchServer, batch_id: str) -> list[str]:
    data = server.file_bytes(server.batch(batch_id)["input_file_id"])
    return [json.loads(line)["custom_id"] for line in data.splitlines()]


def test_batch_mode_gives_the_same_items_as_synchronous_mode(
    bserver: BatchServer, bconfig: JudgeConfig, tmp_path: Path
) -> None:
    requests = build_requests(12, n_constraints=3)
    with JudgeCache(tmp_path / "batch.sqlite") as cache:
        results, report = run(requests, bconfig, cache)
        batch_records = {key: cache.get(item.key) for key, item in batch_items(requests, bconfig).items()}
    assert report.answered == 12 and report.failed == 0 and len(report.submitted) == 1
    with OpenAIServer(hashed_scores) as sync_server, JudgeCache(tmp_path / "sync.sqlite") as sync_cache:
        sync_run = judge_batch(
            requests, bconfig.with_overrides(base_url=sync_server.base_url), sync_cache, progress=False
        )
        sync_bodies = {body["messages"][0]["content"]: body for body in sync_server.bodies}
        sync_records = {o.key: sync_cache.get(o.cache_key) for o in sync_run.outcomes}
    assert sync_run.judged == 12
    for outcome in sync_run.outcomes:
        batch_record = batch_records[outcome.key]
        assert batch_record is not None and batch_record.key == outcome.cache_key  # same cache key
        assert same_items(batch_record) == same_items(sync_records[outcome.key])  # reply, parse, usage
        assert same_items(results[outcome.key]) == same_items(outcome)  # the outcomes too
        assert results[outcome.key].attempts == 1 == outcome.attempts
    # Each line: custom_id = the cache key, body = exactly what the synchronous client posted.
    (batch_id,) = report.submitted
    rows = [json.loads(x) for x in bserver.file_bytes(bserver.batch(batch_id)["input_file_id"]).splitlines()]
    assert {row["custom_id"] for row in rows} == {o.cache_key for o in sync_run.outcomes}
    for row in rows:
        assert row["method"] == "POST" and row["url"] == "/v1/chat/completions"
        assert row["body"] == sync_bodies[row["body"]["messages"][0]["content"]]


def test_a_rerun_is_served_from_the_cache_without_any_api_call(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(5)
    run(requests, bconfig, cache)
    bserver.routes.clear()
    results, report = run(requests, bconfig, cache)
    assert not report.api_calls and not bserver.routes
    assert all(r.status == "ok" and r.cached for r in results.values())


def test_lines_are_split_at_the_request_and_byte_limits(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(10)
    items = batch_items(requests, bconfig)
    client = JudgeClient(bconfig)
    parser = get_parser(bconfig.parser)
    sizes = []
    for item in items.values():
        schema, strict = client.schemas(parser, item.n_expected)
        body = client.request_body(item.prompt, schema, parser.name, strict)
        sizes.append(
            len(
                json.dumps(
                    {"custom_id": item.key, "method": "POST", "url": "/v1/chat/completions", "body": body},
                    ensure_ascii=False,
                    separators=(",", ":"),
                ).encode()
            )
            + 1
        )
    max_bytes = max(sizes) * 2 + 1  # two lines fit, three do not
    _, report = run(requests, bconfig, cache, settings={"max_requests": 4, "max_bytes": max_bytes})
    assert report.answered == 10 and len(report.submitted) == 5 and report.lines_submitted == 10
    for batch_id in report.submitted:
        data = bserver.file_bytes(bserver.batch(batch_id)["input_file_id"])
        assert len(data) <= max_bytes and len(data.splitlines()) <= 4
    assert bserver.resubmitted == 0 and len(bserver.submitted) == 10
    # Requests only: 3 per batch at most.
    cache2 = JudgeCache(cache.path.with_name("other.sqlite"))
    _, report = run(requests, bconfig, cache2, settings={"max_requests": 3})
    assert [bserver.batch(b)["request_counts"]["total"] for b in report.submitted] == [3, 3, 3, 1]
    cache2.close()


def test_a_request_over_the_byte_limit_fails_without_a_call(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    results, report = run(build_requests(2), bconfig, cache, settings={"max_bytes": 100})
    assert report.failed == 2 and not report.api_calls and not bserver.routes
    assert all(r.status == "failed" and r.error_kind == "bad_request" for r in results.values())


def test_error_lines_and_unparseable_answers_go_to_a_follow_up_batch(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(6)
    keys = {r: i.key for r, i in batch_items(requests, bconfig).items()}
    bserver.script(
        Fault.server_error(500),
        Fault.reply_text("I think it is fine."),
        Fault.rate_limited(),
        None,
        Fault.cut_body(),
    )
    results, report = run(requests, bconfig, cache)
    assert report.answered == 6 and report.failed == 0 and len(report.submitted) == 2
    first, second = report.submitted
    assert bserver.batch(first)["request_counts"] == {"total": 6, "completed": 4, "failed": 2}
    # The follow-up holds exactly the 500, the prose, the 429 and the cut line: in request order.
    retried = [keys[f"item-{i}"] for i in (0, 1, 2, 4)]
    assert input_keys(bserver, second) == retried
    for i in (0, 1, 2, 4):
        result = results[f"item-{i}"]
        assert result.status == "ok" and result.attempts == 2
    assert results["item-1"].usage.completion_tokens > 0  # both replies paid
    assert cache.get(keys["item-1"]).attempts == 2  # type: ignore[union-attr]
    assert results["item-3"].attempts == 1


def test_an_item_failing_every_round_is_recorded_as_failed_never_scored(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(3)
    marks = {
        "Constraint 1 of item 0": Fault.reply_text('{"constraints": [], "overall": 3}'),
        "Constraint 1 of item 1": Fault.server_error(502),
        "Constraint 1 of item 2": Fault.http_status(400),
    }

    def faults(body: dict[str, Any]) -> Fault | None:
        prompt = body["messages"][0]["content"]
        return next((fault for mark, fault in marks.items() if mark in prompt), None)

    bserver.faults = faults
    results, report = run(requests, bconfig, cache, settings={"max_rounds": 3})
    kinds = {k: (r.status, r.error_kind, r.attempts) for k, r in results.items()}
    assert kinds == {
        "item-0": ("failed", "wrong_count", 3),
        "item-1": ("failed", "server_error", 3),
        "item-2": ("failed", "bad_request", 1),  # a 400 is final at once, as in synchronous mode
    }
    assert report.failed == 3 and report.answered == 0 and len(cache) == 0
    assert all(r.scores is None for r in results.values())
    assert sorted(f["error_kind"] for f in cache.failures()) == ["bad_request", "server_error", "wrong_count"]
    assert len(report.submitted) == 3


def test_fallback_sync_asks_failed_lines_over_chat_completions(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    bserver.script(Fault.reply_text("prose, no scores"), None, Fault.server_error(503))
    results, report = run(build_requests(4), bconfig, cache, settings={"fallback": "sync"})
    assert report.answered == 2 and len(report.submitted) == 1 and len(report.to_sync) == 2
    assert bserver.routes["chat.completions"] == 2 and bserver.resubmitted == 0
    for key in ("item-0", "item-2"):
        result = results[key]
        assert result.status == "ok" and result.attempts == 2
    assert len(cache) == 4


def test_an_expired_batch_resubmits_only_the_items_without_an_answer(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(7)
    bserver.hold(after=3)
    future = in_thread(requests, bconfig, cache.path)
    wait_first_batch_completed(bserver, 3)
    first = bserver.batch_ids()[0]
    bserver.expire(first)
    bserver.wait_for(lambda: bserver.batch(first)["status"] == "expired")
    bserver.release()
    _, report = future.result(timeout=30)
    assert report.answered == 7 and report.submitted[0] == first and len(report.submitted) == 2
    answered_first = input_keys(bserver, first)[:3]
    assert input_keys(bserver, report.submitted[1]) == input_keys(bserver, first)[3:]
    assert all(bserver.submitted[k] == 1 for k in answered_first)
    assert sum(bserver.submitted.values()) == 7 + 4
    with BatchLedger(cache.path) as ledger:
        assert [(j.batch_id, j.state, j.remote_status) for j in ledger.jobs()] == [
            (first, "done", "expired"),
            (report.submitted[1], "done", "completed"),
        ]


def test_an_expired_batch_in_the_last_round_fails_its_items_as_batch_expired(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    bserver.hold(after=1)
    future = in_thread(build_requests(3), bconfig, cache.path, settings={"max_rounds": 1})
    wait_first_batch_completed(bserver, 1)
    bserver.expire(bserver.batch_ids()[0])
    results, report = future.result(timeout=30)
    bserver.release()
    assert report.answered == 1 and report.failed == 2
    failed = [r for r in results.values() if r.status == "failed"]
    assert [r.error_kind for r in failed] == ["batch_expired"] * 2
    assert all("expired" in (r.error or "") for r in failed)


def test_a_cancelled_batch_resubmits_only_the_items_without_an_answer(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(5)
    bserver.hold(after=2)
    future = in_thread(requests, bconfig, cache.path)
    wait_first_batch_completed(bserver, 2)
    first = bserver.batch_ids()[0]
    openai.OpenAI(base_url=bserver.base_url, api_key="k").batches.cancel(
        first
    )  # as a person on the dashboard
    bserver.wait_for(lambda: bserver.batch(first)["status"] == "cancelled")
    bserver.release()
    _, report = future.result(timeout=30)
    assert report.answered == 5 and len(report.submitted) == 2
    assert input_keys(bserver, report.submitted[1]) == input_keys(bserver, first)[2:]


def test_a_failed_batch_is_resubmitted_then_its_items_fail_as_batch_failed(
    bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    with BatchServer(hashed_scores, max_requests=2) as small:  # rejects files of more than 2 requests
        config = bconfig.with_overrides(base_url=small.base_url)
        results, report = run(build_requests(3), config, cache, settings={"max_rounds": 2})
        assert [small.batch(b)["status"] for b in report.submitted] == ["failed", "failed"]
        assert small.batch(report.submitted[0])["errors"]["data"][0]["code"] == "too_many_requests"
    assert report.failed == 3 and {r.error_kind for r in results.values()} == {"batch_failed"}


def test_waiting_stops_at_max_wait_and_the_next_run_reattaches_without_resubmitting(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(6)
    bserver.hold(after=2)
    results, first = run(requests, bconfig, cache, settings={"max_wait_s": 0.2})
    assert len(first.pending) == 6 and first.answered == 0
    assert {(r.status, r.error_kind) for r in results.values()} == {("skipped", "batch_pending")}
    with BatchLedger(cache.path) as ledger:
        (job,) = ledger.jobs()
        assert job.state == "submitted" and job.batch_id == first.submitted[0]
        assert [h.key for h in ledger.keys(job.submission)] == input_keys(bserver, job.batch_id)
    bserver.release()
    results, second = run(requests, bconfig, cache)
    assert second.reattached == first.submitted and second.submitted == [] and second.lines_submitted == 0
    assert "files.create" not in second.api_calls and "batches.create" not in second.api_calls
    assert second.answered == 6 and bserver.resubmitted == 0 and len(cache) == 6


def test_a_second_run_follows_the_batch_of_a_live_first_run(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="iopo_eval.judges.batch")
    requests = build_requests(4)
    bserver.hold(after=0)
    first = in_thread(requests, bconfig, cache.path)
    bserver.wait_for(
        lambda: bool(bserver.batch_ids()) and bserver.batch(bserver.batch_ids()[0])["status"] == "in_progress"
    )
    second = in_thread(requests, bconfig, cache.path)
    bserver.wait_for(lambda: "re-attached to batch" in caplog.text)
    bserver.release()
    (_, one), (_, two) = first.result(timeout=30), second.result(timeout=30)
    assert one.submitted == two.reattached and two.submitted == []
    assert bserver.resubmitted == 0 and len(bserver.batch_ids()) == 1 and len(cache) == 4


def test_a_reattached_batch_stores_answers_for_items_this_run_did_not_ask(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(6)
    bserver.hold(after=0)
    run(requests, bconfig, cache, settings={"max_wait_s": 0.1})
    bserver.release()
    _, report = run(requests[:2], bconfig, cache)
    assert report.answered == 2 and report.lines_submitted == 0 and len(cache) == 6


def dead_owner() -> str:
    """A lease owner on this host whose process does not exist."""
    pid = 2**22 + 12345
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"{socket.gethostname()}/{pid}/deadbeef0000"
        except PermissionError:
            pass
        pid += 1


def preparing_job(cache: JudgeCache, config: JudgeConfig, items: list[BatchItem], owner: str) -> str:
    with BatchLedger(cache.path) as ledger:
        taken = ledger.begin(
            "sub-of-a-dead-run",
            judge_identity=config.identity_hash(),
            judge_name=config.name,
            endpoint=config.base_url.rstrip("/"),  # type: ignore[union-attr]
            owner=owner,
            round=1,
            keys=[HeldKey(i.key, i.n_expected, i.truncated) for i in items],
            n_bytes=0,
        )
    assert len(taken) == len(items)
    return "sub-of-a-dead-run"


def test_a_dead_runs_batch_whose_id_was_never_recorded_is_found_by_its_metadata(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(3)
    items = list(batch_items(requests, bconfig).values())
    submission = preparing_job(cache, bconfig, items, dead_owner())
    # The dead run had uploaded and created the batch, then died before recording its id.
    api = openai.OpenAI(base_url=bserver.base_url, api_key="k")
    client, parser = JudgeClient(bconfig), get_parser(bconfig.parser)
    lines = []
    for item in items:
        schema, strict = client.schemas(parser, item.n_expected)
        body = client.request_body(item.prompt, schema, parser.name, strict)
        lines.append(
            json.dumps({"custom_id": item.key, "method": "POST", "url": "/v1/chat/completions", "body": body})
        )
    file = api.files.create(file=("in.jsonl", ("\n".join(lines) + "\n").encode()), purpose="batch")
    batch = api.batches.create(
        input_file_id=file.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={METADATA_KEY: submission},
    )
    api.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )  # unrelated
    _, report = run(requests, bconfig, cache)
    assert (
        report.reattached == [batch.id] and report.submitted == [] and report.api_calls["batches.list"] == 1
    )
    assert report.answered == 3 and bserver.submitted == {
        i.key: 2 for i in items
    }  # the two batches above only
    with BatchLedger(cache.path) as ledger:
        assert ledger.job(submission).batch_id == batch.id and ledger.job(submission).state == "done"  # type: ignore[union-attr]


def test_a_dead_runs_submission_that_never_became_a_batch_is_submitted_again(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(3)
    submission = preparing_job(cache, bconfig, list(batch_items(requests, bconfig).values()), dead_owner())
    _, report = run(requests, bconfig, cache)
    assert report.reattached == [] and len(report.submitted) == 1 and report.answered == 3
    with BatchLedger(cache.path) as ledger:
        assert ledger.job(submission).state == "abandoned"  # type: ignore[union-attr]
    assert bserver.resubmitted == 0


def test_the_budget_caps_what_is_submitted_at_batch_prices(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    from iopo_eval.judges import estimate

    requests = build_requests(5)
    price = batch_price(bconfig)
    assert price == Price(1.25, 5.0)  # the bundled GPT-4o judge's batch price: half the synchronous one
    worst = max(
        price.cost(estimate.prompt_tokens(i.prompt, bconfig.model), bconfig.max_tokens)
        for i in batch_items(requests, bconfig).values()
    )
    cap = worst * 2.5  # two lines' worst case fits, a third does not
    results, report = run(requests, bconfig, cache, budget_usd=cap)
    assert report.answered == 2 and len(report.skipped) == 3 and report.lines_submitted == 2
    assert [r.error_kind for r in results.values() if r.status == "skipped"] == ["budget_exhausted"] * 3
    assert sum(r.cost_usd for r in results.values()) == pytest.approx(report.usd) and report.usd <= cap
    # At the synchronous price the same cap would hold only one worst case: the batch price is what counts.
    assert bconfig.price.cost(600, bconfig.max_tokens) * 2 > cap


def test_cost_is_at_the_batch_price(bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache) -> None:
    unpriced = dataclasses.replace(bconfig, batch_price=None)
    assert batch_price(unpriced) == bconfig.price  # no batch price stated: never under-estimated
    half = Price(bconfig.price.input_per_mtok / 2, bconfig.price.output_per_mtok / 2)
    results, report = run(build_requests(3), unpriced, cache, price=half)
    for result in results.values():
        assert result.cost_usd == pytest.approx(
            half.cost(result.usage.prompt_tokens, result.usage.completion_tokens)
        )
    assert report.usd == pytest.approx(half.cost(report.prompt_tokens, report.completion_tokens))


def test_dry_run_estimates_both_modes_without_a_call(bserver: BatchServer, bconfig: JudgeConfig) -> None:
    items = list(batch_items(build_requests(7, n_constraints=2), bconfig).values())
    half = Price(bconfig.price.input_per_mtok / 2, bconfig.price.output_per_mtok / 2)
    est = estimate_modes(items, bconfig, get_parser(bconfig.parser), BatchSettings(max_requests=3), half)
    assert est.items == 7 and est.batches == 3 and est.batch_bytes > 0
    assert est.completion_tokens == 7 * (20 + 70 * 2)
    assert est.sync_usd == pytest.approx(bconfig.price.cost(est.prompt_tokens, est.completion_tokens))
    assert est.batch_usd == pytest.approx(est.sync_usd / 2)
    assert est.batch_usd_upper_bound == pytest.approx(est.sync_usd_upper_bound / 2)
    assert not bserver.routes


def test_the_key_never_reaches_the_cache_file_or_the_logs(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache, caplog: pytest.LogCaptureFixture
) -> None:
    for name in ("openai", "httpx", "httpx2", "httpcore", "iopo_eval"):
        caplog.set_level(logging.DEBUG, logger=name)
    key = os.environ[KEY_ENV]
    bserver.script(Fault.echo_auth())
    bserver.reply = lambda body: hashed_scores(body).replace("checked", f"checked with {key}")
    results, _ = run(build_requests(2), bconfig, cache)
    statuses = sorted((r.status, r.error_kind) for r in results.values())
    assert statuses == [("failed", "bad_request"), ("ok", None)]
    assert all(key not in (r.raw or "") + (r.error or "") for r in results.values())
    assert "HTTP Request" in caplog.text or "Request options" in caplog.text  # the DEBUG logs were on
    assert key not in caplog.text and key[:16] not in caplog.text
    cache.close()
    for path in cache.path.parent.glob(cache.path.name + "*"):
        data = path.read_bytes()
        assert key.encode() not in data and key[:16].encode() not in data, path


def test_an_output_file_gone_before_collection_resubmits_its_items(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(3)
    bserver.hold(after=0)
    _, first = run(requests, bconfig, cache, settings={"max_wait_s": 0.1})
    bserver.release()
    (batch_id,) = first.submitted
    bserver.wait_for(lambda: bserver.batch(batch_id)["status"] == "completed")
    openai.OpenAI(base_url=bserver.base_url, api_key="k").files.delete(
        bserver.batch(batch_id)["output_file_id"]
    )
    results, second = run(requests, bconfig, cache)
    assert second.reattached == [batch_id] and len(second.submitted) == 1 and second.answered == 3
    assert all(r.attempts == 2 for r in results.values())


def test_a_batch_the_api_does_not_know_resubmits_its_items(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(2)
    submission = preparing_job(cache, bconfig, list(batch_items(requests, bconfig).values()), dead_owner())
    with BatchLedger(cache.path) as ledger:
        ledger.set_batch(submission, "batch_of_another_account", "in_progress")
    _, report = run(requests, bconfig, cache)
    assert report.reattached == ["batch_of_another_account"] and len(report.submitted) == 1
    assert report.answered == 2 and bserver.resubmitted == 0


def test_a_submission_a_live_run_is_still_uploading_is_waited_for(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="iopo_eval.judges.batch")
    requests = build_requests(3)
    bserver.stall("files.create")
    first = in_thread(requests, bconfig, cache.path)
    bserver.wait_for(lambda: bserver.routes["files.create"] == 1)
    with BatchLedger(cache.path) as ledger:
        assert [j.state for j in ledger.jobs()] == ["preparing"]
    second = in_thread(requests, bconfig, cache.path)
    bserver.wait_for(lambda: "being created by a live run" in caplog.text)
    bserver.release()
    (_, one), (_, two) = first.result(timeout=30), second.result(timeout=30)
    assert len(one.submitted) == 1 and two.submitted == [] and two.lines_submitted == 0
    # The second run follows the batch, or finds its answers already stored by the first.
    assert two.reattached == one.submitted or two.cached == 3
    assert "batches.list" not in two.api_calls  # a live owner is waited for, not second-guessed
    assert bserver.resubmitted == 0 and len(bserver.batch_ids()) == 1


def test_max_in_flight_submits_the_next_batch_when_one_finishes(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    _, report = run(build_requests(5), bconfig, cache, settings={"max_in_flight": 1, "max_requests": 2})
    assert report.answered == 5 and len(report.submitted) == 3
    times = [bserver.timeline(b) for b in report.submitted]
    for before, after in itertools.pairwise(times):
        assert after["validating"] >= before["completed"]


def test_items_not_yet_submitted_when_the_wait_runs_out_are_pending(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    bserver.hold(after=0)
    settings = {"max_in_flight": 1, "max_requests": 2, "max_wait_s": 0.1}
    results, report = run(build_requests(5), bconfig, cache, settings=settings)
    assert len(report.submitted) == 1 and len(report.pending) == 5 and len(results) == 5
    assert {(r.status, r.error_kind) for r in results.values()} == {("skipped", "batch_pending")}
    bserver.release()
    _, second = run(build_requests(5), bconfig, cache)
    assert second.reattached == report.submitted and second.answered == 5 and bserver.resubmitted == 0


def test_the_engine_judges_a_batch_config_and_a_sync_config_side_by_side(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    """One engine call, two configs: the batch one through the files + batches API, the synchronous one
    over chat completions (the loopback batch server answers both)."""
    batch = bconfig.with_overrides(mode="batch", batch=BatchSettings(**FAST))
    sync = bconfig.with_overrides(name="sync-judge", temperature=0.5)  # another identity: its own items
    requests = [dataclasses.replace(r, judge="b") for r in build_requests(4)]
    requests += [dataclasses.replace(r, judge="s") for r in build_requests(3, prefix="other")]
    judged = judge_batch(requests, {"b": batch, "s": sync}, cache, progress=False)
    assert judged.judged == 7 and bserver.routes["chat.completions"] == 3
    assert judged.batch is not None and judged.batch.lines_submitted == 4 and len(bserver.batch_ids()) == 1
    assert judged.calls == sum(judged.batch.api_calls.values()) + 3
    assert judged.usd == pytest.approx(sum(o.cost_usd for o in judged.outcomes))


def test_the_engine_dry_run_estimates_both_modes(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    requests = build_requests(5, n_constraints=2)
    for mode in ("sync", "batch"):
        dry = judge_batch(requests, bconfig.with_overrides(mode=mode), cache, dry_run=True, progress=False)
        est = dry.estimate
        assert est is not None and est.items == 5 and est.batches == 1 and est.batch_bytes > 0
        assert est.batch_usd == pytest.approx(est.sync_usd / 2)  # the bundled batch price is half
        assert est.usd == (est.batch_usd if mode == "batch" else est.sync_usd)
    assert not bserver.routes and len(cache) == 0


def test_a_parser_that_reads_its_request_gets_each_items_fields_in_batch_mode(
    bserver: BatchServer, bconfig: JudgeConfig, cache: JudgeCache
) -> None:
    """``ParserSpec.parse_in_context`` (CFBench's upstream parser checks the reply against the request): the
    batch runner parses each line with the parser bound to that item's request, as the client does."""
    from iopo_eval.judges.parse import PARSERS, ParserSpec, parse_trace_scores, register_parser

    seen: list[str] = []

    def in_context(reply: str, fields: Any, n_expected: int) -> Any:
        seen.append(fields["query"])
        return parse_trace_scores(reply, n_expected)

    if "test_in_context" not in PARSERS:
        register_parser(
            ParserSpec(
                "test_in_context",
                parse=parse_trace_scores,
                schema=PARSERS["trace_scores"].schema,
                parse_in_context=in_context,
            )
        )
    config = bconfig.with_overrides(parser="test_in_context", prompt_version="in-context")
    _, report = run(build_requests(3), config, cache)
    assert report.answered == 3
    assert sorted(seen) == sorted(f"Write a short note number {i}." for i in range(3))
