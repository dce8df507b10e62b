"""Client-side pacing to a stated requests-per-minute and tokens-per-minute, so that a run at high
concurrency stays under an account's limits instead of finding them through 429s (which the client still
handles as before: ``Retry-After``, backoff).

Each limit is a generic cell rate algorithm (a leaky bucket kept as one number, the "theoretical arrival
time"): a call of cost ``c`` at rate ``r`` per second may start once the bucket's backlog, plus ``c / r``,
is within ``burst_s`` seconds. So calls flow at the rate, at most ``burst_s`` worth of them at once, and a
call larger than the burst waits for an empty bucket and then goes. Slots are handed out in arrival order
at the moment of asking (no lock is held across an ``await``): a call reserves its slot, then sleeps
until it. The state is guarded by a thread lock, so one limiter serves calls from several event loops
(``judge_batch`` runs on a helper thread inside a running loop).

Tokens: a call reserves its prompt estimate (``estimate.prompt_tokens``, scaled by what the endpoint has
reported so far: a running ratio of reported to estimated prompt tokens) plus the expected reply (the
running mean of reported completion tokens, starting from the caller's guess). When the reply arrives,
``settle`` replaces the reservation with the reported usage, returning or charging the difference. A
call that fails keeps its reservation (a 429 is not billed, but the endpoint may still count it).

``limiter_for(config)`` gives the one limiter of a judge config's ``rate_limit`` (per endpoint, model and
key variable), so every client of that judge in the process shares it; ``JudgeClient.complete`` acquires
a slot before each HTTP call (retries included) and settles it with the reported usage after.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from iopo_eval.judges.config import DEFAULT_BASE_URL, JudgeConfig
from iopo_eval.judges.settings import RateLimitSettings
from iopo_eval.judges.types import Usage

SCALE_BOUNDS = (0.25, 4.0)  # how far reported prompt tokens may move the estimate
EMA_WEIGHT = 0.1  # weight of the newest report in the running estimates


class Clock:
    """Monotonic time and asyncio sleep; tests pass a fake."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class Ticket:
    start: float  # clock time at which the call may start
    prompt_estimate: int  # the prompt tokens estimated (before scaling)
    tokens: float  # tokens reserved (scaled prompt + expected reply)


class _Cell:
    """One limit: ``rate`` units per second with ``burst_s`` seconds of tolerance."""

    def __init__(self, per_minute: float, burst_s: float) -> None:
        self.rate = per_minute / 60.0
        self.burst_s = burst_s
        self.tat = float("-inf")  # theoretical arrival time: when the backlog would be gone

    def earliest(self, cost: float, now: float) -> float:
        backlog_end = max(self.tat, now)
        return backlog_end + min(cost / self.rate, self.burst_s) - self.burst_s

    def take(self, cost: float, start: float) -> None:
        self.tat = max(self.tat, start) + cost / self.rate

    def adjust(self, delta: float) -> None:
        self.tat += delta / self.rate


class RateLimiter:
    def __init__(
        self,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        *,
        burst_s: float = 1.0,
        completion_tokens: int = 256,
        clock: Clock | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.requests = _Cell(requests_per_minute, burst_s) if requests_per_minute else None
        self.tokens = _Cell(tokens_per_minute, burst_s) if tokens_per_minute else None
        self.prompt_scale = 1.0
        self.completion_mean = float(completion_tokens)
        self._lock = threading.Lock()
        self.calls = 0  # calls admitted
        self.waited_s = 0.0  # total time calls were held back

    @classmethod
    def from_settings(cls, limits: RateLimitSettings, clock: Clock | None = None) -> RateLimiter:
        return cls(
            limits.requests_per_minute,
            limits.tokens_per_minute,
            burst_s=limits.burst_s,
            completion_tokens=limits.completion_tokens,
            clock=clock,
        )

    def reserve(self, prompt_tokens: int, completion_tokens: int | None = None) -> Ticket:
        """Book the next slot for a call with this prompt estimate; returns when it may start."""
        with self._lock:
            expected = self.completion_mean if completion_tokens is None else completion_tokens
            tokens = prompt_tokens * self.prompt_scale + expected
            now = self.clock.now()
            start = now
            if self.requests is not None:
                start = max(start, self.requests.earliest(1.0, now))
            if self.tokens is not None:
                start = max(start, self.tokens.earliest(tokens, now))
            if self.requests is not None:
                self.requests.take(1.0, start)
            if self.tokens is not None:
                self.tokens.take(tokens, start)
            self.calls += 1
            self.waited_s += start - now
            return Ticket(start, prompt_tokens, tokens)

    async def acquire(self, prompt_tokens: int, completion_tokens: int | None = None) -> Ticket:
        """Reserve a slot and wait for it. A call cancelled while waiting gives its slot back."""
        ticket = self.reserve(prompt_tokens, completion_tokens)
        delay = ticket.start - self.clock.now()
        if delay > 0:
            try:
                await self.clock.sleep(delay)
            except BaseException:
                self.release(ticket)
                raise
        return ticket

    def release(self, ticket: Ticket) -> None:
        """A reserved call that was not made: its request and tokens are given back."""
        with self._lock:
            if self.requests is not None:
                self.requests.adjust(-1.0)
            if self.tokens is not None:
                self.tokens.adjust(-ticket.tokens)

    def settle(self, ticket: Ticket, usage: Usage | None) -> None:
        """Correct a call's token reservation by the usage the endpoint reported (None: keep it)."""
        if usage is None:
            return
        with self._lock:
            if ticket.prompt_estimate > 0 and usage.prompt_tokens > 0:
                ratio = usage.prompt_tokens / ticket.prompt_estimate
                low, high = SCALE_BOUNDS
                self.prompt_scale = min(
                    high, max(low, (1 - EMA_WEIGHT) * self.prompt_scale + EMA_WEIGHT * ratio)
                )
            self.completion_mean = (
                1 - EMA_WEIGHT
            ) * self.completion_mean + EMA_WEIGHT * usage.completion_tokens
            if self.tokens is not None:
                self.tokens.adjust(usage.prompt_tokens + usage.completion_tokens - ticket.tokens)


_LIMITERS: dict[tuple[Any, ...], RateLimiter] = {}
_REGISTRY_LOCK = threading.Lock()


def limiter_for(config: JudgeConfig, limits: RateLimitSettings | None = None) -> RateLimiter | None:
    """The process-wide limiter of this judge's endpoint, model and key for ``limits`` (default: the
    config's ``rate_limit``); None when no limit is stated."""
    limits = limits if limits is not None else config.rate_limit
    if limits is None or not limits.limits_anything:
        return None
    key = ((config.base_url or DEFAULT_BASE_URL).rstrip("/"), config.model, config.api_key_env, limits)
    with _REGISTRY_LOCK:
        if key not in _LIMITERS:
            _LIMITERS[key] = RateLimiter.from_settings(limits)
        return _LIMITERS[key]


__all__ = ["Clock", "RateLimitSettings", "RateLimiter", "Ticket", "limiter_for"]
