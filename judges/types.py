"""Records that cross the judge boundary: what is asked of a judge and what comes back."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

# Error kinds recorded on failed judgements (a failure is never turned into a score).
ErrorKind = Literal[
    "parse_error",  # reply did not contain the structured answer
    "wrong_count",  # number of scores differs from the number of constraints
    "out_of_range",  # a score outside the allowed range
    "empty_reply",
    "rate_limited",  # 429s exhausted the retries
    "server_error",  # 5xx exhausted the retries
    "timeout",
    "connection_error",
    "bad_request",  # 4xx other than 429: not retried
    "budget_exhausted",  # not attempted: the --budget cap was reached (resumable)
    "empty_response",  # the model's response was empty: judged as failed without a call
    "dry_run",  # not attempted: --dry-run only estimates the cost (status "skipped")
    # Batch mode (judges/batch.py): the batch ended before running the request, in every round allowed.
    "batch_expired",  # its 24 h completion window passed
    "batch_cancelled",
    "batch_failed",  # the batch failed as a whole (its input was rejected)
    "batch_pending",  # still in a batch when the run stopped waiting (status "skipped"; the next run collects it)
]
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)
# "ok": parsed; "failed": no usable answer after the retries; "skipped": not asked (budget, dry run).
OutcomeStatus = Literal["ok", "failed", "skipped"]


@dataclass
class JudgeRequest:
    """One judgement to make. ``fields`` fill the prompt template; ``n_expected`` is the number of
    per-constraint scores the parser must find (checked strictly). ``judge`` names the judge config
    that answers it when the engine is given several (a key of that mapping; "" with a single config)."""

    key: str  # the caller's id for the item (not the cache key)
    fields: dict[str, Any]
    n_expected: int
    judge: str = ""


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class JudgeOutcome:
    key: str
    status: OutcomeStatus
    scores: list[float] | None = None  # one per constraint, in order
    reasons: list[str] | None = None
    overall: float | None = None
    raw: str | None = None  # the judge's raw reply text (last attempt)
    error_kind: ErrorKind | None = None
    error: str | None = None
    attempts: int = 0
    cached: bool = False  # served from the cache: no call paid by this run
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cache_key: str = ""
    truncated: dict[str, int] = field(default_factory=dict)  # field -> original length, when truncated
    judge_model: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> JudgeOutcome:
        known = set(cls.__dataclass_fields__)
        data = {k: v for k, v in obj.items() if k in known}
        data["usage"] = Usage(**(obj.get("usage") or {}))
        return cls(**data)
