"""A real OpenAI-compatible chat-completions server on 127.0.0.1, for tests and benchmarks.

It speaks HTTP/1.1 with keep-alive on a thread per connection (stdlib ``ThreadingHTTPServer``), so it
handles hundreds of concurrent clients. What it answers is scripted:

- ``reply``: a function of the request JSON returning the assistant's text (or a fixed string);
- ``latency_s``: a fixed delay before every answer;
- ``script(*faults)``: faults for the next calls, one per call in arrival order (429 with Retry-After,
  500, 503, a long sleep, a malformed JSON body, a connection cut in the middle of the body ...);
- ``faults``: a function of the request JSON consulted for every call that has no scripted fault (for
  faults at a random rate, see ``iopo_eval.testing.faults.RandomFaults``);
- counters: ``calls``, ``bodies`` (the request JSON), ``arrivals`` (monotonic times), ``headers`` (names in lower case),
  ``max_in_flight`` (the most calls answered at once).

Use it as a context manager::

    with OpenAIServer(reply=lambda req: '{"ok": true}', latency_s=0.1) as server:
        client = AsyncOpenAI(base_url=server.base_url, api_key="unused")

``python -m iopo_eval.testing.openai_server --latency 0.1`` runs it as a process (it prints its port).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from iopo_eval.testing.loopback import LoopbackHTTPServer, LoopbackService, ReplyFn, UsageFn, chat_completion

FaultFn = Callable[[dict[str, Any]], "Fault | None"]


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or before) a normal answer for one call."""

    kind: str  # "status" | "sleep" | "malformed" | "not_json" | "cut" | "text" | "echo_auth"
    status: int = 200
    retry_after: str | None = None
    seconds: float = 0.0
    text: str = ""

    @classmethod
    def http_status(cls, status: int, retry_after: float | str | None = None) -> Fault:
        return cls("status", status=status, retry_after=None if retry_after is None else str(retry_after))

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = None) -> Fault:
        return cls.http_status(429, retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        return cls.http_status(status)

    @classmethod
    def unavailable(cls, retry_after: float | str | None = None) -> Fault:
        return cls.http_status(503, retry_after)

    @classmethod
    def sleep(cls, seconds: float) -> Fault:
        """Answer normally, but only after ``seconds`` (to drive client timeouts)."""
        return cls("sleep", seconds=seconds)

    @classmethod
    def malformed_json(cls) -> Fault:
        return cls("malformed")

    @classmethod
    def not_json(cls) -> Fault:
        """A 200 whose body is not JSON at all (a proxy's HTML error page)."""
        return cls("not_json")

    @classmethod
    def echo_auth(cls, status: int = 401) -> Fault:
        """An error whose message repeats the Authorization header it received (as some proxies do)."""
        return cls("echo_auth", status=status)

    @classmethod
    def cut_body(cls) -> Fault:
        """Send headers and half of the body, then close the connection."""
        return cls("cut")

    @classmethod
    def reply_text(cls, text: str) -> Fault:
        """Answer this call with ``text`` instead of the reply function's text."""
        return cls("text", text=text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    # TCP_NODELAY: else the body, written after the headers, waits ~40 ms for a delayed ACK.
    disable_nagle_algorithm = True
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    server: LoopbackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and benchmarks read counters
        return

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": {"message": message, "type": "scripted_error", "code": status}}
        self._send(status, json.dumps(body).encode(), headers)

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(
                200, json.dumps({"object": "list", "data": [{"id": "scripted", "object": "model"}]}).encode()
            )
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        try:
            request = json.loads(raw or b"null")
            if not isinstance(request, dict):
                raise ValueError("the body is not a JSON object")
        except ValueError as exc:
            self._error(400, f"bad request body: {exc}")
            return
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = owner._arrive(request, headers)
        try:
            self._answer(request, fault, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (a timeout); nothing left to do
        finally:
            owner._leave()

    def _answer(self, request: dict[str, Any], fault: Fault | None, headers: dict[str, str]) -> None:
        owner = self.server.owner
        if owner.latency_s > 0:
            time.sleep(owner.latency_s)
        if fault is not None and fault.kind == "echo_auth":
            self._error(fault.status, f"Incorrect API key provided: {headers.get('authorization', '')}")
            return
        if fault is not None and fault.kind == "not_json":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            self._error(fault.status, f"scripted HTTP {fault.status}", headers)
            return
        if fault is not None and fault.kind == "sleep":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "malformed":
            self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
            return
        text = fault.text if fault is not None and fault.kind == "text" else owner.reply_text(request)
        completion = chat_completion(f"chatcmpl-{owner.calls}", request, text, owner.usage(request, text))
        body = json.dumps(completion).encode()
        if fault is not None and fault.kind == "cut":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self._send(200, body)


class OpenAIServer(LoopbackService):
    thread_name = "openai-server"

    def __init__(
        self,
        reply: ReplyFn | str = "ok",
        *,
        latency_s: float = 0.0,
        usage: UsageFn | tuple[int, int] | None = None,
        faults: FaultFn | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(_Handler, reply, usage, host, port)
        self.latency_s = latency_s
        self.faults = faults
        self._lock = threading.Lock()
        self._faults: deque[Fault | None] = deque()
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0  # the most calls being answered at once

    # --- scripting -----------------------------------------------------------------------------------
    def script(self, *faults: Fault | None) -> None:
        """Faults for the next calls in arrival order (None: answer that call normally)."""
        with self._lock:
            self._faults.extend(faults)

    def reset_counters(self) -> None:
        with self._lock:
            self.calls = 0
            self.bodies.clear()
            self.arrivals.clear()
            self.headers.clear()
            self.max_in_flight = self.in_flight

    def _arrive(self, request: dict[str, Any], headers: dict[str, str]) -> Fault | None:
        with self._lock:
            self.calls += 1
            self.bodies.append(request)
            self.arrivals.append(time.monotonic())
            self.headers.append(headers)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self._faults:
                return self._faults.popleft()
        return self.faults(request) if self.faults is not None else None

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def main(argv: list[str] | None = None) -> int:
    from iopo_eval.testing.replies import REPLIES

    parser = argparse.ArgumentParser(description="Run the scripted OpenAI-compatible server.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    parser.add_argument("--reply", choices=sorted(REPLIES), default="trace_all_tens")
    args = parser.parse_args(argv)
    with OpenAIServer(REPLIES[args.reply], latency_s=args.latency, port=args.port) as server:
        print(server.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()  # run until stdin closes (the parent process exits or closes the pipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
