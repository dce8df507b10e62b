"""An async client for any OpenAI-compatible chat-completions endpoint (OpenAI, Azure's OpenAI-compatible
route, vLLM, llama.cpp), with the retry policy judges need.

It speaks the chat-completions wire protocol over aiohttp, and one retry loop here decides:
- 429 and 503 wait for ``Retry-After`` (seconds, ``retry-after-ms``, or an HTTP date) when the server
  sends it, else back off exponentially with jitter; other 5xx, timeouts, dropped connections and
  malformed bodies back off and retry; 408 counts as a timeout; any other 4xx fails at once.
- A reply the parser rejects is asked again, without waiting (it counts as an attempt).
- After ``max_retries`` retries the judgement is recorded as failed with the kind of the last error.
The API key is read from the config's environment variable when the client is first used, and kept
only in memory, in the session's Authorization header.

A config with a ``rate_limit`` paces every HTTP call (retries included) through the process-wide limiter
of its endpoint, model and key (``ratelimit.limiter_for``): a slot is acquired before the call and
settled with the usage the endpoint reports after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from iopo_eval.judges import estimate
from iopo_eval.judges.cache import CachedJudgement
from iopo_eval.judges.config import DEFAULT_BASE_URL, JudgeConfig, JudgeConfigError
from iopo_eval.judges.parse import JudgeParseError, ParsedJudgement, ParserSpec
from iopo_eval.judges.ratelimit import limiter_for
from iopo_eval.judges.types import ErrorKind, OutcomeStatus, Usage

log = logging.getLogger(__name__)
# The HTTP library logs every request at INFO: thousands of lines per run. Quieten it unless someone
# configured that logger on purpose.
for _name in ("httpx2", "httpx", "aiohttp.client"):
    if logging.getLogger(_name).level == logging.NOTSET:
        logging.getLogger(_name).setLevel(logging.WARNING)

MAX_RETRY_AFTER_S = 300.0  # a longer Retry-After is capped: a run should not sleep for hours
_BOUND_KEYWORDS = ("minItems", "maxItems", "minimum", "maximum")


class CallError(Exception):
    """One failed HTTP call, classified into an error kind of ``types.ERROR_KINDS``."""

    def __init__(
        self, error_kind: ErrorKind, message: str, *, retryable: bool, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.error_kind = error_kind
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass
class Completion:
    text: str
    usage: Usage
    latency_s: float
    usage_reported: bool = True


@dataclass
class JudgeAttempts:
    """The result of asking one question until it parsed, failed for good, or the budget said stop."""

    status: OutcomeStatus
    parsed: ParsedJudgement | None = None
    raw: str | None = None
    error_kind: ErrorKind | None = None
    error: str | None = None
    attempts: int = 0  # HTTP calls made
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0  # wall time of the calls, waits excluded

    def cache_record(
        self, key: str, config: JudgeConfig, truncated: dict[str, int], identity: str | None = None
    ) -> CachedJudgement:
        """The judge cache's record of this parsed judgement: one construction for synchronous and batch
        replies, so both modes store the same fields."""
        if self.parsed is None:
            raise ValueError(f"judge request {key!r}: only a parsed judgement is cached")
        return CachedJudgement(
            key=key,
            judge_identity=identity or config.identity_hash(),
            judge_name=config.name,
            judge_model=config.model,
            prompt_version=config.prompt_version,
            raw=self.raw or "",
            scores=list(self.parsed.scores),
            reasons=list(self.parsed.reasons) if self.parsed.reasons is not None else None,
            overall=self.parsed.overall,
            prompt_tokens=self.usage.prompt_tokens,
            completion_tokens=self.usage.completion_tokens,
            cost_usd=self.cost_usd,
            latency_s=self.latency_s,
            attempts=self.attempts,
            truncated=dict(truncated),
            created_at=time.time(),
        )


# Asks whether one more call of the given estimated cost may start; the second callable settles it.
CallGate = Callable[[float], Awaitable[bool]]
CallSettle = Callable[[float, float], None]


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (delta-seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without length and range bounds, for OpenAI's strict structured outputs (the parser
    enforces those bounds anyway, and older snapshots reject the keywords)."""
    if isinstance(schema, dict):
        return {k: strict_schema(v) for k, v in schema.items() if k not in _BOUND_KEYWORDS}
    if isinstance(schema, list):
        return [strict_schema(v) for v in schema]
    return schema


def classify_status(status: int, headers: Any, body: bytes) -> CallError:
    """A non-2xx reply as a CallError: what to retry, and after how long."""
    retry_after = parse_retry_after(headers) if status in (429, 503) else None
    message = body[:600].decode("utf-8", "replace")
    with contextlib.suppress(ValueError, KeyError, TypeError):  # OpenAI-style {"error": {"message": ...}}
        message = str(json.loads(body)["error"]["message"])
    detail = f"HTTP {status} from the judge endpoint: {message[:300]}"
    if status == 429:
        return CallError("rate_limited", detail, retryable=True, retry_after=retry_after)
    if status == 408:
        return CallError("timeout", detail, retryable=True)
    if status >= 500:
        return CallError("server_error", detail, retryable=True, retry_after=retry_after)
    return CallError("bad_request", detail, retryable=False)


def classify_exception(exc: BaseException) -> CallError:
    if isinstance(exc, CallError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return CallError("timeout", "the judge call timed out", retryable=True)
    if isinstance(exc, (aiohttp.ClientError, ConnectionError, OSError)):
        # Refused or dropped connections and bodies cut in the middle: worth another try.
        return CallError(
            "connection_error",
            f"connection to the judge endpoint failed: {type(exc).__name__}: {exc}"[:400],
            retryable=True,
        )
    if isinstance(exc, ValueError):
        # The body was not the JSON of a chat completion: a broken server or proxy; worth another try.
        return CallError(
            "server_error", f"malformed reply body: {type(exc).__name__}: {exc}"[:400], retryable=True
        )
    raise exc


async def _within(call: Awaitable[bytes], seconds: float) -> bytes:
    """``call`` bounded by a total time; ``asyncio.timeout`` (3.11+) spares the task ``wait_for`` makes."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await call
    return await asyncio.wait_for(call, timeout=seconds)


def _read_completion(reply: Any) -> tuple[str, Usage | None]:
    """The assistant text and token usage of a chat-completions reply body."""
    try:
        message = reply["choices"][0]["message"]
        text = message.get("content") or ""
        if not isinstance(text, str):
            raise TypeError(f"content is a {type(text).__name__}")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise CallError("server_error", f"the reply is not a chat completion: {exc}", retryable=True) from exc
    usage = reply.get("usage") if isinstance(reply, dict) else None
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        completion = usage.get("completion_tokens")
        return text, Usage(usage["prompt_tokens"], completion if isinstance(completion, int) else 0)
    return text, None


class JudgeClient:
    """One HTTP session to the judge endpoint. It does not limit concurrency itself: the engine runs
    ``config.concurrency`` workers per config, each with one call in flight. It paces calls to the
    config's ``rate_limit`` when one is stated.

    It speaks the chat-completions wire protocol directly over aiohttp (bearer key, JSON body, JSON
    reply): every OpenAI-compatible server takes exactly that, and skipping a typed client library's
    request and response models saves most of the CPU of a call (benchmarks/judge_throughput.py)."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._url = (config.base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self.calls = 0  # HTTP calls started
        self.limiter = limiter_for(config)  # None: no rate limit stated
        # Reply schemas by (parser, number of scores), and their strict-mode forms: built once per run.
        self._schemas: dict[tuple[str, int], tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}

    def schemas(
        self, parser: ParserSpec, n_expected: int
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        key = (parser.name, n_expected)
        if key not in self._schemas:
            schema = parser.schema(n_expected) if parser.schema is not None else None
            self._schemas[key] = (schema, strict_schema(schema) if schema is not None else None)
        return self._schemas[key]

    def open(self) -> aiohttp.ClientSession:
        """The HTTP session, made on first use inside the event loop (that is when the key is read)."""
        if self._session is None:
            key = self.config.api_key()
            if key is None and self.config.base_url is None:
                raise JudgeConfigError(
                    f"judge {self.config.name}: the OpenAI API needs a key in the environment variable "
                    f"{self.config.api_key_env}, which is not set (or set base_url for a local server)"
                )
            # Local servers (llama.cpp, vLLM) accept any key; some insist on the header being there.
            headers = {"Authorization": f"Bearer {key or 'unused'}", "Content-Type": "application/json"}
            self._session = aiohttp.ClientSession(
                headers=headers,
                cookie_jar=aiohttp.DummyCookieJar(),  # an API sets no cookies worth keeping
                connector=aiohttp.TCPConnector(limit=0, limit_per_host=0),
                timeout=aiohttp.ClientTimeout(total=None),  # the call's own deadline is _within()
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def request_body(
        self,
        prompt: str,
        schema: dict[str, Any] | None,
        schema_name: str,
        strict: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The chat-completions body; ``strict`` is ``strict_schema(schema)`` when the caller has it."""
        cfg = self.config
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": cfg.temperature,
            "max_tokens": cfg.max_tokens,
        }
        if cfg.top_p is not None:
            body["top_p"] = cfg.top_p
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        if cfg.response_format == "json_schema" and schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name,
                    "strict": True,
                    "schema": strict if strict is not None else strict_schema(schema),
                },
            }
        elif cfg.response_format == "json_object":
            # The schema beside json_object is llama.cpp's extension (it becomes a grammar there); for
            # OpenAI itself use json_schema.
            body["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}
        return body

    async def complete(self, body: dict[str, Any], prompt_tokens: int | None = None) -> Completion:
        """One HTTP call, bounded by the config's timeout (after waiting for its slot when the config
        states a rate limit; ``prompt_tokens`` is the prompt's estimate, computed here when not given)."""
        session = self.open()
        ticket = None
        if self.limiter is not None:
            if prompt_tokens is None:
                prompt_tokens = estimate.prompt_tokens(body["messages"][-1]["content"], self.config.model)
            # A failed call keeps its reservation: the endpoint may have counted it.
            ticket = await self.limiter.acquire(prompt_tokens)
        self.calls += 1
        started = time.perf_counter()
        try:
            raw = await _within(self._post(session, body), self.config.timeout_s)
            reply = json.loads(raw)
        except Exception as exc:
            raise classify_exception(exc) from exc
        latency = time.perf_counter() - started
        text, usage = _read_completion(reply)
        if ticket is not None and self.limiter is not None:
            self.limiter.settle(ticket, usage)
        if usage is not None:
            return Completion(text=text, usage=usage, latency_s=latency)
        # No usage reported (some servers): estimate, so that cost accounting stays conservative.
        prompt = body["messages"][-1]["content"]
        est = Usage(estimate.prompt_tokens(prompt, self.config.model), estimate.heuristic_tokens(text))
        return Completion(text=text, usage=est, latency_s=latency, usage_reported=False)

    async def _post(self, session: aiohttp.ClientSession, body: dict[str, Any]) -> bytes:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        async with session.post(self._url, data=data) as resp:
            raw = await resp.read()
            if resp.status >= 400:
                raise classify_status(resp.status, resp.headers, raw)
            return raw

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced, for anything that is kept (error messages, raw replies)."""
        key = self.config.api_key()
        if key and len(key) >= 8 and key in text:
            return text.replace(key, "[redacted API key]")
        return text

    def backoff(self, retry_number: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based)."""
        if retry_after is not None:
            wait = min(retry_after, MAX_RETRY_AFTER_S)
            return wait + random.uniform(0, 0.1 * wait)  # a little spread so waiters do not return at once
        cfg = self.config
        cap = min(cfg.backoff_max_s, cfg.backoff_initial_s * 2 ** (retry_number - 1))
        return cap / 2 + random.uniform(0, cap / 2)

    async def judge(
        self,
        prompt: str,
        n_expected: int,
        parser: ParserSpec,
        *,
        gate: CallGate | None = None,
        settle: CallSettle | None = None,
    ) -> JudgeAttempts:
        """Ask until the reply parses, the error is final, or retries (or the budget) run out."""
        cfg = self.config
        schema, strict = self.schemas(parser, n_expected)
        body = self.request_body(prompt, schema, parser.name, strict)
        prompt_tokens = estimate.prompt_tokens(prompt, cfg.model)
        estimated = cfg.price.cost(prompt_tokens, cfg.max_tokens)
        result = JudgeAttempts(status="failed")
        for attempt in range(1, cfg.max_retries + 2):
            if gate is not None and not await gate(estimated):
                result.status, result.error_kind = "skipped", "budget_exhausted"
                result.error = "not asked: the budget cap would be exceeded"
                return result
            result.attempts = attempt
            try:
                completion = await self.complete(body, prompt_tokens)
            except CallError as err:
                if settle is not None:
                    settle(estimated, 0.0)  # a failed call is not billed by OpenAI
                result.error_kind, result.error = err.error_kind, self.redact(str(err))
                if not err.retryable or attempt > cfg.max_retries:
                    return result
                wait = self.backoff(attempt, err.retry_after)
                log.debug("judge call failed (%s); retry %d in %.2fs", err.error_kind, attempt, wait)
                await asyncio.sleep(wait)
                continue
            cost = cfg.price.cost(completion.usage.prompt_tokens, completion.usage.completion_tokens)
            if settle is not None:
                settle(estimated, cost)
            result.usage.prompt_tokens += completion.usage.prompt_tokens
            result.usage.completion_tokens += completion.usage.completion_tokens
            result.cost_usd += cost
            result.latency_s += completion.latency_s
            # A proxy or a judge may echo the key (error pages, quoted headers): nothing stored carries it.
            result.raw = self.redact(completion.text)
            try:
                result.parsed = parser.parse(result.raw, n_expected)
            except JudgeParseError as err:
                result.error_kind, result.error = err.error_kind, self.redact(str(err))
                log.debug("judge reply rejected (%s: %s); attempt %d", err.error_kind, err, attempt)
                continue
            result.status, result.error_kind, result.error = "ok", None, None
            return result
        return result
