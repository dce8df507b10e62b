"""``--dry-run`` for both judge modes: what the cache misses would cost asked one by one and in batches.

Tokens are counted as the engine's dry run counts them (``estimate.prompt_tokens`` for the rendered
prompt, ``estimate.completion_tokens`` for the expected reply, ``max_tokens`` per reply for the upper
bound); the batch figure prices the same tokens at the batch price, and says how many batch files the
lines would fill at the per-batch limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iopo_eval.judges import estimate
from iopo_eval.judges.batch import BatchItem, BatchSettings, batch_price
from iopo_eval.judges.batch_jsonl import request_line, split_lines
from iopo_eval.judges.client import JudgeClient
from iopo_eval.judges.config import JudgeConfig, Price
from iopo_eval.judges.parse import ParserSpec


@dataclass(frozen=True)
class ModeEstimate:
    items: int
    prompt_tokens: int
    completion_tokens: int  # expected reply tokens
    sync_usd: float
    sync_usd_upper_bound: float  # every reply at max_tokens
    batch_usd: float
    batch_usd_upper_bound: float
    batches: int  # input files the batch mode would submit
    batch_bytes: int  # their total size
    method: str  # how prompt tokens were counted


def estimate_modes(
    items: Sequence[BatchItem],
    config: JudgeConfig,
    parser: ParserSpec,
    settings: BatchSettings | None = None,
    price: Price | None = None,
) -> ModeEstimate:
    settings = settings or config.batch
    batch = price or batch_price(config)
    client = JudgeClient(config)
    prompt = sum(estimate.prompt_tokens(i.prompt, config.model) for i in items)
    completion = sum(estimate.completion_tokens(i.n_expected, config.max_tokens) for i in items)
    upper = config.max_tokens * len(items)
    lines = []
    for item in items:
        schema, strict = client.schemas(parser, item.n_expected)
        body = client.request_body(item.prompt, schema, parser.name, strict)
        lines.append((item.key, request_line(item.key, body, settings.endpoint)))
    chunks = (
        split_lines(lines, max_requests=settings.max_requests, max_bytes=settings.max_bytes) if lines else []
    )
    return ModeEstimate(
        items=len(items),
        prompt_tokens=prompt,
        completion_tokens=completion,
        sync_usd=config.price.cost(prompt, completion),
        sync_usd_upper_bound=config.price.cost(prompt, upper),
        batch_usd=batch.cost(prompt, completion),
        batch_usd_upper_bound=batch.cost(prompt, upper),
        batches=len(chunks),
        batch_bytes=sum(len(line) for _, line in lines),
        method=estimate.method(config.model),
    )
