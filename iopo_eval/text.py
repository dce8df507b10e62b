"""Text normalisation shared by the scorers."""

from __future__ import annotations

import re

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)


def strip_reasoning(text: str) -> str:
    """Remove reasoning blocks (``<think>…</think>``) that reasoning models emit before the answer.

    A closing tag without an opening one (chat templates that open the block in the prompt) drops
    everything up to it; an unclosed opening tag drops everything after it (the answer never came).
    """
    out = _THINK_BLOCK.sub("", text)
    lower = out.lower()
    if "</think>" in lower:
        out = out[lower.rindex("</think>") + len("</think>") :]
    match = _THINK_OPEN.search(out)
    if match:
        out = out[: match.start()]
    return out.strip()
