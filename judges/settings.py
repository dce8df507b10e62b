"""The optional sections of a judge config that change how a judge is called, never what it answers:
``batch:`` (batch mode, ``batch.py``) and ``rate_limit:`` (client-side pacing, ``ratelimit.py``).

They live here, beside neither user, because the config schema (``config.py``) validates them and both
``batch.py`` and ``ratelimit.py`` read them. Like the rest of a config file they are strict: unknown keys
are errors, ``"4"`` is not a number. None of them enters a config's identity hash.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

JudgeMode = Literal["sync", "batch"]
JUDGE_MODES: tuple[str, ...] = get_args(JudgeMode)
BatchFallback = Literal["batch", "sync"]
BATCH_FALLBACKS: tuple[str, ...] = get_args(BatchFallback)


class BatchSettings(BaseModel):
    """The ``batch:`` section of a judge config (all optional). Limits default to OpenAI's."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    endpoint: str = Field("/v1/chat/completions", description="the batch's endpoint and each line's url")
    completion_window: str = Field("24h", description="the only window OpenAI and Azure accept")
    max_requests: int = Field(50_000, ge=1, description="request lines per batch")
    max_bytes: int = Field(200_000_000, ge=1, description="bytes per input file")
    poll_interval_s: float = Field(30.0, gt=0, description="seconds between status checks")
    max_wait_s: float | None = Field(
        None,
        ge=0,
        description="stop waiting after this long; the batches keep running and the next run collects them",
    )
    max_rounds: int = Field(3, ge=1, description="submissions of one item per run, follow-ups included")
    fallback: BatchFallback = Field(
        "batch", description="where error lines and unparseable answers are asked again"
    )
    max_in_flight: int | None = Field(
        None, ge=1, description="batches open at once (an enqueued-token limit)"
    )
    api_timeout_s: float = Field(600.0, gt=0, description="per files/batches API call (uploads are large)")


class RateLimitSettings(BaseModel):
    """The ``rate_limit:`` section of a judge config (all optional; no limit stated: no pacing)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0)
    burst_s: float = Field(1.0, gt=0, description="seconds of the rate that may start at once")
    completion_tokens: int = Field(
        256, ge=0, description="expected reply tokens per call until the endpoint has reported some"
    )

    @property
    def limits_anything(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None
