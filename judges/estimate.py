"""Token estimates for ``--dry-run`` and for the ``--budget`` reservation of calls in flight.

Prompt tokens: tiktoken's encoding for the judge model when its encoding file is available (it is
fetched once from the internet and cached; offline it fails fast and we fall back).
Fallback: ASCII characters / 3, plus one token per non-ASCII character. Plain "characters / 3" would
undercount Chinese, the language of TRACE, by about three times: GPT-4o's tokenizer spends about one
token per CJK character.

Completion tokens: a judge reply holds a short reason and a score per constraint, so the expected size is
``COMPLETION_BASE + COMPLETION_PER_CONSTRAINT * n`` tokens, capped at the config's ``max_tokens``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable

log = logging.getLogger(__name__)

MESSAGE_OVERHEAD = 8  # chat framing tokens around one user message
COMPLETION_BASE = 20
COMPLETION_PER_CONSTRAINT = 70


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip() not in ("", "0") for v in ("IOPO_EVAL_OFFLINE", "HF_HUB_OFFLINE")
    )


@functools.lru_cache(maxsize=8)
def _encoder(model: str) -> Callable[[str], int] | None:
    # tiktoken downloads its encoding on first use; on a closed network the name lookup alone can
    # stall for seconds, so machines marked offline use the heuristic unless tiktoken already has it.
    if _offline() and not os.environ.get("TIKTOKEN_CACHE_DIR"):
        return None
    import tiktoken

    try:
        try:
            encoding = tiktoken.encoding_for_model(model)
        except KeyError:
            encoding = tiktoken.get_encoding("o200k_base")
        encoding.encode("probe")
    except Exception as exc:  # offline: the encoding file cannot be fetched
        log.debug(
            "tiktoken unavailable for %s (%s); using the character heuristic", model, type(exc).__name__
        )
        return None
    return lambda text: len(encoding.encode(text, disallowed_special=()))


def heuristic_tokens(text: str) -> int:
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    return math.ceil((len(text) - non_ascii) / 3) + non_ascii


def method(model: str) -> str:
    return "tiktoken" if _encoder(model) is not None else "heuristic: ascii/3 + non-ascii"


def prompt_tokens(text: str, model: str) -> int:
    encode = _encoder(model)
    return (encode(text) if encode is not None else heuristic_tokens(text)) + MESSAGE_OVERHEAD


def completion_tokens(n_expected: int, max_tokens: int) -> int:
    return min(max_tokens, COMPLETION_BASE + COMPLETION_PER_CONSTRAINT * n_expected)
