"""Reply functions for the scripted server: from a chat-completions request JSON to the assistant's text."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

_COUNT_IN_PROMPT = re.compile(r"exactly (\d+) entries")
_CFBENCH_COUNT = re.compile(r"恰好包含 (\d+) 项")  # cfbench_judge_v1.txt: "exactly N entries"


def expected_count(request: dict[str, Any]) -> int:
    """How many per-constraint scores a judge request asks for: the schema's ``maxItems`` when the
    request carries it (json_object mode), else the count stated in the trace_judge prompt."""
    fmt = request.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
    items = (schema.get("properties") or {}).get("constraints") or {}
    if isinstance(items.get("maxItems"), int):
        return int(items["maxItems"])
    prompt = "".join(str(m.get("content", "")) for m in request.get("messages", []))
    match = _COUNT_IN_PROMPT.search(prompt)
    if match is None:
        raise ValueError("cannot tell how many constraint scores the request asks for")
    return int(match.group(1))


def trace_scores(score: float = 10, overall: float | None = None) -> Callable[[dict[str, Any]], str]:
    """A judge that gives every constraint ``score``, in the trace_scores JSON format."""

    def reply(request: dict[str, Any]) -> str:
        n = expected_count(request)
        entries = [{"index": i, "reason": f"constraint {i} checked", "score": score} for i in range(1, n + 1)]
        return json.dumps({"constraints": entries, "overall": score if overall is None else overall})

    return reply


def hashed_scores(request: dict[str, Any]) -> str:
    """A deterministic judge whose scores vary by item: each constraint's score comes from a hash of the
    prompt and the constraint's index (10 about 60% of the time, else a whole or half point below 10).
    Two runs over the same prompts get the same answers, whatever the order of the calls."""
    n = expected_count(request)
    prompt = "".join(str(m.get("content", "")) for m in request.get("messages", []))
    entries: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        digest = int(hashlib.sha256(f"{i}:{prompt}".encode("utf-8", "surrogatepass")).hexdigest(), 16)
        score = 10.0 if digest % 10 < 6 else (digest // 10 % 20) / 2
        entries.append({"index": i, "reason": f"constraint {i} checked", "score": score})
    overall = min(e["score"] for e in entries)
    return json.dumps({"constraints": entries, "overall": overall})


def cfbench_or_trace(request: dict[str, Any]) -> str:
    """A judge of both bundled templates: every checkpoint of a CFBench prompt (``cfbench_judge_v1.txt``)
    passes, every TRACE constraint gets :func:`hashed_scores`. For runs that judge several benchmarks."""
    prompt = "".join(str(m.get("content", "")) for m in request.get("messages", []))
    match = _CFBENCH_COUNT.search(prompt)
    if match is None:
        return hashed_scores(request)
    n = int(match.group(1))
    return json.dumps({"checkpoints": [{"index": i, "score": 1} for i in range(1, n + 1)]})


def echo(request: dict[str, Any]) -> str:
    return str(request["messages"][-1]["content"])


REPLIES: dict[str, Callable[[dict[str, Any]], str]] = {
    "trace_all_tens": trace_scores(10),
    "hashed_scores": hashed_scores,
    "cfbench_or_trace": cfbench_or_trace,
    "echo": echo,
}
