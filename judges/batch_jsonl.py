"""Batch API files: request lines, splitting at the per-batch limits, and reading output and error files.

A request line is ``{"custom_id", "method": "POST", "url", "body"}``: the same format OpenAI's Batch API,
Azure OpenAI's batch deployments and vLLM's offline batch runner (``vllm run-batch``) read. Here the
``custom_id`` is the judge cache key and the body is exactly what the synchronous client posts.

A result line (output or error file) is ``{"id", "custom_id", "response": {"status_code", "request_id",
"body"}, "error"}``. :func:`read_results` turns each into a :class:`LineResult` classified with the
synchronous client's own rules (``client.classify_status`` for an HTTP status, ``_read_completion`` for a
200 body), so a batch line fails with the same error kinds as the same reply over HTTP would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from iopo_eval.judges.client import CallError, _read_completion, classify_status
from iopo_eval.judges.types import ErrorKind, Usage

log = logging.getLogger(__name__)

# Error codes with which the Batch API reports a request it never ran. Such a request has no answer and
# costs nothing: it is submitted again, not counted as a judge failure of the item.
UNANSWERED_CODES: dict[str, ErrorKind] = {
    "batch_expired": "batch_expired",
    "batch_cancelled": "batch_cancelled",
}


class BatchFileError(ValueError):
    """A request cannot be put in any batch (one line over the per-batch byte limit)."""


def request_line(custom_id: str, body: dict[str, Any], url: str) -> bytes:
    """One JSONL request line, newline included (UTF-8, no ASCII escaping: Chinese prompts stay compact)."""
    row = {"custom_id": custom_id, "method": "POST", "url": url, "body": body}
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def split_lines(
    lines: Sequence[tuple[str, bytes]], *, max_requests: int, max_bytes: int
) -> list[list[tuple[str, bytes]]]:
    """Consecutive groups of ``(key, line)`` with at most ``max_requests`` lines and ``max_bytes`` bytes
    each, in order. A single line longer than ``max_bytes`` cannot be sent: ``BatchFileError``."""
    if max_requests < 1 or max_bytes < 1:
        raise ValueError("max_requests and max_bytes must be positive")
    chunks: list[list[tuple[str, bytes]]] = []
    current: list[tuple[str, bytes]] = []
    size = 0
    for key, line in lines:
        if len(line) > max_bytes:
            raise BatchFileError(
                f"the request for {key} is {len(line)} bytes, over the per-batch limit of {max_bytes}"
            )
        if current and (len(current) >= max_requests or size + len(line) > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append((key, line))
        size += len(line)
    if current:
        chunks.append(current)
    return chunks


@dataclass(frozen=True)
class LineResult:
    """What one result line says about its request."""

    custom_id: str
    text: str | None = None  # the assistant's text, when the line holds a chat completion
    usage: Usage | None = None  # as reported by the line; None when it reports none
    error_kind: ErrorKind | None = None  # set when the request failed (or was never run)
    error: str | None = None
    retryable: bool = False  # as the synchronous client would decide for the same error
    unanswered: bool = False  # the batch ended before running this request (expired, cancelled)


def classify(row: dict[str, Any]) -> LineResult:
    """One parsed result line as a :class:`LineResult` (``row["custom_id"]`` must be a string)."""
    custom_id = row["custom_id"]
    response = row.get("response")
    error = row.get("error")
    if isinstance(error, dict) and not isinstance(response, dict):
        code = str(error.get("code") or "unknown")
        message = str(error.get("message") or "")
        if code in UNANSWERED_CODES:
            return LineResult(custom_id, error_kind=UNANSWERED_CODES[code], error=message, unanswered=True)
        return LineResult(
            custom_id, error_kind="server_error", error=f"batch error {code}: {message}"[:400], retryable=True
        )
    if not isinstance(response, dict):
        return LineResult(
            custom_id, error_kind="server_error", error="the result line has no response", retryable=True
        )
    status = response.get("status_code")
    body = response.get("body")
    if not isinstance(status, int):
        return LineResult(
            custom_id, error_kind="server_error", error="the result line has no status code", retryable=True
        )
    if status >= 400:
        err = classify_status(status, None, json.dumps(body, ensure_ascii=False).encode("utf-8"))
        return LineResult(custom_id, error_kind=err.error_kind, error=str(err), retryable=err.retryable)
    try:
        text, usage = _read_completion(body)
    except CallError as err:
        return LineResult(custom_id, error_kind=err.error_kind, error=str(err), retryable=err.retryable)
    return LineResult(custom_id, text=text, usage=usage)


def read_results(data: bytes, where: str) -> list[LineResult]:
    """Every readable line of an output or error file. A line that is not JSON or has no ``custom_id``
    cannot be matched to its request: it is logged and skipped, and its request counts as unanswered."""
    results: list[LineResult] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            log.warning(
                "%s line %d: not JSON (%d bytes); its request counts as unanswered", where, number, len(raw)
            )
            continue
        if not isinstance(row, dict) or not isinstance(row.get("custom_id"), str):
            log.warning("%s line %d: no custom_id; skipped", where, number)
            continue
        results.append(classify(row))
    return results


def first_by_id(results: Iterable[LineResult]) -> dict[str, LineResult]:
    """Results by custom_id; where a file repeats one, an answer beats an error and the first one wins."""
    found: dict[str, LineResult] = {}
    for result in results:
        held = found.get(result.custom_id)
        if held is None or (held.text is None and result.text is not None):
            found[result.custom_id] = result
    return found
