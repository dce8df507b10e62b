"""Faults at a random rate for the scripted server: every way a judge endpoint misbehaves in practice.

``RandomFaults(rate=0.3, seed=1)`` is a ``faults`` function for :class:`OpenAIServer`: each call is hit
by a fault with probability ``rate``, the kind drawn uniformly from ``kinds``. Transport faults:

- ``rate_limited``: 429 with a short ``Retry-After``;  ``server_error``: 500;  ``unavailable``: 503;
- ``timeout``: the answer comes only after ``sleep_s`` (longer than the client's timeout);
- ``cut_body``: headers and half the body, then the connection is closed;
- ``truncated_body``: a 200 whose JSON body stops in the middle;  ``not_json``: a 200 with an HTML page.

Reply faults (a well-formed completion whose text the parser must reject):

- ``missing_score``: an entry without its score;  ``extra_score``: one entry too many;
- ``out_of_range``: a score of 11;  ``prose``: no JSON at all;  ``empty``: an empty reply.

The seeded generator makes the sequence of faults repeatable; which call gets which fault still
depends on the order in which concurrent calls arrive. ``counts`` says how often each kind was used.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from iopo_eval.testing.openai_server import Fault
from iopo_eval.testing.replies import expected_count

TRANSPORT_FAULTS = (
    "rate_limited",
    "server_error",
    "unavailable",
    "timeout",
    "cut_body",
    "truncated_body",
    "not_json",
)
REPLY_FAULTS = ("missing_score", "extra_score", "out_of_range", "prose", "empty")
ALL_FAULTS = TRANSPORT_FAULTS + REPLY_FAULTS


def _entries(n: int, score: float = 10) -> list[dict[str, Any]]:
    return [{"index": i, "reason": f"constraint {i}", "score": score} for i in range(1, n + 1)]


def bad_reply(kind: str, n: int) -> str:
    """The text of a reply fault for a request that asks for ``n`` scores."""
    if kind == "missing_score":
        entries = _entries(n)
        del entries[-1]["score"]
        return json.dumps({"constraints": entries, "overall": 10})
    if kind == "extra_score":
        return json.dumps({"constraints": _entries(n + 1), "overall": 10})
    if kind == "out_of_range":
        return json.dumps({"constraints": _entries(n, 11), "overall": 10})
    if kind == "prose":
        return "The response looks fine to me overall."
    if kind == "empty":
        return ""
    raise ValueError(f"unknown reply fault {kind!r}")


class RandomFaults:
    def __init__(
        self,
        rate: float,
        seed: int = 0,
        kinds: Sequence[str] = ALL_FAULTS,
        *,
        retry_after: float = 0.05,
        sleep_s: float = 2.0,
        only: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        unknown = sorted(set(kinds) - set(ALL_FAULTS))
        if unknown or not kinds:
            raise ValueError(f"unknown fault kinds {unknown} (known: {ALL_FAULTS})")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault rate must be in [0, 1], got {rate}")
        self.rate = rate
        self.kinds = tuple(kinds)
        self.retry_after = retry_after
        self.sleep_s = sleep_s
        self.only = only  # fault only the calls this accepts (None: every call)
        self.counts: Counter[str] = Counter()
        self.calls = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> Fault | None:
        with self._lock:
            self.calls += 1
            if self.only is not None and not self.only(request):
                return None
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.counts[kind] += 1
        return self.fault(kind, request)

    def fault(self, kind: str, request: dict[str, Any]) -> Fault:
        if kind == "rate_limited":
            return Fault.rate_limited(self.retry_after)
        if kind == "server_error":
            return Fault.server_error(500)
        if kind == "unavailable":
            return Fault.unavailable(self.retry_after)
        if kind == "timeout":
            return Fault.sleep(self.sleep_s)
        if kind == "cut_body":
            return Fault.cut_body()
        if kind == "truncated_body":
            return Fault.malformed_json()
        if kind == "not_json":
            return Fault.not_json()
        return Fault.reply_text(bad_reply(kind, expected_count(request)))

    @property
    def faulted(self) -> int:
        return sum(self.counts.values())
