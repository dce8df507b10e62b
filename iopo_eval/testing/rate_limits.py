"""A server-side rate limit for ``OpenAIServer``: a fault function that answers 429 with ``Retry-After``
once calls exceed a requests-per-minute (and optionally a prompt-tokens-per-minute) limit, as a real
account's limits do. Use it as ``OpenAIServer(reply, faults=EnforcedLimit(600))``.

Each limit is a token bucket holding ``burst_s`` seconds of its rate, refilled continuously; it starts
full. A call that finds too little in a bucket is refused (counted in ``rejected``) and told in ``Retry-After`` (fractional
seconds, as precise as OpenAI's ``retry-after-ms``) how long until there is enough. Prompt tokens are counted as the server's ``default_usage`` counts them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from iopo_eval.testing.loopback import default_usage
from iopo_eval.testing.openai_server import Fault


class _Bucket:
    def __init__(self, per_minute: float, burst_s: float, now: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = self.rate * burst_s
        self.level = self.capacity
        self.at = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.at) * self.rate)
        self.at = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` fits (0 when it fits now); a cost above capacity needs a full bucket."""
        need = min(cost, self.capacity) - self.level
        return max(0.0, need / self.rate)


class EnforcedLimit:
    def __init__(
        self, requests_per_minute: float, *, tokens_per_minute: float | None = None, burst_s: float = 1.0
    ) -> None:
        now = time.monotonic()
        self._lock = threading.Lock()
        self.requests = _Bucket(requests_per_minute, burst_s, now)
        self.tokens = _Bucket(tokens_per_minute, burst_s, now) if tokens_per_minute else None
        self.accepted = 0
        self.rejected = 0

    def __call__(self, request: dict[str, Any]) -> Fault | None:
        tokens = default_usage(request, "")[0]
        with self._lock:
            now = time.monotonic()
            buckets = [(self.requests, 1.0)] + ([(self.tokens, float(tokens))] if self.tokens else [])
            for bucket, _ in buckets:
                bucket.refill(now)
            wait = max(bucket.wait_for(cost) for bucket, cost in buckets)
            if wait > 0:
                self.rejected += 1
                return Fault.rate_limited(retry_after=f"{max(wait, 0.001):.3f}")
            for bucket, cost in buckets:
                bucket.level -= cost
            self.accepted += 1
        return None
