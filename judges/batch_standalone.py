"""Batch mode without the engine: requests to batch items, a sink that commits to the cache, a synchronous
fallback through the judge client, and ``judge_requests_in_batches`` tying them together.

The engine, once wired, passes its own pieces instead (its rendered items, its ``finish`` as the sink's
``result``, its synchronous path as the fallback, its budget's gate and settle). These stand-ins do the
same thing with the same functions, so tests, drivers and benchmarks exercise batch mode end to end today.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from iopo_eval.judges.batch import (
    BatchItem,
    BatchReport,
    BatchSettings,
    SyncFallback,
    cached_record,
    judge_in_batches,
)
from iopo_eval.judges.cache import CachedJudgement, JudgeCache
from iopo_eval.judges.client import JudgeAttempts, JudgeClient
from iopo_eval.judges.config import JudgeConfig, Price
from iopo_eval.judges.parse import ParserSpec, get_parser
from iopo_eval.judges.prompt import cache_key, render
from iopo_eval.judges.types import JudgeRequest

RESPONSE_FIELD = "response"  # as engine.RESPONSE_FIELD


def batch_items(requests: Sequence[JudgeRequest], config: JudgeConfig) -> dict[str, BatchItem]:
    """Request key -> batch item, rendered and keyed exactly as the engine does. Requests with an empty
    response are left out: the engine fails them without asking the judge."""
    identity = config.identity_hash()
    items: dict[str, BatchItem] = {}
    for request in requests:
        value = request.fields.get(RESPONSE_FIELD, "")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        rendered = render(
            config.template_text,
            dict(request.fields),
            n_expected=request.n_expected,
            truncation=config.truncation,
        )
        key = cache_key(identity, rendered, request.n_expected)
        items[request.key] = BatchItem(key, rendered.text, request.n_expected, dict(rendered.truncated))
    return items


class CacheSink:
    """Commits parsed judgements to the cache (and failures to its log) the moment they arrive, as the
    engine's ``finish`` does, and keeps every result by cache key."""

    def __init__(self, cache: JudgeCache, config: JudgeConfig, items: Sequence[BatchItem]) -> None:
        self.cache, self.config = cache, config
        self.truncated = {item.key: item.truncated for item in items}
        self.results: dict[str, JudgeAttempts | CachedJudgement] = {}

    def result(self, key: str, attempts: JudgeAttempts) -> None:
        if attempts.status == "ok" and attempts.parsed is not None:
            self.cache.put(cached_record(key, self.config, attempts, self.truncated.get(key, {})))
        elif attempts.status == "failed":
            self.cache.log_failure(
                key,
                self.config.model,
                attempts.error_kind or "unknown",
                attempts.error,
                attempts.raw,
                attempts.attempts,
            )
        self.results[key] = attempts

    def cached(self, key: str, record: CachedJudgement) -> None:
        self.results[key] = record


def client_fallback(config: JudgeConfig, parser: ParserSpec, sink: CacheSink) -> SyncFallback:
    """Ask items synchronously through the judge client (its retries, ``config.concurrency`` at a time),
    adding the batch rounds already paid to each result."""

    async def fallback(items: list[tuple[BatchItem, JudgeAttempts]]) -> None:
        client = JudgeClient(config)
        try:

            async def one(item: BatchItem, before: JudgeAttempts) -> None:
                result = await client.judge(item.prompt, item.n_expected, parser)
                result.attempts += before.attempts
                result.usage.prompt_tokens += before.usage.prompt_tokens
                result.usage.completion_tokens += before.usage.completion_tokens
                result.cost_usd += before.cost_usd
                result.latency_s += before.latency_s
                sink.result(item.key, result)

            await asyncio.gather(*(one(item, before) for item, before in items))
        finally:
            await client.aclose()

    return fallback


async def judge_requests_in_batches(
    requests: Sequence[JudgeRequest],
    config: JudgeConfig,
    cache: JudgeCache,
    *,
    settings: BatchSettings | None = None,
    price: Price | None = None,
    progress: bool = False,
    **options: Any,
) -> tuple[dict[str, JudgeAttempts | CachedJudgement], BatchReport]:
    """Judge ``requests`` in batch mode into ``cache``: request key -> result (a ``CachedJudgement`` for
    items already stored), and the run's report. Empty responses are left out (see ``batch_items``)."""
    parser = get_parser(config.parser)
    by_request = batch_items(requests, config)
    items = list({item.key: item for item in by_request.values()}.values())
    sink = CacheSink(cache, config, items)
    report = await judge_in_batches(
        items,
        config,
        cache,
        parser,
        sink,
        settings=settings,
        price=price,
        sync_fallback=client_fallback(config, parser, sink),
        progress=progress,
        **options,
    )
    return {request_key: sink.results[item.key] for request_key, item in by_request.items()}, report


def same_items(result: JudgeAttempts | CachedJudgement) -> dict[str, Any]:
    """What must match between batch and synchronous mode for one item: the reply, its parse, its tokens."""
    if isinstance(result, CachedJudgement):
        return {
            "status": "ok",
            "raw": result.raw,
            "scores": list(result.scores),
            "reasons": result.reasons,
            "overall": result.overall,
            "usage": (result.prompt_tokens, result.completion_tokens),
        }
    parsed = result.parsed
    return {
        "status": result.status,
        "raw": result.raw,
        "scores": list(parsed.scores) if parsed else None,
        "reasons": list(parsed.reasons) if parsed and parsed.reasons is not None else None,
        "overall": parsed.overall if parsed else None,
        "usage": dataclasses.astuple(result.usage),
    }
