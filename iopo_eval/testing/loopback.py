"""What the scripted servers on 127.0.0.1 share: the threaded HTTP server, the lifecycle (start, stop,
context manager, ``base_url``) and how a scripted reply and its token usage are chosen.

``OpenAIServer`` (chat completions) and ``BatchServer`` (files and batches) build on it, so the same reply
and usage functions drive both, and a test reads the same ``base_url`` from either.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

ReplyFn = Callable[[dict[str, Any]], str]  # the request body -> the reply text
UsageFn = Callable[[dict[str, Any], str], tuple[int, int]]  # (body, reply) -> prompt, completion tokens


def default_usage(request: dict[str, Any], text: str) -> tuple[int, int]:
    """Deterministic token counts: a token per 4 characters, rounded up."""
    chars = sum(len(str(m.get("content", ""))) for m in request.get("messages", []) if isinstance(m, dict))
    return math.ceil(chars / 4), math.ceil(len(text) / 4)


def chat_completion(
    completion_id: str, request: dict[str, Any], text: str, usage: tuple[int, int]
) -> dict[str, Any]:
    """A chat.completion object as the OpenAI API returns it: one assistant choice and its usage."""
    prompt_tokens, completion_tokens = usage
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model", "scripted")),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck connection never blocks shutdown
    block_on_close = False  # nor does an idle keep-alive connection (server_close would join it)
    request_queue_size = 1024  # the listen backlog: hundreds of clients may connect at once
    allow_reuse_address = True
    owner: Any  # the service answering its requests

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that dies or times out mid-request (the crash and fault tests do it on purpose) is
        # not a server error worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class LoopbackService:
    """A scripted service behind a :class:`LoopbackHTTPServer` on its own thread."""

    thread_name = "loopback-server"

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        reply: ReplyFn | str,
        usage: UsageFn | tuple[int, int] | None,
        host: str,
        port: int,
    ) -> None:
        self.reply = reply
        self._usage = usage
        self._httpd = LoopbackHTTPServer((host, port), handler)
        self._httpd.owner = self
        self._thread: threading.Thread | None = None

    def reply_text(self, request: dict[str, Any]) -> str:
        return self.reply(request) if callable(self.reply) else str(self.reply)

    def usage(self, request: dict[str, Any], text: str) -> tuple[int, int]:
        if self._usage is None:
            return default_usage(request, text)
        if callable(self._usage):
            return self._usage(request, text)
        return self._usage

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},  # stop() returns within 50 ms
                name=self.thread_name,
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()
