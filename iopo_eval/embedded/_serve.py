"""Entry point of the embedded judge server process: llama-cpp-python's OpenAI-compatible server, plus a
watchdog that ends the process as soon as the parent's end of our stdin closes.

The parent normally stops the server itself (SIGTERM to the process group). The watchdog covers the
cases where it cannot: the parent killed with SIGKILL, or crashing before its exit handlers run. A
closed pipe is noticed whatever the way the parent died, and whichever thread started the server.

Usage: ``python -m iopo_eval.embedded._serve <llama_cpp.server arguments>``.
"""

from __future__ import annotations

import os
import sys
import threading


def _exit_when_parent_goes() -> None:
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        print("iopo-eval: parent process gone (stdin closed); embedded judge server exits", file=sys.stderr)
        sys.stderr.flush()
        os._exit(0)


def main(argv: list[str]) -> None:
    threading.Thread(target=_exit_when_parent_goes, name="parent-watchdog", daemon=True).start()
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *argv]
    serve()


if __name__ == "__main__":
    main(sys.argv[1:])
