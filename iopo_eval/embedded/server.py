"""The embedded smoke-test judge: llama-cpp-python's OpenAI-compatible server on 127.0.0.1, serving the
same SmolLM2-135M-Instruct GGUF that ``ensure_hf_model`` converts for generation.

The server runs as a child process in its own process group. It is stopped by ``stop()``, by leaving the
``with`` block, at interpreter exit (``atexit``; SIGTERM is turned into a normal exit when nobody else
handles it), and, should the parent die without any of that, by a watchdog in the child that exits when
its stdin pipe from the parent closes (see ``_serve.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

from iopo_eval.embedded.model import EMBEDDED_MODEL_NAME, gguf_path
from iopo_eval.paths import cache_dir

# Python modules the server imports; pip's "llama-cpp-python[server]" extra installs them.
_SERVER_MODULES = (
    "llama_cpp",
    "fastapi",
    "uvicorn",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
SERVER_INSTALL_HINT = (
    'pip install "iopo-eval[embedded]" (or "llama-cpp-python[server]==0.3.36"). It compiles llama.cpp; on CPUs '
    'where the native build crashes, set CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF" and add --no-cache-dir'
)
_PORT_RETRIES = 3  # the free port we picked can be taken before the server binds it


class EmbeddedServerError(RuntimeError):
    """The embedded judge server could not be started or died."""


class EmbeddedJudgeServer:
    """A llama.cpp OpenAI-compatible server for the embedded model, owned by this process.

    >>> with EmbeddedJudgeServer() as server:  # doctest: +SKIP
    ...     client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    """

    def __init__(
        self,
        gguf: Path | None = None,
        *,
        n_ctx: int = 8192,  # room for a TRACE judge prompt (instruction, constraints, a long response)
        n_threads: int | None = None,  # None: half the usable cores, at most 8 (see _default_threads)
        startup_timeout_s: float = 120.0,
        log_dir: Path | None = None,
    ) -> None:
        self.gguf = Path(gguf) if gguf is not None else None
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _default_threads()
        self.startup_timeout_s = startup_timeout_s
        self.log_dir = log_dir
        self.port: int | None = None
        self.log_path: Path | None = None
        self.model_name: str = EMBEDDED_MODEL_NAME
        self.startup_s: float | None = None  # seconds from spawn to the first answer of /v1/models
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._started_at = 0.0

    # --------------------------------------------------------------------------- public face

    @property
    def base_url(self) -> str:
        if self.port is None or not self.running:
            raise EmbeddedServerError("the embedded judge server is not running (call start() first)")
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> EmbeddedJudgeServer:
        """Spawn the server and return once it answers ``/v1/models``; idempotent while it runs."""
        if self.running:
            return self
        _check_installed()
        gguf = self.gguf or gguf_path()
        for attempt in range(1, _PORT_RETRIES + 1):
            self._spawn(gguf, _free_port())
            try:
                self._wait_ready()
                return self
            except BaseException as err:  # Ctrl-C while waiting included: never leave a server behind
                self.stop()
                port_taken = (
                    isinstance(err, EmbeddedServerError) and "address already in use" in str(err).lower()
                )
                if port_taken and attempt < _PORT_RETRIES:
                    continue
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def stop(self, timeout_s: float = 5.0) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL) and reap it; idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            _live_servers.discard(self)
            _end_group(proc, timeout_s)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n_lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-n_lines:])

    def __enter__(self) -> EmbeddedJudgeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"http://127.0.0.1:{self.port}/v1" if self.running else "stopped"
        return f"EmbeddedJudgeServer({self.model_name}, {state})"

    # --------------------------------------------------------------------------- internals

    def _spawn(self, gguf: Path, port: int) -> None:
        log_dir = self.log_dir or cache_dir() / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.log_path = log_dir / f"embedded-judge-{port}.log"
        self._log = self.log_path.open("wb")
        args = [
            "--model", str(gguf),
            "--model_alias", self.model_name,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            # No logprobs are asked for: keep logits of the last token only (all of them: n_ctx x 49k floats).
            "--logits_all", "false",
            # Queue concurrent requests instead of cutting a streaming one short.
            "--interrupt_requests", "false",
            # No --chat_format: llama-cpp-python then applies the chat template stored in the GGUF.
        ]  # fmt: skip
        _install_exit_handlers()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "iopo_eval.embedded._serve", *args],
            stdin=subprocess.PIPE,  # never written; its closing tells the child that we are gone
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._started_at = time.monotonic()
        _live_servers.add(self)

    def _wait_ready(self) -> None:
        assert self._proc is not None and self.port is not None
        url = f"http://127.0.0.1:{self.port}/v1/models"
        deadline = self._started_at + self.startup_timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmbeddedServerError(
                    f"the embedded judge server exited with code {code} while starting "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            served = _served_models(url)
            if served:
                self.model_name = served[0]
                self.startup_s = time.monotonic() - self._started_at
                return
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"the embedded judge server did not answer {url} within {self.startup_timeout_s:.0f} s "
                    f"(log {self.log_path}):\n{self.log_tail()}"
                )
            time.sleep(0.1)


def _served_models(url: str) -> list[str]:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as reply:
            body = json.load(reply)
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return []
    return [m["id"] for m in body.get("data", []) if isinstance(m, dict) and "id" in m]


def _check_installed() -> None:
    missing = [name for name in _SERVER_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise EmbeddedServerError(
            f"The embedded judge needs llama-cpp-python's server, but {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install it with: {SERVER_INSTALL_HINT}"
        )


def _default_threads() -> int:
    """llama.cpp's threads spin while they wait for each other, so they collapse when a core is taken
    by anything else: on the 2-core CI machine, beside other work, 2 threads gave 5-13 tok/s and 1 thread
    68-75 tok/s. Half the cores leaves room for the rest of the machine; past 8 a 135M model gains nothing."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, usable // 2))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _end_group(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:  # already reaped: its group id may belong to someone else by now
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=timeout_s)
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.stdin is not None:
        proc.stdin.close()
    if proc.poll() is None:  # SIGKILL cannot be ignored: only a zombie-reaping race gets here
        proc.wait()


# ------------------------------------------------------------------------- process-wide clean-up

_live_servers: weakref.WeakSet[EmbeddedJudgeServer] = weakref.WeakSet()
_handlers_installed = False
_handlers_lock = threading.Lock()


def _stop_all() -> None:
    for server in list(_live_servers):
        server.stop(timeout_s=2.0)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # A normal exit runs ``finally`` blocks, ``with`` exits and atexit handlers, which stop the servers.
    raise SystemExit(128 + signum)


def _install_exit_handlers() -> None:
    global _handlers_installed
    with _handlers_lock:
        if _handlers_installed:
            return
        _handlers_installed = True
        atexit.register(_stop_all)
        # Only take SIGTERM over when nobody else handles it, and only from the main thread (Python's rule).
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
            signal.SIG_DFL,
            None,
        ):
            signal.signal(signal.SIGTERM, _exit_on_sigterm)
