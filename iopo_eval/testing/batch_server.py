"""A real OpenAI files + batches API on 127.0.0.1, for tests and benchmarks of the judge's batch mode.

It implements what the Batch API's clients use, over HTTP/1.1 (stdlib ``ThreadingHTTPServer``):

- ``POST /v1/files`` (multipart: ``file``, ``purpose``), ``GET /v1/files``, ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``, ``DELETE /v1/files/{id}``;
- ``POST /v1/batches`` (``input_file_id``, ``endpoint``, ``completion_window`` "24h", ``metadata``),
  ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/batches`` (newest first,
  ``limit`` and ``after``);
- ``POST /v1/chat/completions``, answered at once like one batch line (status and text faults apply), as
  OpenAI serves both at one base URL: a batch run's synchronous fallback calls it.

Each batch runs through the real API's states on a thread of its own: ``validating`` (the input file is
checked line by line as the API does: JSON object, ``custom_id`` a unique string, ``method`` POST, ``url``
the batch's endpoint, ``body`` an object naming one model for the whole file, at most ``max_requests``
lines and ``max_file_bytes`` bytes; any error fails the batch with ``errors.data`` naming the line), then
``in_progress`` (lines answered in file order, ``request_counts`` growing), ``finalizing``, ``completed``.
``cancel`` moves an unfinished batch to ``cancelling`` and then ``cancelled``; a batch whose completion
window passes (``BatchTiming.completion_window_s``, or ``expire(batch_id)`` at once) ends ``expired``.
A cancelled or expired batch's output file holds the lines it answered; an expired batch's error file
also holds one ``batch_expired`` line per request it never ran, as OpenAI documents. A cancelled batch
writes no line for those (the documentation promises only the partial output file), so clients must
treat a missing line as "not answered".

Every request line is answered like ``OpenAIServer`` answers a call, with the same ``reply``, ``usage``
and ``faults`` functions (and ``script(...)``), so scripted judges work in both modes. A fault becomes a
line of the batch: ``Fault.http_status(s)`` an error-file line with that status and an OpenAI error body;
``Fault.echo_auth()`` a 401 line whose message quotes the Authorization header the batch was created with;
``Fault.malformed_json()`` a 200 line whose body is not a chat completion; ``Fault.cut_body()`` and
``Fault.not_json()`` an output line cut in the middle (unreadable JSON); ``Fault.sleep(s)`` delays that
line; ``Fault.reply_text(t)`` answers ``t``.

``hold(after=N)`` stops every batch after its N-th line until ``release()`` (tests use it to act while a
batch is ``in_progress``); ``stall("batches.create")`` makes the server do the work of a route but
hold back its reply until ``release()``, so a client can be killed between the server's action and the
client hearing of it. Counters: ``routes`` (calls by route name), ``submitted`` (``custom_id`` ->
number of created batches whose input held it), ``lines_answered``.

    python -m iopo_eval.testing.batch_server --reply hashed_scores --per-request 0.001
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from iopo_eval.testing.loopback import LoopbackHTTPServer, LoopbackService, ReplyFn, UsageFn, chat_completion
from iopo_eval.testing.openai_server import Fault, FaultFn

ENDPOINTS = ("/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/completions")
TERMINAL = ("completed", "failed", "expired", "cancelled")
FILE_PURPOSES = ("batch", "batch_output", "assistants", "fine-tune", "vision", "user_data")
MAX_LISTED_ERRORS = 100  # a failed batch lists at most this many line errors


@dataclass
class BatchTiming:
    """How long each phase takes, in seconds (defaults: as fast as possible, a 24 h window)."""

    validating_s: float = 0.0
    per_request_s: float = 0.0  # one request line, answered one after another within a batch
    finalizing_s: float = 0.0
    cancelling_s: float = 0.0
    completion_window_s: float = 24 * 3600.0


@dataclass
class _File:
    id: str
    purpose: str
    filename: str
    data: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": self.created_at + 30 * 86400 if self.purpose.startswith("batch") else None,
            "status_details": None,
        }


@dataclass
class _Batch:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    expires_at: int
    deadline: float  # monotonic time at which the window closes
    authorization: str  # the header the batch was created with (for echo_auth faults only)
    status: str = "validating"
    stamps: dict[str, int] = field(default_factory=dict)  # in_progress_at, completed_at, ...
    model: str | None = None
    total: int = 0
    completed: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    cancel_requested: bool = False
    expire_requested: bool = False
    timeline: dict[str, float] = field(default_factory=dict)  # status -> monotonic time it was entered

    def to_json(self) -> dict[str, Any]:
        stamps = {
            name: self.stamps.get(name)
            for name in (
                "in_progress_at",
                "finalizing_at",
                "completed_at",
                "failed_at",
                "expired_at",
                "cancelling_at",
                "cancelled_at",
            )
        }
        counts = {"total": self.total, "completed": self.completed, "failed": self.failed}
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            **stamps,
            "request_counts": counts,
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            },
            "metadata": self.metadata,
        }


class ApiError(Exception):
    """An HTTP error reply in OpenAI's shape."""

    def __init__(self, status: int, message: str, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.param = status, code, param


class _Stop(Exception):
    """The server is shutting down: batch threads leave."""


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/files"), "files.create"),
    ("GET", re.compile(r"/files"), "files.list"),
    ("GET", re.compile(r"/files/(?P<id>[^/]+)"), "files.retrieve"),
    ("GET", re.compile(r"/files/(?P<id>[^/]+)/content"), "files.content"),
    ("DELETE", re.compile(r"/files/(?P<id>[^/]+)"), "files.delete"),
    ("POST", re.compile(r"/batches"), "batches.create"),
    ("GET", re.compile(r"/batches"), "batches.list"),
    ("GET", re.compile(r"/batches/(?P<id>[^/]+)"), "batches.retrieve"),
    ("POST", re.compile(r"/batches/(?P<id>[^/]+)/cancel"), "batches.cancel"),
    ("POST", re.compile(r"/chat/completions"), "chat.completions"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server: LoopbackHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        url = urlsplit(self.path)
        path = url.path.rstrip("/")
        path = path[3:] if path.startswith("/v1/") else path
        owner = self.server.owner
        found = _match_route(method, path)
        if found is None:
            self._send(404, _error_body(f"no route {method} {self.path}", "not_found"))
            return
        name, args = found
        try:
            status, payload, ctype = owner._route(name, args, raw, self.headers, parse_qs(url.query))
        except ApiError as err:
            owner._count(name)
            self._send(err.status, _error_body(str(err), err.code, err.param))
            return
        owner._count(name)
        owner._wait_stall(name)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(status, payload, ctype)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


def _match_route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    for verb, pattern, name in _ROUTES:
        match = pattern.fullmatch(path)
        if verb == method and match:
            return name, match.groupdict()
    return None


def _error_body(message: str, code: str | None = None, param: str | None = None) -> bytes:
    return json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    ).encode()


class BatchServer(LoopbackService):
    """The files and batches API on 127.0.0.1; see the module docstring."""

    thread_name = "batch-server"

    def __init__(
        self,
        reply: ReplyFn | str = "ok",
        *,
        usage: UsageFn | tuple[int, int] | None = None,
        faults: FaultFn | None = None,
        timing: BatchTiming | None = None,
        max_requests: int = 50_000,
        max_file_bytes: int = 200_000_000,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(_Handler, reply, usage, host, port)
        self.faults = faults
        self.timing = timing or BatchTiming()
        self.max_requests = max_requests
        self.max_file_bytes = max_file_bytes
        self._cond = threading.Condition()
        self._files: dict[str, _File] = {}
        self._batches: dict[str, _Batch] = {}
        self._order: list[str] = []  # batch ids, oldest first
        self._scripted: list[Fault | None] = []
        self._hold_after: int | None = None
        self._stalled: set[str] = set()
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self.routes: Counter[str] = Counter()
        self.submitted: Counter[str] = Counter()
        self.lines_answered = 0

    # --- scripting and control ----------------------------------------------------------------------
    def script(self, *faults: Fault | None) -> None:
        """Faults for the next request lines, in the order batches answer them (None: a normal answer)."""
        with self._cond:
            self._scripted.extend(faults)

    def hold(self, after: int = 0) -> None:
        """Stop every batch in progress after its ``after``-th line until ``release()``."""
        with self._cond:
            self._hold_after = after

    def stall(self, *routes: str) -> None:
        """Do the work of these routes (``batches.create``, ``files.create`` ...) but hold back the reply
        until ``release()``."""
        with self._cond:
            self._stalled.update(routes)

    def release(self) -> None:
        with self._cond:
            self._hold_after = None
            self._stalled.clear()
            self._cond.notify_all()

    def expire(self, batch_id: str) -> None:
        """Close the batch's completion window now (it ends ``expired`` unless already finished)."""
        with self._cond:
            self._batches[batch_id].expire_requested = True
            self._cond.notify_all()

    def batch(self, batch_id: str) -> dict[str, Any]:
        with self._cond:
            return self._batches[batch_id].to_json()

    def timeline(self, batch_id: str) -> dict[str, float]:
        """When the batch entered each status (``time.monotonic()``), for benchmarks."""
        with self._cond:
            return dict(self._batches[batch_id].timeline)

    def batch_ids(self) -> list[str]:
        with self._cond:
            return list(self._order)

    def file_bytes(self, file_id: str) -> bytes:
        with self._cond:
            return self._files[file_id].data

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        """Block until ``predicate()`` (checked on every state change) or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the batch server did not reach the expected state")
                self._cond.wait(min(left, 0.05))

    @property
    def resubmitted(self) -> int:
        """Request lines submitted more than once (in more than one created batch)."""
        with self._cond:
            return sum(n - 1 for n in self.submitted.values() if n > 1)

    # --- answering one line -------------------------------------------------------------------------
    def _next_fault(self, body: dict[str, Any]) -> Fault | None:
        with self._cond:
            if self._scripted:
                return self._scripted.pop(0)
        return self.faults(body) if self.faults is not None else None

    # --- HTTP routes --------------------------------------------------------------------------------
    def _count(self, name: str) -> None:
        with self._cond:
            self.routes[name] += 1
            self._cond.notify_all()

    def _wait_stall(self, name: str) -> None:
        with self._cond:
            while name in self._stalled and not self._stopping:
                self._cond.wait(0.05)

    def _route(
        self, name: str, args: dict[str, str], raw: bytes, headers: Any, query: dict[str, list[str]]
    ) -> tuple[int, bytes, str]:
        if name == "files.create":
            return 200, _dump(self._upload(raw, headers.get("Content-Type", ""))), "application/json"
        if name == "files.list":
            with self._cond:
                data = [f.to_json() for f in self._files.values()]
            return 200, _dump({"object": "list", "data": data, "has_more": False}), "application/json"
        if name in ("files.retrieve", "files.content", "files.delete"):
            with self._cond:
                file = self._files.get(args["id"])
                if file is None:
                    raise ApiError(404, f"No such File object: {args['id']}", "not_found", "id")
                if name == "files.delete":
                    del self._files[file.id]
                    return 200, _dump({"id": file.id, "object": "file", "deleted": True}), "application/json"
            if name == "files.content":
                return 200, file.data, "application/octet-stream"
            return 200, _dump(file.to_json()), "application/json"
        if name == "batches.create":
            return 200, _dump(self._create(raw, headers.get("Authorization", ""))), "application/json"
        if name == "batches.list":
            return 200, _dump(self._list(query)), "application/json"
        if name == "chat.completions":
            return self._chat(raw)
        with self._cond:
            batch = self._batches.get(args["id"])
            if batch is None:
                raise ApiError(404, f"No such Batch object: {args['id']}", "not_found", "batch_id")
            if name == "batches.cancel":
                if batch.status in TERMINAL or batch.status == "cancelling":
                    raise ApiError(
                        409, f"Cannot cancel a batch with status '{batch.status}'.", "invalid_state"
                    )
                batch.cancel_requested = True
                batch.status = "cancelling"
                batch.stamps["cancelling_at"] = int(time.time())
                self._cond.notify_all()
            return 200, _dump(batch.to_json()), "application/json"

    def _chat(self, raw: bytes) -> tuple[int, bytes, str]:
        """A synchronous call, answered as a batch line would be (status and text faults apply)."""
        try:
            request = json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"bad request body: {exc}", "invalid_json") from exc
        if not isinstance(request, dict) or not isinstance(request.get("model"), str):
            raise ApiError(400, "the body must be a JSON object naming a model", "invalid_json")
        fault = self._next_fault(request)
        if fault is not None and fault.kind == "status":
            raise ApiError(fault.status, f"scripted HTTP {fault.status}")
        text = fault.text if fault is not None and fault.kind == "text" else self.reply_text(request)
        return 200, _dump(self._completion(request, text)), "application/json"

    def _completion(self, request: dict[str, Any], text: str) -> dict[str, Any]:
        return chat_completion(f"chatcmpl-{uuid.uuid4().hex[:12]}", request, text, self.usage(request, text))

    def _upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, "uploads must be multipart/form-data", "invalid_request")
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw
        )
        parts: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            if isinstance(name, str) and isinstance(payload, bytes):
                parts[name] = (part.get_filename(), payload)
        if "purpose" not in parts:
            raise ApiError(
                400, "Missing required parameter: 'purpose'.", "missing_required_parameter", "purpose"
            )
        if "file" not in parts:
            raise ApiError(400, "Missing required parameter: 'file'.", "missing_required_parameter", "file")
        purpose = parts["purpose"][1].decode("utf-8", "replace")
        filename, data = parts["file"]
        if purpose not in FILE_PURPOSES or purpose == "batch_output":
            raise ApiError(400, f"Invalid value for 'purpose': {purpose!r}.", "invalid_value", "purpose")
        if purpose == "batch":
            if not (filename or "").endswith(".jsonl"):
                raise ApiError(400, "Batch input files must be .jsonl files.", "invalid_file_format", "file")
            if len(data) > self.max_file_bytes:
                raise ApiError(
                    400,
                    f"File is too large ({len(data)} bytes); the limit for batch files is "
                    f"{self.max_file_bytes} bytes.",
                    "file_too_large",
                    "file",
                )
        return self._store_file(purpose, filename or "upload", data).to_json()

    def _store_file(self, purpose: str, filename: str, data: bytes) -> _File:
        file = _File(f"file-{uuid.uuid4().hex[:24]}", purpose, filename, data, int(time.time()))
        with self._cond:
            self._files[file.id] = file
        return file

    def _create(self, raw: bytes, authorization: str) -> dict[str, Any]:
        try:
            request = json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, f"bad request body: {exc}", "invalid_json") from exc
        if not isinstance(request, dict):
            raise ApiError(400, "the body must be a JSON object", "invalid_json")
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not isinstance(request.get(key), str):
                raise ApiError(
                    400, f"Missing required parameter: '{key}'.", "missing_required_parameter", key
                )
        if request["endpoint"] not in ENDPOINTS:
            raise ApiError(
                400, f"Invalid value for 'endpoint': {request['endpoint']!r}.", "invalid_value", "endpoint"
            )
        if request["completion_window"] != "24h":
            raise ApiError(
                400,
                "Invalid value for 'completion_window': only '24h' is supported.",
                "invalid_value",
                "completion_window",
            )
        metadata = request.get("metadata")
        if metadata is not None and (
            not isinstance(metadata, dict)
            or len(metadata) > 16
            or any(
                not isinstance(k, str) or len(k) > 64 or not isinstance(v, str) or len(v) > 512
                for k, v in metadata.items()
            )
        ):
            raise ApiError(
                400,
                "metadata: at most 16 string pairs, keys <= 64 and values <= 512 characters",
                "invalid_value",
                "metadata",
            )
        with self._cond:
            file = self._files.get(request["input_file_id"])
            if file is None:
                raise ApiError(
                    404, f"No such File object: {request['input_file_id']}", "not_found", "input_file_id"
                )
            if file.purpose != "batch":
                raise ApiError(
                    400,
                    "The input file must be uploaded with purpose 'batch'.",
                    "invalid_value",
                    "input_file_id",
                )
            now = time.time()
            batch = _Batch(
                id=f"batch_{uuid.uuid4().hex[:24]}",
                input_file_id=file.id,
                endpoint=request["endpoint"],
                completion_window="24h",
                metadata=metadata,
                created_at=int(now),
                expires_at=int(now + self.timing.completion_window_s),
                deadline=time.monotonic() + self.timing.completion_window_s,
                authorization=authorization,
                timeline={"validating": time.monotonic()},
            )
            self._batches[batch.id] = batch
            self._order.append(batch.id)
            for line in file.data.splitlines():
                with contextlib.suppress(ValueError, AttributeError, TypeError):
                    custom_id = json.loads(line).get("custom_id")
                    if isinstance(custom_id, str):
                        self.submitted[custom_id] += 1
            thread = threading.Thread(target=self._run, args=(batch, file.data), name=batch.id, daemon=True)
            self._threads.append(thread)
            thread.start()
            return batch.to_json()

    def _list(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = int((query.get("limit") or ["20"])[0])
        after = query["after"][0] if query.get("after") else None
        with self._cond:
            newest = list(reversed(self._order))
            if after is not None:
                newest = newest[newest.index(after) + 1 :] if after in newest else []
            page = newest[: max(1, min(limit, 100))]
            data = [self._batches[i].to_json() for i in page]
            has_more = len(newest) > len(page)
        return {
            "object": "list",
            "data": data,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
            "has_more": has_more,
        }

    # --- the batch state machine ----------------------------------------------------------------------
    def _pause(self, batch: _Batch, seconds: float) -> None:
        """Wait ``seconds``, waking early on cancel, expiry or shutdown."""
        end = time.monotonic() + seconds
        with self._cond:
            while not self._interrupted(batch):
                now = time.monotonic()
                if now >= end:
                    return
                self._cond.wait(max(0.0, min(end, batch.deadline) - now))  # wake when the window closes

    def _interrupted(self, batch: _Batch) -> bool:
        if self._stopping:
            raise _Stop
        return batch.cancel_requested or batch.expire_requested or time.monotonic() >= batch.deadline

    def _set(self, batch: _Batch, status: str) -> None:
        with self._cond:
            batch.status = status
            batch.stamps[f"{status}_at"] = int(time.time())
            batch.timeline[status] = time.monotonic()
            self._cond.notify_all()

    def _run(self, batch: _Batch, data: bytes) -> None:
        with contextlib.suppress(_Stop):
            self._pause(batch, self.timing.validating_s)
            lines, errors = self._validate(data, batch.endpoint)
            with self._cond:
                interrupted = self._interrupted(batch)
            if errors and not interrupted:
                with self._cond:
                    batch.errors = errors[:MAX_LISTED_ERRORS]
                self._set(batch, "failed")
                return
            with self._cond:
                batch.total = len(lines)
                batch.model = lines[0]["body"]["model"] if lines else None
            results: tuple[list[bytes], list[bytes], set[str]] = ([], [], set())
            if not interrupted:
                self._set(batch, "in_progress")
                results = self._answer_lines(batch, lines)
            self._finish(batch, lines, *results)

    def _validate(self, data: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []

        def error(line: int | None, code: str, message: str, param: str | None = None) -> None:
            errors.append({"code": code, "line": line, "message": message, "param": param})

        if len(data) > self.max_file_bytes:
            error(
                None,
                "file_too_large",
                f"the input file has {len(data)} bytes; the limit is {self.max_file_bytes}",
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            error(None, "invalid_file_encoding", f"the input file is not UTF-8: {exc}")
            return [], errors
        rows = text.split("\n")
        if rows and rows[-1] == "":
            rows.pop()  # the final newline
        if not rows:
            error(None, "empty_file", "the input file has no requests")
        if len(rows) > self.max_requests:
            error(
                None, "too_many_requests", f"{len(rows)} requests; a batch holds at most {self.max_requests}"
            )
        lines: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        for number, row in enumerate(rows, start=1):
            try:
                line = json.loads(row)
            except ValueError:
                error(number, "invalid_json_line", "This line is not parseable as valid JSON.")
                continue
            if not isinstance(line, dict):
                error(number, "invalid_json_line", "Each line must be a JSON object.")
                continue
            custom_id = line.get("custom_id")
            if not isinstance(custom_id, str) or not custom_id:
                error(
                    number, "missing_required_parameter", "Each line needs a string 'custom_id'.", "custom_id"
                )
                continue
            if custom_id in seen:
                error(
                    number,
                    "duplicate_custom_id",
                    f"The custom_id {custom_id!r} is not unique in this file.",
                    "custom_id",
                )
                continue
            seen.add(custom_id)
            if line.get("method") != "POST":
                error(number, "invalid_method", "'method' must be 'POST'.", "method")
                continue
            if line.get("url") != endpoint:
                error(number, "invalid_url", f"'url' must be the batch's endpoint {endpoint!r}.", "url")
                continue
            body = line.get("body")
            if not isinstance(body, dict) or not isinstance(body.get("model"), str):
                error(
                    number,
                    "missing_required_parameter",
                    "'body' must be an object naming a 'model'.",
                    "body.model",
                )
                continue
            models.add(body["model"])
            lines.append(line)
        if len(models) > 1:
            error(None, "mismatched_model", f"a batch must use one model; this file names {sorted(models)}")
        return lines, errors

    def _answer_lines(
        self, batch: _Batch, lines: list[dict[str, Any]]
    ) -> tuple[list[bytes], list[bytes], set[str]]:
        """Answer lines in order until done, cancelled or expired: output lines, error lines, and the
        custom_ids answered."""
        outputs: list[bytes] = []
        errors: list[bytes] = []
        answered: set[str] = set()
        for index, line in enumerate(lines):
            with self._cond:
                while (
                    self._hold_after is not None
                    and index >= self._hold_after
                    and not self._interrupted(batch)
                ):
                    self._cond.wait(0.05)
                if self._interrupted(batch):
                    break
            if self.timing.per_request_s > 0:
                self._pause(batch, self.timing.per_request_s)
                with self._cond:
                    if self._interrupted(batch):
                        break
            fault = self._next_fault(line["body"])
            if fault is not None and fault.kind == "sleep":
                self._pause(batch, fault.seconds)
            out, ok, tokens = self._answer(batch, line, fault)
            with self._cond:
                (outputs if ok else errors).append(out)
                answered.add(line["custom_id"])
                if ok:
                    batch.completed += 1
                    batch.input_tokens += tokens[0]
                    batch.output_tokens += tokens[1]
                else:
                    batch.failed += 1
                self.lines_answered += 1
                self._cond.notify_all()
        return outputs, errors, answered

    def _answer(
        self, batch: _Batch, line: dict[str, Any], fault: Fault | None
    ) -> tuple[bytes, bool, tuple[int, int]]:
        """One result line, whether it belongs to the output file, and its tokens."""
        body = line["body"]
        request_id = f"req_{uuid.uuid4().hex[:24]}"

        def result(status: int, response_body: Any) -> bytes:
            row = {
                "id": f"batch_req_{uuid.uuid4().hex[:24]}",
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": request_id, "body": response_body},
                "error": None,
            }
            return json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n"

        if fault is not None and fault.kind == "status":
            error = {
                "message": f"scripted HTTP {fault.status}",
                "type": "scripted_error",
                "param": None,
                "code": None,
            }
            return result(fault.status, {"error": error}), False, (0, 0)
        if fault is not None and fault.kind == "echo_auth":
            message = f"Incorrect API key provided: {batch.authorization}"
            error = {
                "message": message,
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
            return result(fault.status, {"error": error}), False, (0, 0)
        if fault is not None and fault.kind == "malformed":
            return result(200, {"id": "chatcmpl-broken", "object": "chat.completion"}), True, (0, 0)
        text = fault.text if fault is not None and fault.kind == "text" else self.reply_text(body)
        completion = self._completion(body, text)
        out = result(200, completion)
        if fault is not None and fault.kind in ("cut", "not_json"):
            out = out[: len(out) // 2] + b"\n"
        usage = completion["usage"]
        return out, True, (usage["prompt_tokens"], usage["completion_tokens"])

    def _finish(
        self,
        batch: _Batch,
        lines: list[dict[str, Any]],
        outputs: list[bytes],
        errors: list[bytes],
        answered: set[str],
    ) -> None:
        with self._cond:
            cancelled = batch.cancel_requested
            expired = not cancelled and (batch.expire_requested or time.monotonic() >= batch.deadline)
        if cancelled:
            self._pause_plain(self.timing.cancelling_s)
        elif expired:
            for line in lines:
                if line["custom_id"] not in answered:
                    row = {
                        "id": f"batch_req_{uuid.uuid4().hex[:24]}",
                        "custom_id": line["custom_id"],
                        "response": None,
                        "error": {
                            "code": "batch_expired",
                            "message": "This request could not be executed before the completion window expired.",
                        },
                    }
                    errors.append(json.dumps(row).encode() + b"\n")
            with self._cond:
                batch.failed = batch.total - batch.completed
        else:
            self._set(batch, "finalizing")
            self._pause_plain(self.timing.finalizing_s)
        with self._cond:
            if outputs:
                name = f"batch_{batch.id}_output.jsonl"
                batch.output_file_id = self._store_file("batch_output", name, b"".join(outputs)).id
            if errors:
                name = f"batch_{batch.id}_error.jsonl"
                batch.error_file_id = self._store_file("batch_output", name, b"".join(errors)).id
        self._set(batch, "cancelled" if cancelled else "expired" if expired else "completed")

    def _pause_plain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        with self._cond:
            while not self._stopping and (left := end - time.monotonic()) > 0:
                self._cond.wait(left)
            if self._stopping:
                raise _Stop

    # --- lifecycle -----------------------------------------------------------------------------------
    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=5)
        super().stop()


def _dump(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def main(argv: list[str] | None = None) -> int:
    from iopo_eval.testing.replies import REPLIES

    parser = argparse.ArgumentParser(description="Run the loopback files + batches API.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--reply", choices=sorted(REPLIES), default="trace_all_tens")
    parser.add_argument("--validating", type=float, default=0.0, help="seconds in validating")
    parser.add_argument("--per-request", type=float, default=0.0, help="seconds per request line")
    parser.add_argument("--finalizing", type=float, default=0.0, help="seconds in finalizing")
    parser.add_argument("--window", type=float, default=24 * 3600.0, help="completion window, seconds")
    args = parser.parse_args(argv)
    timing = BatchTiming(args.validating, args.per_request, args.finalizing, 0.0, args.window)
    with BatchServer(REPLIES[args.reply], timing=timing, port=args.port) as server:
        print(server.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main())
