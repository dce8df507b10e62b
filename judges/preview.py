"""What a judge would be sent, without sending it: the exact chat messages of a request (``--save-prompts``).

The prompt is rendered by the same functions the engine renders it with (``render_upstream`` for an
upstream evaluator's own prompt, ``render`` for a template, with the config's truncation), and the
messages are taken from the body the client would post (``JudgeClient.request_body``), so what is saved
is byte for byte what goes over the wire. A request whose response is empty is never sent (the engine
fails it as ``empty_response`` without a call): it has no messages.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from iopo_eval.judges.client import JudgeClient
from iopo_eval.judges.config import JudgeConfig
from iopo_eval.judges.engine import is_empty_response, render_request
from iopo_eval.judges.types import JudgeRequest


def is_sent(request: JudgeRequest) -> bool:
    """False for a request the engine answers without a call: its judged response is empty."""
    return not is_empty_response(request)


def prompt_text(config: JudgeConfig, request: JudgeRequest) -> str:
    """The prompt text the engine renders for this request and judge."""
    return render_request(config, request).text


def request_messages(config: JudgeConfig, request: JudgeRequest) -> list[dict[str, str]] | None:
    """The chat messages the client would post for this request; None when nothing is sent."""
    if not is_sent(request):
        return None
    body = JudgeClient(config).request_body(prompt_text(config, request), None, "judgement")
    return list(body["messages"])


class PromptLog:
    """A JSONL file of the prompts of a run, one object per judge request, written as they are prepared:
    ``benchmark``, ``task``, ``item_id``, ``role`` (the benchmark's judge role), ``judge`` (the config's
    name), ``key`` (the request's key) and ``messages`` (null with ``not_sent`` when nothing is sent).
    The file is started afresh when the log is opened; lines are appended in item order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()
        self._started = False
        self.lines = 0

    def _open(self) -> IO[str]:
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a" if self._started else "w", encoding="utf-8")
            self._started = True
        return self._fh

    def write(
        self,
        *,
        benchmark: str,
        task: str,
        item_id: str,
        role: str,
        config: JudgeConfig,
        requests: Sequence[JudgeRequest],
    ) -> None:
        rows = []
        for request in requests:
            messages = request_messages(config, request)
            row: dict[str, Any] = {
                "benchmark": benchmark,
                "task": task,
                "item_id": item_id,
                "role": role,
                "judge": config.name,
                "key": request.key,
                "messages": messages,
            }
            if messages is None:
                row["not_sent"] = "empty_response"
            rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        with self._lock:
            fh = self._open()
            fh.writelines(rows)
            fh.flush()
            self.lines += len(rows)

    def close(self) -> None:
        with self._lock:
            self._open().close()  # an empty file still says that nothing was to be judged
            self._fh = None
