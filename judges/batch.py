"""The judge's batch mode: judge cache misses through a files + batches API (OpenAI's Batch API, Azure
OpenAI's batch deployments) at batch prices, resumably.

What :func:`judge_in_batches` does with the items it is given (cache misses, each keyed by its cache key):

1. Re-attaches to the open submissions in the cache's batch ledger that hold any of them (a run killed
   while a batch ran left them there), so those items are never submitted again.
2. Writes the others as Batch API JSONL, one line per item: ``custom_id`` = the cache key, the body exactly
   what the synchronous client posts (``JudgeClient.request_body``); splits the lines at the per-batch
   limits (``BatchSettings.max_requests``, ``max_bytes``); reserves each line's worst case against the
   budget; records each submission in the ledger *before* uploading it; uploads it (``files.create``,
   purpose ``batch``) and creates the batch (``batches.create``, 24 h window, the submission id in its
   metadata), recording both ids as soon as they are known.
3. Polls every ``poll_interval_s`` (a progress bar shows the batches' request counts); when a batch ends it
   downloads the output and error files and hands each item's result to the sink: parsed by the judge's
   parser exactly as a synchronous reply (``client.classify_status`` and ``_read_completion`` for the
   line, ``parser.parse`` for the text), with usage and cost at batch prices.
4. Retries: an error line the synchronous client would retry (429, 5xx, a body that is not a chat
   completion) and a reply the parser rejects go into a follow-up batch (or, with ``fallback: sync``, to
   the synchronous path); a request the batch never ran (expired, cancelled, failed batch, or no line)
   is submitted again in a follow-up batch. After ``max_rounds`` submissions in one run an item is
   recorded as failed with the kind of its last error, never given a score. A 4xx other than 408/429 is
   final at once, as in synchronous mode.

A submission's results go to the sink (which commits them to the cache) before the ledger closes it,
so a kill at any point loses no paid answer: the next run re-attaches, downloads again and skips what
is stored. A submission still ``preparing`` when its owner died may or may not have become a batch: its
id is looked up in the batches' metadata (``batches.list``) before anything is submitted again.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import openai
from tqdm.auto import tqdm

from iopo_eval.judges import estimate
from iopo_eval.judges.batch_jsonl import (
    BatchFileError,
    LineResult,
    first_by_id,
    read_results,
    request_line,
    split_lines,
)
from iopo_eval.judges.batch_ledger import BatchJob, BatchLedger, HeldKey
from iopo_eval.judges.cache import CachedJudgement, JudgeCache, new_lease_owner, owner_alive
from iopo_eval.judges.client import CallGate, CallSettle, JudgeAttempts, JudgeClient
from iopo_eval.judges.config import DEFAULT_BASE_URL, JudgeConfig, JudgeConfigError, Price
from iopo_eval.judges.parse import JudgeParseError, ParserSpec
from iopo_eval.judges.settings import BatchSettings, JudgeMode
from iopo_eval.judges.types import ErrorKind, OutcomeStatus, Usage

log = logging.getLogger(__name__)

TERMINAL = ("completed", "failed", "expired", "cancelled")
METADATA_KEY = "iopo_eval_submission"  # the batch's metadata entry naming its ledger submission
PREPARING_TTL_S = 600.0  # a submission "preparing" for longer than this is presumed dead, whoever owns it
LIST_SLACK_S = 600  # clock skew allowed when searching batches older than a submission
# The kind recorded when a batch ended without a line for a request, by the batch's final status.
_UNANSWERED_KIND: dict[str, ErrorKind] = {
    "expired": "batch_expired",
    "cancelled": "batch_cancelled",
    "failed": "batch_failed",
    "completed": "server_error",
}


def batch_price(config: JudgeConfig) -> Price:
    """The config's ``batch_price``, else its synchronous price: without a stated batch price the cost
    is never under-estimated."""
    return config.batch_price if config.batch_price is not None else config.price


@dataclass(frozen=True)
class BatchItem:
    """One judgement to make in a batch: its cache key, rendered prompt and number of scores."""

    key: str
    prompt: str
    n_expected: int
    truncated: dict[str, int] = field(default_factory=dict)


class BatchSink(Protocol):
    """Where final results go. ``result`` gets every item this run decides (ok, failed, or skipped with
    ``budget_exhausted`` / ``batch_pending``) and must commit parsed ones to the cache before returning;
    ``cached`` gets items another process stored meanwhile."""

    def result(self, key: str, attempts: JudgeAttempts) -> None: ...

    def cached(self, key: str, record: CachedJudgement) -> None: ...


SyncFallback = Callable[[list[tuple[BatchItem, JudgeAttempts]]], Awaitable[None]]


@dataclass
class BatchReport:
    """What a batch-mode run did. Tokens and dollars are this run's, at batch prices."""

    submitted: list[str] = field(default_factory=list)  # batch ids created by this run
    reattached: list[str] = field(default_factory=list)  # batch ids of earlier runs collected here
    lines_submitted: int = 0  # request lines uploaded in created batches
    api_calls: Counter[str] = field(default_factory=Counter)  # files/batches calls by name
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    answered: int = 0  # items parsed and stored
    failed: int = 0
    cached: int = 0  # stored by another run meanwhile
    skipped: list[str] = field(default_factory=list)  # not submitted: budget
    pending: list[str] = field(default_factory=list)  # still in a batch when max_wait_s ran out
    to_sync: list[str] = field(default_factory=list)  # handed to the synchronous fallback
    elapsed_s: float = 0.0

    def add(self, other: BatchReport) -> None:
        """Fold another report (another judge config's, in the same engine call) into this one."""
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if isinstance(mine, Counter):
                mine.update(theirs)
            elif isinstance(mine, list):
                mine.extend(theirs)
            elif f.name == "elapsed_s":
                self.elapsed_s = max(mine, theirs)  # the configs run side by side
            else:
                setattr(self, f.name, mine + theirs)


class BatchApiError(RuntimeError):
    """A files/batches call failed in a way no retry mends (authentication, a wrong endpoint)."""


@dataclass
class _Key:
    item: BatchItem
    attempts: JudgeAttempts = field(default_factory=lambda: JudgeAttempts(status="failed"))
    rounds: int = 0  # submissions of this item in this run (a re-attached one counts)
    reserved: float = 0.0  # the budget reservation of its submitted line
    done: bool = False


@dataclass
class _Open:
    submission: str
    batch_id: str | None  # None: another live run is still creating it
    started: float  # time.time() of the submission
    status: str = "validating"
    completed: int = 0
    failed: int = 0
    total: int = 0


class _Run:
    def __init__(
        self,
        items: Sequence[BatchItem],
        config: JudgeConfig,
        cache: JudgeCache,
        parser: ParserSpec,
        parsers: Mapping[str, ParserSpec],
        settings: BatchSettings,
        price: Price,
        sink: BatchSink,
        sync_fallback: SyncFallback | None,
        gate: CallGate | None,
        settle: CallSettle | None,
        progress: bool,
    ) -> None:
        self.config, self.cache, self.parser, self.settings, self.price = (
            config,
            cache,
            parser,
            settings,
            price,
        )
        self.sink, self.sync_fallback, self.gate, self.settle = sink, sync_fallback, gate, settle
        self.parsers = parsers  # per cache key, where the parser reads the request (ParserSpec.for_request)
        self.keys: dict[str, _Key] = {}
        for item in items:
            self.keys.setdefault(item.key, _Key(item))
        self.client = JudgeClient(config)  # the body builder and redaction; it opens no session here
        self.identity = config.identity_hash()
        self.endpoint = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.owner = new_lease_owner()
        self.ledger = BatchLedger(cache.path)
        self.report = BatchReport()
        self.open: dict[str, _Open] = {}
        self.held: set[str] = set()  # keys in the open submissions followed by this run
        self.queue: list[str] = []
        self.sync_items: list[tuple[BatchItem, JudgeAttempts]] = []
        self.bar = tqdm(
            total=len(self.keys), desc=f"judge {config.name} (batch)", unit="item", disable=not progress
        )
        self.resolved = 0
        self.api = self._api()

    def _api(self) -> openai.AsyncOpenAI:
        key = self.config.api_key()
        if key is None and self.config.base_url is None:
            raise JudgeConfigError(
                f"judge {self.config.name}: the OpenAI API needs a key in the environment variable "
                f"{self.config.api_key_env}, which is not set (or set base_url for a local server)"
            )
        return openai.AsyncOpenAI(
            api_key=key or "unused",
            base_url=self.endpoint,
            max_retries=self.config.max_retries,
            timeout=self.settings.api_timeout_s,
        )

    # --- the API, counted and redacted ------------------------------------------------------------------
    async def _call(self, name: str, call: Awaitable[Any]) -> Any:
        self.report.api_calls[name] += 1
        return await call

    def _describe(self, exc: BaseException) -> str:
        return self.client.redact(f"{type(exc).__name__}: {exc}")[:400]

    # --- deciding an item -----------------------------------------------------------------------------
    def _final(self, key: str, status: OutcomeStatus) -> None:
        state = self.keys[key]
        state.done = True
        state.attempts.status = status
        state.attempts.attempts = state.rounds
        if status == "ok":
            self.report.answered += 1
        elif status == "failed":
            self.report.failed += 1
        self.sink.result(key, state.attempts)
        self.resolved += 1

    def _cached(self, key: str, record: CachedJudgement) -> None:
        state = self.keys[key]
        state.done = True
        self.report.cached += 1
        self.sink.cached(key, record)
        self.resolved += 1

    def _again(self, key: str, *, unanswered: bool, retryable: bool) -> None:
        """After a round without a parsed answer: another round, the synchronous path, or a failure."""
        state = self.keys[key]
        if not retryable:
            self._final(key, "failed")
        elif not unanswered and self.settings.fallback == "sync" and self.sync_fallback is not None:
            state.done = True
            state.attempts.attempts = state.rounds
            self.report.to_sync.append(key)
            self.sync_items.append((state.item, state.attempts))
            self.resolved += 1
        elif state.rounds < self.settings.max_rounds:
            self.queue.append(key)
        else:
            self._final(key, "failed")

    def _settle(self, state: _Key, actual: float) -> None:
        if self.settle is not None and state.reserved:
            self.settle(state.reserved, actual)
        state.reserved = 0.0

    def _apply(
        self, key: str, line: LineResult | None, batch_status: str, batch_id: str, waited: float
    ) -> None:
        """One item's line from a finished batch (None: the batch has no line for it)."""
        state = self.keys[key]
        attempts = state.attempts
        attempts.latency_s += waited
        if line is None or line.unanswered:
            self._settle(state, 0.0)
            kind = line.error_kind if line is not None else _UNANSWERED_KIND.get(batch_status, "server_error")
            attempts.error_kind = kind
            attempts.error = f"batch {batch_id} ended {batch_status} without answering this request" + (
                f": {line.error}" if line is not None and line.error else ""
            )
            self._again(key, unanswered=True, retryable=True)
            return
        if line.text is None:
            self._settle(state, 0.0)  # an error line is not billed
            attempts.error_kind, attempts.error = line.error_kind, self.client.redact(line.error or "")
            self._again(key, unanswered=False, retryable=line.retryable)
            return
        usage = line.usage or Usage(
            estimate.prompt_tokens(state.item.prompt, self.config.model), estimate.heuristic_tokens(line.text)
        )
        cost = self.price.cost(usage.prompt_tokens, usage.completion_tokens)
        self._settle(state, cost)
        attempts.usage.prompt_tokens += usage.prompt_tokens
        attempts.usage.completion_tokens += usage.completion_tokens
        attempts.cost_usd += cost
        self.report.prompt_tokens += usage.prompt_tokens
        self.report.completion_tokens += usage.completion_tokens
        self.report.usd += cost
        attempts.raw = self.client.redact(line.text)
        try:
            parser = self.parsers.get(key, self.parser)
            attempts.parsed = parser.parse(attempts.raw, state.item.n_expected)
        except JudgeParseError as err:
            attempts.parsed = None
            attempts.error_kind, attempts.error = err.error_kind, self.client.redact(str(err))
            self._again(key, unanswered=False, retryable=True)
            return
        attempts.error_kind = attempts.error = None
        self._final(key, "ok")

    # --- re-attaching -----------------------------------------------------------------------------------
    async def _find_remote(self, job: BatchJob) -> Any | None:
        """The batch created for ``job``, found by its metadata, or None when it was never created. When the
        list cannot be read, nothing is decided: the submission stays open for the next run."""
        try:
            page = await self._call("batches.list", self.api.batches.list(limit=100))
            while True:
                for batch in page.data:
                    if (batch.metadata or {}).get(METADATA_KEY) == job.submission:
                        return batch
                    if batch.created_at < job.created_at - LIST_SLACK_S:
                        return None
                if not page.has_next_page():
                    return None
                page = await self._call("batches.list", page.get_next_page())
        except openai.APIError as exc:
            raise BatchApiError(
                f"judge {self.config.name}: cannot tell whether submission {job.submission} became a batch "
                f"(listing batches failed: {self._describe(exc)}); it stays open, run again to resume"
            ) from exc

    async def _attach(self, job: BatchJob) -> None:
        """Follow an open submission of an earlier (or concurrent) run."""
        if job.submission in self.open:
            return
        held = self.ledger.keys(job.submission)
        for h in held:
            self.held.add(h.key)
            if h.key in self.keys and not self.keys[h.key].done:
                self.keys[h.key].rounds = max(self.keys[h.key].rounds, 1)
        if job.state == "submitted" and job.batch_id is not None:
            self.open[job.submission] = _Open(job.submission, job.batch_id, job.created_at)
            self.report.reattached.append(job.batch_id)
            log.info(
                "re-attached to batch %s (%s, %d requests)", job.batch_id, job.remote_status, job.n_requests
            )
            return
        fresh = time.time() - job.created_at < PREPARING_TTL_S
        if fresh and job.owner != self.owner and owner_alive(job.owner):
            self.open[job.submission] = _Open(job.submission, None, job.created_at)
            log.info(
                "submission %s is being created by a live run (%s); waiting for it", job.submission, job.owner
            )
            return
        found = await self._find_remote(job)
        if found is not None:
            self.ledger.set_batch(job.submission, found.id, found.status)
            self.open[job.submission] = _Open(job.submission, found.id, job.created_at)
            self.report.reattached.append(found.id)
            log.info("batch %s of a dead run found by its metadata; re-attached", found.id)
            return
        self.ledger.close_job(job.submission, "abandoned")
        log.info("submission %s never became a batch; its items are submitted again", job.submission)
        self._requeue_unanswered(held, never_sent=True)

    def _requeue_unanswered(self, held: list[HeldKey], *, never_sent: bool) -> None:
        self.held.difference_update(h.key for h in held)
        stored = self.cache.get_many(h.key for h in held)
        for h in held:
            state = self.keys.get(h.key)
            if state is None or state.done:
                continue
            if h.key in stored:
                self._cached(h.key, stored[h.key])
            else:
                if never_sent:
                    state.rounds = max(0, state.rounds - 1)
                self.queue.append(h.key)

    # --- submitting -------------------------------------------------------------------------------------
    def _line(self, state: _Key) -> bytes:
        schema, strict = self.client.schemas(self.parser, state.item.n_expected)
        body = self.client.request_body(state.item.prompt, schema, self.parser.name, strict)
        return request_line(state.item.key, body, self.settings.endpoint)

    async def _submit_queue(self) -> None:
        keys = [k for k in dict.fromkeys(self.queue) if not self.keys[k].done and k not in self.held]
        self.queue = []
        lines: list[tuple[str, bytes]] = []
        for key in keys:
            line = self._line(self.keys[key])
            if len(line) > self.settings.max_bytes:
                self.keys[key].attempts.error_kind = "bad_request"
                self.keys[
                    key
                ].attempts.error = (
                    f"the request is {len(line)} bytes, over the per-batch limit of {self.settings.max_bytes}"
                )
                self._final(key, "failed")
                continue
            lines.append((key, line))
        chunks = split_lines(
            lines, max_requests=self.settings.max_requests, max_bytes=self.settings.max_bytes
        )
        for index, chunk in enumerate(chunks):
            limit = self.settings.max_in_flight
            if limit is not None and len(self.open) >= limit:
                # The rest waits for an open batch to finish.
                self.queue.extend(k for rest in chunks[index:] for k, _ in rest)
                return
            await self._submit(chunk)

    async def _submit(self, chunk: list[tuple[str, bytes]]) -> None:
        admitted: list[tuple[str, bytes]] = []
        for key, line in chunk:
            state = self.keys[key]
            worst = self.price.cost(
                estimate.prompt_tokens(state.item.prompt, self.config.model), self.config.max_tokens
            )
            if self.gate is not None and not await self.gate(worst):
                state.attempts.error_kind = "budget_exhausted"
                state.attempts.error = "not submitted: the budget cap would be exceeded"
                self.report.skipped.append(key)
                self._final(key, "skipped")
                continue
            state.reserved = worst
            admitted.append((key, line))
        if not admitted:
            return
        submission = uuid.uuid4().hex
        round_ = max(self.keys[k].rounds for k, _ in admitted) + 1
        taken = set(
            self.ledger.begin(
                submission,
                judge_identity=self.identity,
                judge_name=self.config.name,
                endpoint=self.endpoint,
                owner=self.owner,
                round=round_,
                keys=[
                    HeldKey(k, self.keys[k].item.n_expected, self.keys[k].item.truncated) for k, _ in admitted
                ],
                n_bytes=sum(len(line) for _, line in admitted),
            )
        )
        others = [k for k, _ in admitted if k not in taken]
        for key in others:  # another run put them in a batch meanwhile: follow that batch
            self._settle(self.keys[key], 0.0)
        if others:
            for job in self.ledger.open_jobs(self.identity, self.endpoint, others):
                await self._attach(job)
        lines = [(k, line) for k, line in admitted if k in taken]
        if not lines:
            return
        for key, _ in lines:
            self.keys[key].rounds += 1
            self.held.add(key)
        data = b"".join(line for _, line in lines)
        started = time.time()
        try:
            file = await self._call(
                "files.create",
                self.api.files.create(file=(f"iopo-eval-{submission}.jsonl", data), purpose="batch"),
            )
            self.ledger.set_input_file(submission, file.id)
            metadata = {METADATA_KEY: submission, "judge": self.config.name[:512]}
            batch = await self._call(
                "batches.create",
                self.api.batches.create(
                    input_file_id=file.id,
                    # Azure names it "/chat/completions": the SDK's Literal lists OpenAI's paths only.
                    endpoint=self.settings.endpoint,  # type: ignore[arg-type]
                    completion_window=self.settings.completion_window,  # type: ignore[arg-type]
                    metadata=metadata,
                ),
            )
        except openai.APIStatusError as exc:
            await self._submit_failed(submission, lines, exc, final=_is_final(exc.status_code))
            return
        except openai.APIError as exc:  # connection or timeout after the SDK's retries: created or not?
            await self._submit_failed(submission, lines, exc, final=False)
            return
        self.ledger.set_batch(submission, batch.id, batch.status)
        self.report.submitted.append(batch.id)
        self.report.lines_submitted += len(lines)
        self.open[submission] = _Open(submission, batch.id, started, status=batch.status, total=len(lines))
        log.info("batch %s submitted: %d requests, %d bytes", batch.id, len(lines), len(data))

    async def _submit_failed(
        self, submission: str, lines: list[tuple[str, bytes]], exc: openai.APIError, *, final: bool
    ) -> None:
        job = self.ledger.job(submission)
        assert job is not None
        if isinstance(exc, openai.AuthenticationError):
            self.ledger.close_job(submission, "abandoned")
            raise BatchApiError(
                f"judge {self.config.name}: the batch API refused the key: {self._describe(exc)}"
            )
        found = None if final else await self._find_remote(job)
        if found is not None:  # the batch was created; only the reply was lost
            self.ledger.set_batch(submission, found.id, found.status)
            self.report.submitted.append(found.id)
            self.report.lines_submitted += len(lines)
            self.open[submission] = _Open(submission, found.id, job.created_at, total=len(lines))
            return
        self.ledger.close_job(submission, "abandoned")
        self.held.difference_update(k for k, _ in lines)
        status = getattr(exc, "status_code", None)
        kind: ErrorKind = "bad_request" if final else "rate_limited" if status == 429 else "server_error"
        if isinstance(exc, openai.APITimeoutError):
            kind = "timeout"
        elif isinstance(exc, openai.APIConnectionError):
            kind = "connection_error"
        message = f"the batch could not be submitted: {self._describe(exc)}"
        if status == 404:
            message += " (this endpoint may not implement the files and batches API: use --judge-mode sync)"
        log.warning("judge %s: %s", self.config.name, message)
        for key, _ in lines:
            state = self.keys[key]
            self._settle(state, 0.0)
            state.attempts.error_kind, state.attempts.error = kind, message
            self._again(key, unanswered=True, retryable=not final)

    # --- polling and collecting -------------------------------------------------------------------------
    async def _poll(self) -> None:
        for entry in list(self.open.values()):
            if entry.batch_id is None:
                await self._recheck_foreign(entry)
                continue
            try:
                batch = await self._call("batches.retrieve", self.api.batches.retrieve(entry.batch_id))
            except openai.AuthenticationError as exc:
                raise BatchApiError(f"judge {self.config.name}: {self._describe(exc)}") from exc
            except openai.NotFoundError as exc:
                # Deleted, or a ledger entry for another account: its answers cannot be had.
                log.warning(
                    "batch %s: not found (%s); its items are submitted again",
                    entry.batch_id,
                    self._describe(exc),
                )
                await self._collect(entry, _Gone(entry.batch_id))
                continue
            except openai.APIError as exc:
                log.warning(
                    "batch %s: status check failed (%s); trying again", entry.batch_id, self._describe(exc)
                )
                continue
            counts = batch.request_counts
            entry.completed = counts.completed if counts else 0
            entry.failed = counts.failed if counts else 0
            entry.total = counts.total if counts and counts.total else entry.total
            if batch.status != entry.status:
                entry.status = batch.status
                self.ledger.set_remote_status(entry.submission, batch.status)
            if batch.status in TERMINAL:
                await self._collect(entry, batch)
        self._show()

    async def _recheck_foreign(self, entry: _Open) -> None:
        job = self.ledger.job(entry.submission)
        if job is None or job.state == "abandoned" or job.state == "done":
            del self.open[entry.submission]
            if job is not None:
                self._requeue_unanswered(
                    self.ledger.keys(job.submission), never_sent=job.state == "abandoned"
                )
        elif job.state == "submitted":
            entry.batch_id = job.batch_id
            if job.batch_id is not None:
                self.report.reattached.append(job.batch_id)
        elif time.time() - job.created_at >= PREPARING_TTL_S or not owner_alive(job.owner):
            del self.open[entry.submission]
            await self._attach(job)

    async def _collect(self, entry: _Open, batch: Any) -> None:
        lines: list[LineResult] = []
        for kind, file_id in (("output", batch.output_file_id), ("error", batch.error_file_id)):
            if not file_id:
                continue
            try:
                content = await self._call("files.content", self.api.files.content(file_id))
            except openai.NotFoundError as exc:  # expired (30 days) or deleted: those answers are gone
                log.warning(
                    "batch %s: %s file %s not found (%s)", batch.id, kind, file_id, self._describe(exc)
                )
                continue
            except openai.APIError as exc:
                log.warning(
                    "batch %s: %s file download failed (%s); trying again",
                    batch.id,
                    kind,
                    self._describe(exc),
                )
                return  # the batch stays open: collected on the next poll
            lines.extend(read_results(content.content, f"{kind} file {file_id} of batch {batch.id}"))
        found = first_by_id(lines)
        held = self.ledger.keys(entry.submission)
        stored = self.cache.get_many(h.key for h in held)
        waited = max(0.0, time.time() - entry.started)
        for h in held:
            state = self.keys.get(h.key)
            if state is not None and state.done:
                continue
            if h.key in stored:
                if state is not None:
                    self._cached(h.key, stored[h.key])
                continue
            if state is None:
                self._store_foreign(h, found.get(h.key))
                continue
            self._apply(h.key, found.get(h.key), batch.status, batch.id, waited)
        if batch.status == "failed" and batch.errors and batch.errors.data:
            first = batch.errors.data[0]
            log.warning("batch %s failed validation: line %s: %s", batch.id, first.line, first.message)
        self.ledger.close_job(entry.submission, "done")
        del self.open[entry.submission]
        self.held.difference_update(h.key for h in held)

    def _store_foreign(self, held: HeldKey, line: LineResult | None) -> None:
        """An answer in a re-attached batch for an item this run was not asked about: paid for, so kept."""
        if line is None or line.text is None or self.parser.parse_in_context is not None:
            return  # no answer, or one that cannot be checked without its request's fields
        raw = self.client.redact(line.text)
        try:
            parsed = self.parser.parse(raw, held.n_expected)
        except JudgeParseError:
            return
        usage = line.usage or Usage()
        attempts = JudgeAttempts(
            status="ok",
            parsed=parsed,
            raw=raw,
            attempts=1,
            usage=usage,
            cost_usd=self.price.cost(usage.prompt_tokens, usage.completion_tokens),
        )
        self.cache.put(attempts.cache_record(held.key, self.config, held.truncated))

    def _show(self) -> None:
        live = sum(e.completed + e.failed for e in self.open.values())
        self.bar.n = min(self.bar.total, self.resolved + live)
        states = Counter(e.status for e in self.open.values())
        failed = sum(e.failed for e in self.open.values())
        shown = " ".join(f"{s}:{n}" for s, n in sorted(states.items()))
        self.bar.set_postfix_str(f"batches {shown or '-'} failed lines {failed}", refresh=False)
        self.bar.refresh()

    # --- the whole run ----------------------------------------------------------------------------------
    async def run(self) -> BatchReport:
        started = time.perf_counter()
        try:
            stored = self.cache.get_many(self.keys)
            for key, record in stored.items():
                self._cached(key, record)
            todo = [k for k, s in self.keys.items() if not s.done]
            for job in self.ledger.open_jobs(self.identity, self.endpoint, todo):
                await self._attach(job)
            self.queue.extend(k for k in todo if k not in self.held and not self.keys[k].done)
            deadline = (
                None if self.settings.max_wait_s is None else time.monotonic() + self.settings.max_wait_s
            )
            while True:
                if self.queue:
                    await self._submit_queue()
                if not self.open:
                    if not self.queue:
                        break
                    # Submitting failed and will be tried again: not at once.
                    await asyncio.sleep(self.settings.poll_interval_s)
                    continue
                self._show()
                if deadline is not None and time.monotonic() >= deadline:
                    self._leave_pending()
                    break
                await asyncio.sleep(self.settings.poll_interval_s)
                await self._poll()
            if self.sync_items:
                items, self.sync_items = self.sync_items, []
                assert self.sync_fallback is not None
                await self.sync_fallback(items)
            self._show()
            return self.report
        finally:
            self.report.elapsed_s = time.perf_counter() - started
            self.bar.close()
            self.ledger.close()
            await self.api.close()

    def _leave_pending(self) -> None:
        """Stop waiting: items in open batches, and items not yet submitted, are skipped for now."""
        for key in dict.fromkeys(self.queue):
            state = self.keys[key]
            if not state.done and key not in self.held:
                state.attempts.error_kind = "batch_pending"
                state.attempts.error = (
                    "not yet submitted when the wait ran out (max_in_flight); the next run submits it"
                )
                self.report.pending.append(key)
                self._final(key, "skipped")
        self.queue = []
        for entry in self.open.values():
            for h in self.ledger.keys(entry.submission):
                held = self.keys.get(h.key)
                if held is None or held.done:
                    continue
                self._settle(held, 0.0)
                held.attempts.error_kind = "batch_pending"
                held.attempts.error = f"batch {entry.batch_id or '(being created)'} is still {entry.status}; the next run collects it"
                self.report.pending.append(h.key)
                self._final(h.key, "skipped")


@dataclass
class _Gone:
    """A batch the API no longer knows: collected as a failed batch without files."""

    id: str
    status: str = "failed"
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: Any = None


def _is_final(status: int) -> bool:
    """A 4xx other than 408, 409 and 429 will not succeed on a retry (409: a conflict, e.g. a limit)."""
    return 400 <= status < 500 and status not in (408, 409, 429)


async def judge_in_batches(
    items: Sequence[BatchItem],
    config: JudgeConfig,
    cache: JudgeCache,
    parser: ParserSpec,
    sink: BatchSink,
    *,
    parsers: Mapping[str, ParserSpec] | None = None,
    settings: BatchSettings | None = None,
    price: Price | None = None,
    sync_fallback: SyncFallback | None = None,
    gate: CallGate | None = None,
    settle: CallSettle | None = None,
    progress: bool = True,
) -> BatchReport:
    """Judge ``items`` (normally cache misses) through the files + batches API; see the module docstring.
    ``settings`` default to the config's ``batch`` section.

    ``sink`` receives each item's final result (``JudgeAttempts`` exactly as the synchronous client
    returns them, cost at ``price``, default :func:`batch_price`). ``parsers`` holds, by cache key, the
    parser bound to an item's request where it reads the request (``ParserSpec.for_request``); others
    use ``parser``. ``sync_fallback`` receives, with
    ``settings.fallback == "sync"``, the items whose line failed or did not parse, with their batch
    attempts so far (their cost is paid). ``gate`` / ``settle`` are the engine's budget callables: each
    line reserves its worst case before it is submitted."""
    run = _Run(
        items,
        config,
        cache,
        parser,
        parsers or {},
        settings or config.batch,
        price or batch_price(config),
        sink,
        sync_fallback,
        gate,
        settle,
        progress,
    )
    return await run.run()


__all__ = [
    "METADATA_KEY",
    "BatchApiError",
    "BatchFileError",
    "BatchItem",
    "BatchReport",
    "BatchSettings",
    "BatchSink",
    "JudgeMode",
    "SyncFallback",
    "batch_price",
    "judge_in_batches",
]
