"""Judging many items at once: render, look up the cache, call the judge concurrently for the rest,
parse, store, and account for every call and cent.

``judge_many`` is the async entry point; ``judge_batch`` is its synchronous face for callers such as an
lm-eval filter, and works whether or not the calling thread already runs an event loop.

Budget: ``budget_usd`` caps what this invocation spends. Before each call the engine reserves the
call's worst-case cost (estimated prompt tokens plus ``max_tokens`` of completion); a call starts only
if what was spent plus what is reserved for calls in flight plus this reservation stays within the cap.
Once a call does not fit, no new call starts; the items left are ``skipped`` with error kind
``budget_exhausted`` and are asked on the next run (cache hits cost nothing, so a rerun resumes).

Paying once: every parsed judgement is committed to the cache the moment it arrives, so a run killed at
any point loses at most the calls in flight. Before each call the engine claims a lease on the item in
the cache (``JudgeCache.claim``); when another live process is judging the same item, this one does the
rest of its work first and then waits for that answer (re-checking every ``LEASE_POLL_S``) instead of
paying for it again. Leases are renewed while calls run and expire ``LEASE_TTL_S`` after their owner
stops renewing them (at once when the owner was a process on this host that has died).

Batch mode: a config with ``mode: batch`` judges its cache misses through the files + batches API
(``batch.judge_in_batches``) instead of one call each: same prompts, same parser, same cache records and
failure kinds, costed at the config's ``batch_price``, each line's worst case reserved against the same
budget. The batch ledger in the cache file stands in for leases (an item in an open batch of any run is
collected from it, never submitted again); an item still in a batch when ``batch.max_wait_s`` runs out
is ``skipped`` with ``batch_pending`` and collected by the next run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from iopo_eval.judges.batch import BatchItem, BatchReport
from iopo_eval.judges.batch_estimate import estimate_modes
from iopo_eval.judges.cache import CachedJudgement, CacheTransaction, JudgeCache, new_lease_owner
from iopo_eval.judges.client import JudgeAttempts, JudgeClient
from iopo_eval.judges.config import JudgeConfig
from iopo_eval.judges.parse import ParserSpec, get_parser
from iopo_eval.judges.prompt import RenderedPrompt, cache_key, render
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest, Usage
from iopo_eval.judges.upstream_prompt import render_upstream

log = logging.getLogger(__name__)

RESPONSE_FIELD = "response"  # the template field holding the judged model's response
LEASE_TTL_S = 60.0  # a lease not renewed for this long is free for another process
LEASE_POLL_S = 0.25  # how often items leased by another process are checked again


@dataclass
class DryRunEstimate:
    """What judging the cache misses would cost, in both modes: ``usd`` is the config's own mode, and
    the ``sync_`` and ``batch_`` figures price the same tokens at the synchronous and the batch price."""

    items: int  # uncached items that would be judged
    prompt_tokens: int
    completion_tokens: int  # expected size of the replies
    usd: float  # in the mode the judge is configured for
    usd_upper_bound: float  # if every reply used max_tokens
    method: str  # how prompt tokens were counted
    sync_usd: float = 0.0
    sync_usd_upper_bound: float = 0.0
    batch_usd: float = 0.0
    batch_usd_upper_bound: float = 0.0
    batches: int = 0  # batch input files the batch mode would submit (at the config's per-batch limits)
    batch_bytes: int = 0


@dataclass
class JudgeRun:
    """Outcomes in request order plus what this run cost. Cached outcomes cost nothing here."""

    outcomes: list[JudgeOutcome]
    judge: dict[str, Any]  # JudgeConfig.summary() of the (first) config: name, model, identity hash ...
    judges: dict[str, dict[str, Any]] = field(default_factory=dict)  # every config's summary, by name
    calls: int = 0  # HTTP calls made, retries included
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    # error kind -> items, budget-skipped ones included (a dry run's unasked items are not failures)
    failures: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    budget_usd: float | None = None
    dry_run: bool = False
    estimate: DryRunEstimate | None = None
    # Batch mode: batches submitted and re-attached, request lines uploaded, files/batches API calls ...
    batch: BatchReport | None = None

    @property
    def judged(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "ok")

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "failed")

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o.status == "skipped")

    def totals(self) -> dict[str, Any]:
        """Everything but the outcomes, for a results file or a log line."""
        data = {k: v for k, v in asdict(self).items() if k != "outcomes"}
        data.update(items=len(self.outcomes), judged=self.judged, failed=self.failed, skipped=self.skipped)
        return data

    def to_json(self) -> dict[str, Any]:
        return {**self.totals(), "outcomes": [o.to_json() for o in self.outcomes]}


class _Budget:
    """Spending so far and reservations for calls in flight (the engine runs in one event loop)."""

    def __init__(self, cap: float | None) -> None:
        self.cap = cap
        self.spent = 0.0
        self.reserved = 0.0
        self.exhausted = False

    async def gate(self, estimated: float) -> bool:
        if self.exhausted:
            return False
        if self.cap is not None and self.spent + self.reserved + estimated > self.cap:
            self.exhausted = True
            log.info("budget of $%.4f reached ($%.4f spent); no new judge calls", self.cap, self.spent)
            return False
        self.reserved += estimated
        return True

    def settle(self, estimated: float, actual: float) -> None:
        self.reserved -= estimated
        self.spent += actual


@dataclass
class _Item:
    request: JudgeRequest
    rendered: RenderedPrompt
    key: str


def _open_cache(cache: JudgeCache | str | os.PathLike[str] | None) -> tuple[JudgeCache, bool]:
    if isinstance(cache, JudgeCache):
        return cache, False
    if cache is None:
        from iopo_eval.paths import judge_cache_path

        cache = judge_cache_path()
    return JudgeCache(Path(cache)), True


def is_empty_response(request: JudgeRequest) -> bool:
    """A judged model response that is empty; a request without a response field (a generation asked
    of the model itself, say) has none to be empty."""
    if RESPONSE_FIELD not in request.fields:
        return False
    value = request.fields[RESPONSE_FIELD]
    return value is None or (isinstance(value, str) and not value.strip())


def render_request(config: JudgeConfig, request: JudgeRequest) -> RenderedPrompt:
    """The prompt this judge is sent for this request: an upstream evaluator's own prompt rendered as
    upstream renders it, or the config's template. The one renderer of the engine and ``--save-prompts``."""
    if config.prompt is not None:
        return render_upstream(config.prompt, request.fields)
    return render(
        config.template_text, request.fields, n_expected=request.n_expected, truncation=config.truncation
    )


def _prepare(requests: Sequence[JudgeRequest], config: JudgeConfig) -> list[_Item | None]:
    """Render every request (None for an empty response). Errors here are the caller's: raised at once."""
    identity = config.identity_hash()
    items: list[_Item | None] = []
    for request in requests:
        if (
            isinstance(request.n_expected, bool)
            or not isinstance(request.n_expected, int)
            or request.n_expected < 1
        ):
            raise ValueError(f"judge request {request.key!r}: n_expected must be a positive integer")
        if is_empty_response(request):
            items.append(None)
            continue
        rendered = render_request(config, request)
        items.append(_Item(request, rendered, cache_key(identity, rendered, request.n_expected)))
    return items


def _from_cache(item: _Item, record: CachedJudgement) -> JudgeOutcome:
    return JudgeOutcome(
        key=item.request.key,
        status="ok",
        scores=list(record.scores),
        reasons=list(record.reasons) if record.reasons is not None else None,
        overall=record.overall,
        raw=record.raw,
        cached=True,
        cache_key=item.key,
        truncated=dict(item.rendered.truncated),
        judge_model=record.judge_model,
    )


def _from_attempts(item: _Item, result: JudgeAttempts, config: JudgeConfig) -> JudgeOutcome:
    parsed = result.parsed
    return JudgeOutcome(
        key=item.request.key,
        status=result.status,
        scores=list(parsed.scores) if parsed else None,
        reasons=list(parsed.reasons) if parsed and parsed.reasons is not None else None,
        overall=parsed.overall if parsed else None,
        raw=result.raw,
        error_kind=result.error_kind,
        error=result.error,
        attempts=result.attempts,
        usage=Usage(result.usage.prompt_tokens, result.usage.completion_tokens),
        cost_usd=result.cost_usd,
        latency_s=result.latency_s,
        cache_key=item.key,
        truncated=dict(item.rendered.truncated),
        judge_model=config.model,
    )


def _batch_item(item: _Item) -> BatchItem:
    return BatchItem(item.key, item.rendered.text, item.request.n_expected, dict(item.rendered.truncated))


def batch_items(requests: Sequence[JudgeRequest], config: JudgeConfig) -> dict[str, BatchItem]:
    """Request key -> the item batch mode submits for it (rendered and keyed as the engine does); requests
    with an empty response are left out (the engine fails them without asking the judge)."""
    return {item.request.key: _batch_item(item) for item in _prepare(requests, config) if item is not None}


def _estimate(items: list[_Item], config: JudgeConfig, parser: ParserSpec) -> DryRunEstimate:
    both = estimate_modes([_batch_item(i) for i in items], config, parser)
    batch = config.mode == "batch"
    return DryRunEstimate(
        **asdict(both),
        usd=both.batch_usd if batch else both.sync_usd,
        usd_upper_bound=both.batch_usd_upper_bound if batch else both.sync_usd_upper_bound,
    )


async def judge_many(
    requests: Sequence[JudgeRequest],
    config: JudgeConfig | Mapping[str, JudgeConfig],
    cache: JudgeCache | str | os.PathLike[str] | None,
    *,
    budget_usd: float | None = None,
    dry_run: bool = False,
    progress: bool = True,
) -> JudgeRun:
    """Judge ``requests``; outcomes come back in request order.

    ``config`` is the judge of every request, or several judges by name: each request's ``judge`` names
    its config (an empty name means the first). Several configs are judged side by side, each with its
    own ``concurrency`` calls in flight, all under one ``budget_usd``. ``cache`` is an open
    :class:`JudgeCache`, a path, or None for the default file (``iopo_eval.paths.judge_cache_path``)."""
    started = time.perf_counter()
    if budget_usd is not None and budget_usd < 0:
        raise ValueError(f"budget_usd must be >= 0, got {budget_usd}")
    configs = {"": config} if isinstance(config, JudgeConfig) else dict(config)
    if not configs:
        raise ValueError("judge_many needs at least one judge config")
    groups = _route(requests, configs)
    budget = _Budget(budget_usd)
    store, owned = _open_cache(cache)
    try:
        jobs = [
            _judge_group([requests[i] for i in indices], configs[name], store, budget, dry_run, progress)
            for name, indices in groups.items()
        ]
        parts = await _all(jobs)
    finally:
        if owned:
            store.close()
    first = next(iter(configs.values()))
    run = JudgeRun(
        outcomes=[],
        judge=first.summary(),
        judges={name: cfg.summary() for name, cfg in configs.items()},
        budget_usd=budget_usd,
        dry_run=dry_run,
    )
    outcomes: list[JudgeOutcome | None] = [None] * len(requests)
    estimates = []
    for indices, part in zip(groups.values(), parts, strict=True):
        for index, outcome in zip(indices, part.outcomes, strict=True):
            outcomes[index] = outcome
        run.calls += part.calls
        run.cache_hits += part.cache_hits
        run.prompt_tokens += part.prompt_tokens
        run.completion_tokens += part.completion_tokens
        run.usd += part.usd
        if part.estimate is not None:
            estimates.append(part.estimate)
        if part.batch is not None:
            if run.batch is None:
                run.batch = BatchReport()
            run.batch.add(part.batch)
    run.outcomes = [o for o in outcomes if o is not None]
    assert len(run.outcomes) == len(requests)
    run.failures = dict(
        Counter(
            o.error_kind for o in run.outcomes if o.status != "ok" and o.error_kind not in (None, "dry_run")
        )
    )
    run.estimate = merge_estimates(estimates) if dry_run else None
    run.elapsed_s = time.perf_counter() - started
    return run


def _route(requests: Sequence[JudgeRequest], configs: Mapping[str, JudgeConfig]) -> dict[str, list[int]]:
    """Request indices by the name of the config that judges them."""
    default = next(iter(configs))
    groups: dict[str, list[int]] = {}
    for index, request in enumerate(requests):
        name = default if len(configs) == 1 else (request.judge or default)
        if name not in configs:
            raise ValueError(
                f"judge request {request.key!r} asks for judge {name!r}; configured: {sorted(configs)}"
            )
        groups.setdefault(name, []).append(index)
    return groups


async def _all(jobs: list[Coroutine[Any, Any, JudgeRun]]) -> list[JudgeRun]:
    """Run the jobs side by side; when one fails, the others are cancelled before the error goes up."""
    if len(jobs) == 1:
        return [await jobs[0]]
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def merge_estimates(estimates: Sequence[DryRunEstimate]) -> DryRunEstimate | None:
    """The sum of several estimates (None for none)."""
    if not estimates:
        return None
    sums = {
        f.name: sum(getattr(e, f.name) for e in estimates)
        for f in dataclasses.fields(DryRunEstimate)
        if f.name != "method"
    }
    methods = sorted({m.strip() for e in estimates for m in e.method.split(",")})
    return DryRunEstimate(**sums, method=", ".join(methods))


async def _judge_group(
    requests: Sequence[JudgeRequest],
    config: JudgeConfig,
    store: JudgeCache,
    budget: _Budget,
    dry_run: bool,
    progress: bool,
) -> JudgeRun:
    """The requests of one judge config: cache hits, then calls for the rest (or a dry-run estimate)."""
    parser = get_parser(config.parser)
    items = _prepare(requests, config)
    outcomes: list[JudgeOutcome | None] = [None] * len(items)
    run = JudgeRun(outcomes=[], judge=config.summary(), dry_run=dry_run)
    for index, (request, item) in enumerate(zip(requests, items, strict=True)):
        if item is None:
            outcomes[index] = JudgeOutcome(
                key=request.key,
                status="failed",
                error_kind="empty_response",
                error="the model's response is empty; judged failed without asking the judge",
                judge_model=config.model,
            )
    hits = store.get_many(item.key for item in items if item is not None)
    pending: dict[str, list[int]] = {}  # cache key -> request indices (duplicates asked once)
    for index, item in enumerate(items):
        if item is None:
            continue
        record = hits.get(item.key)
        if record is not None:
            outcomes[index] = _from_cache(item, record)
            run.cache_hits += 1
        else:
            pending.setdefault(item.key, []).append(index)

    if dry_run:
        todo = [items[indices[0]] for indices in pending.values()]
        run.estimate = _estimate([i for i in todo if i is not None], config, parser)
        for indices in pending.values():
            for index in indices:
                item = items[index]
                assert item is not None
                outcomes[index] = JudgeOutcome(
                    key=item.request.key,
                    status="skipped",
                    error_kind="dry_run",
                    error="dry run: not asked",
                    cache_key=item.key,
                    truncated=dict(item.rendered.truncated),
                    judge_model=config.model,
                )
    elif pending:
        ask = _batch_pending if config.mode == "batch" else _call_pending
        await ask(items, pending, outcomes, run, config, store, parser, budget, progress)

    run.outcomes = [o for o in outcomes if o is not None]
    assert len(run.outcomes) == len(requests)
    log.info(
        "judge %s: %d items, %d judged, %d failed, %d skipped; %d calls, %d cache hits, $%.4f",
        config.name,
        len(run.outcomes),
        run.judged,
        run.failed,
        run.skipped,
        run.calls,
        run.cache_hits,
        run.usd,
    )
    return run


class _CacheWriter:
    """Synchronous mode's cache writes (lease claims, judgements, failures, releases), committed together
    at the end of the event loop's current step: the items whose replies arrived at the same moment share
    one transaction instead of two each, which is most of the engine's CPU per call at high concurrency.
    A worker waits for its claim, queued after its previous item's judgement, so that judgement is
    committed before the worker does anything else, as with one transaction per write."""

    def __init__(self, store: JudgeCache) -> None:
        self.store = store
        self.loop = asyncio.get_running_loop()
        self.pending: list[tuple[Callable[[CacheTransaction], Any], asyncio.Future[Any] | None]] = []
        self.scheduled = False
        self.error: BaseException | None = None

    def queue(
        self, change: Callable[[CacheTransaction], Any], *, wait: bool = False
    ) -> asyncio.Future[Any] | None:
        if self.error is not None:
            raise self.error
        future = self.loop.create_future() if wait else None
        self.pending.append((change, future))
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self.flush)
        return future

    async def claim(self, key: str, owner: str, ttl_s: float) -> tuple[str, CachedJudgement | None]:
        future = self.queue(lambda tx: tx.claim(key, owner, ttl_s), wait=True)
        assert future is not None
        result: tuple[str, CachedJudgement | None] = await future
        return result

    def flush(self) -> None:
        """Commit what is queued (also called when the run ends, so nothing queued is lost)."""
        self.scheduled = False
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            with self.store.transaction() as tx:
                results = [change(tx) for change, _ in batch]
        except BaseException as exc:
            self.error = exc
            for _, future in batch:
                if future is not None and not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future is not None and not future.done():
                future.set_result(result)

    def close(self) -> None:
        """Commit the rest; a write that failed fails the run."""
        self.flush()
        if self.error is not None:
            raise self.error


class _Finisher:
    """Where the result of each pending item goes, in both modes: parsed judgements to the cache first
    (a kill after that loses nothing paid for), failures to its log, then to every request that asked
    the same question. It is also batch mode's sink (``batch.BatchSink``)."""

    def __init__(
        self,
        items: list[_Item | None],
        pending: dict[str, list[int]],
        outcomes: list[JudgeOutcome | None],
        run: JudgeRun,
        config: JudgeConfig,
        store: JudgeCache,
        bar: Any,
        owner: str | None = None,  # the lease owner (synchronous mode), whose lease a failure releases
        writer: _CacheWriter | None = None,  # synchronous mode: writes committed with those of other items
    ) -> None:
        self.items, self.pending, self.outcomes, self.run = items, pending, outcomes, run
        self.config, self.store, self.bar, self.owner = config, store, bar, owner
        self.writer = writer
        self.identity = config.identity_hash()

    def write(self, change: Callable[[CacheTransaction], Any]) -> None:
        if self.writer is not None:
            self.writer.queue(change)
        else:
            with self.store.transaction() as tx:
                change(tx)

    def first(self, key: str) -> _Item:
        item = self.items[self.pending[key][0]]
        assert item is not None
        return item

    def share(self, key: str, outcome: JudgeOutcome) -> None:
        indices = self.pending[key]
        self.outcomes[indices[0]] = outcome
        for index in indices[1:]:
            item = self.items[index]
            assert item is not None
            # A duplicate of an earlier request shares its answer; the call was paid once.
            self.outcomes[index] = dataclasses.replace(
                outcome, key=item.request.key, usage=Usage(), cost_usd=0.0, attempts=0, cached=True
            )
        self.bar.update(len(indices))

    def cached(self, key: str, record: CachedJudgement) -> None:
        """Judged meanwhile by another process: its answer, at no cost to this run."""
        self.run.cache_hits += 1
        self.share(key, _from_cache(self.first(key), record))

    def result(self, key: str, result: JudgeAttempts) -> None:
        first = self.first(key)
        config = self.config
        outcome = _from_attempts(first, result, config)
        if result.status == "ok" and result.parsed is not None:
            record = result.cache_record(key, config, first.rendered.truncated, self.identity)
            self.write(lambda tx: tx.put(record))
        else:
            owner, kind = self.owner, result.error_kind or "unknown"
            if result.status == "failed":
                self.write(
                    lambda tx: tx.log_failure(
                        key, config.model, kind, result.error, result.raw, result.attempts
                    )
                )
            if owner is not None:
                self.write(lambda tx: tx.release(key, owner))
        self.run.prompt_tokens += result.usage.prompt_tokens
        self.run.completion_tokens += result.usage.completion_tokens
        self.run.usd += result.cost_usd
        self.share(key, outcome)


def _progress_bar(
    config: JudgeConfig, items: list[_Item | None], pending: dict[str, list[int]], progress: bool
) -> Any:
    return tqdm(
        total=len(items),
        initial=len(items) - sum(len(v) for v in pending.values()),
        desc=f"judge {config.name}",
        unit="item",
        disable=not progress,
    )


async def _call_pending(
    items: list[_Item | None],
    pending: dict[str, list[int]],
    outcomes: list[JudgeOutcome | None],
    run: JudgeRun,
    config: JudgeConfig,
    store: JudgeCache,
    parser: Any,
    budget: _Budget,
    progress: bool,
) -> None:
    # The config's concurrency is the one limit: this many workers, each with one call in flight.
    width = config.concurrency
    client = JudgeClient(config)
    client.open()  # fail now, before any work, when the key is missing
    queue = list(pending.items())
    queue.reverse()  # pop() from the end keeps request order
    bar = _progress_bar(config, items, pending, progress)
    owner = new_lease_owner()
    writer = _CacheWriter(store)
    done = _Finisher(items, pending, outcomes, run, config, store, bar, owner, writer)
    deferred: list[tuple[str, list[int]]] = []  # items another live process is judging right now
    next_check = 0.0

    def recheck() -> None:
        """Items leased elsewhere: take the answers that arrived, queue the ones whose lease ended."""
        keys = [key for key, _ in deferred]
        stored = store.get_many(keys)
        held = store.held_elsewhere([k for k in keys if k not in stored], owner)
        still = []
        for key, indices in deferred:
            if key in stored:
                done.cached(key, stored[key])
            elif key in held:
                still.append((key, indices))
            else:
                queue.append((key, indices))
        deferred[:] = still

    async def ask(key: str, indices: list[int]) -> None:
        item = items[indices[0]]
        assert item is not None
        if budget.exhausted:
            done.result(
                key,
                JudgeAttempts(
                    status="skipped",
                    error_kind="budget_exhausted",
                    error="not asked: the budget cap was reached",
                ),
            )
            return
        state, record = await writer.claim(key, owner, LEASE_TTL_S)
        if state == "done":
            assert record is not None
            done.cached(key, record)
            return
        if state == "busy":
            deferred.append((key, indices))
            return
        try:
            result = await client.judge(
                item.rendered.text,
                item.request.n_expected,
                parser.for_request(item.request.fields),
                gate=budget.gate,
                settle=budget.settle,
            )
        except BaseException:
            store.release(key, owner)
            raise
        done.result(key, result)

    async def worker() -> None:
        nonlocal next_check
        while queue or deferred:
            if queue:
                await ask(*queue.pop())
                continue
            await asyncio.sleep(LEASE_POLL_S)
            if not queue and deferred and time.monotonic() >= next_check:
                next_check = time.monotonic() + LEASE_POLL_S
                recheck()

    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(LEASE_TTL_S / 3)
            store.renew(owner, LEASE_TTL_S)

    beat = asyncio.ensure_future(heartbeat())
    workers = [asyncio.ensure_future(worker()) for _ in range(min(width, len(queue)))]
    try:
        await asyncio.gather(*workers)
    finally:
        # On an error in one worker, stop the others here (not later, after the cache is closed).
        for task in (*workers, beat):
            task.cancel()
        await asyncio.gather(*workers, beat, return_exceptions=True)
        bar.close()
        run.calls = client.calls
        try:
            writer.close()  # judgements that arrived last are committed before anything else
        finally:
            try:
                store.release(None, owner)
            finally:
                await client.aclose()


async def _batch_pending(
    items: list[_Item | None],
    pending: dict[str, list[int]],
    outcomes: list[JudgeOutcome | None],
    run: JudgeRun,
    config: JudgeConfig,
    store: JudgeCache,
    parser: Any,
    budget: _Budget,
    progress: bool,
) -> None:
    """Batch mode (``config.mode == "batch"``): the cache misses go through the files + batches API
    (``batch.judge_in_batches``), whose results reach the cache and the outcomes through the same
    ``_Finisher`` as synchronous replies. The batch ledger stands in for leases: an item held by an open
    batch of any run is collected from that batch, never asked again."""
    from iopo_eval.judges.batch import judge_in_batches

    done = _Finisher(items, pending, outcomes, run, config, store, tqdm(disable=True))
    asked = [_batch_item(done.first(key)) for key in pending]
    parsers = {key: parser.for_request(done.first(key).request.fields) for key in pending}
    fallback_calls = 0

    async def fallback(asked: list[tuple[BatchItem, JudgeAttempts]]) -> None:
        """``fallback: sync``: error lines and rejected replies asked again one by one (with the client's
        retries and rate limit, ``concurrency`` at a time); the batch rounds already paid count too."""
        nonlocal fallback_calls
        client = JudgeClient(config)
        queue = list(reversed(asked))

        async def worker() -> None:
            while queue:
                batch_item, before = queue.pop()
                result = await client.judge(
                    batch_item.prompt,
                    batch_item.n_expected,
                    parsers[batch_item.key],
                    gate=budget.gate,
                    settle=budget.settle,
                )
                result.attempts += before.attempts
                result.usage.prompt_tokens += before.usage.prompt_tokens
                result.usage.completion_tokens += before.usage.completion_tokens
                result.cost_usd += before.cost_usd
                result.latency_s += before.latency_s
                done.result(batch_item.key, result)

        try:
            await asyncio.gather(*(worker() for _ in range(min(config.concurrency, len(queue)))))
        finally:
            fallback_calls += client.calls
            await client.aclose()

    report = await judge_in_batches(
        asked,
        config,
        store,
        parser,
        done,
        parsers=parsers,
        sync_fallback=fallback,
        gate=budget.gate,
        settle=budget.settle,
        progress=progress,
    )
    run.calls = sum(report.api_calls.values()) + fallback_calls
    run.batch = report


def judge_batch(
    requests: Sequence[JudgeRequest],
    config: JudgeConfig | Mapping[str, JudgeConfig],
    cache: JudgeCache | str | os.PathLike[str] | None = None,
    **options: Any,
) -> JudgeRun:
    """Synchronous ``judge_many``. Inside a running event loop (a notebook, an async caller) the work
    runs on a private loop in a helper thread, since a loop cannot be re-entered."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _run_loop(judge_many(requests, config, cache, **options))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="iopo-judge") as pool:
        return pool.submit(_run_loop, judge_many(requests, config, cache, **options)).result()


def _run_loop(coro: Any) -> Any:
    """Run the engine on uvloop where it is installed (a dependency except on Windows): about a quarter
    less harness CPU per call at concurrency 64 (benchmarks/judge_throughput.py); plain asyncio elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
