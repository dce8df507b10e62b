"""What a build folder keeps between runs, so that a killed build resumes where it stopped.

- ``state/<step>.jsonl``: one record per item the step finished (kept with its delta, or dropped with the
  reason), appended and fsynced after every chunk. A line torn by a kill is cut off on the next open.
- ``manifest.json``: the settings that decide what the build makes; a rerun with other settings is
  refused (a new folder is the way to change them).
- ``runs.jsonl``: one line per invocation with its per-step calls, tokens and cost.
- ``.lock``: one build at a time per folder.

Replies themselves live in the judge engine's SQLite cache (``cache.sqlite`` by default): a reply that
arrived before the kill is a free cache hit on the rerun even when its chunk's records were not written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from iopo_eval.training.databuild.errors import BuildError


def trim_torn_tail(path: Path) -> bytes:
    """The file's bytes up to its last newline; a torn last line (a killed run) is cut off the file too,
    so that the next append starts on a line of its own."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as fh:
            fh.truncate(end)
        data = data[:end]
    return data


class StateFile:
    """Append-only JSONL of records keyed by ``id``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}

    def load(self) -> dict[str, dict[str, Any]]:
        self.records = {}
        if not self.path.is_file():
            return self.records
        data = trim_torn_tail(self.path)
        for lineno, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BuildError(
                    f"{self.path} line {lineno}: not valid JSON ({exc}); the state file is damaged"
                ) from exc
            self.records[str(record["id"])] = record
        return self.records

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in records]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        for line in lines:
            record = json.loads(line)
            self.records[str(record["id"])] = record


def write_json(path: Path, data: Any) -> None:
    """Write through a temporary file and rename, so a kill never leaves half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def check_manifest(path: Path, wanted: dict[str, Any]) -> None:
    """Write ``wanted`` on the first run; on a rerun, refuse settings that differ from the recorded ones."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, wanted)
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path}: not valid JSON ({exc})") from exc
    changed = [k for k in sorted(set(recorded) | set(wanted)) if recorded.get(k) != wanted.get(k)]
    if changed:
        key = changed[0]
        raise BuildError(
            f"{path.parent} holds a build made with other settings ({key}: {recorded.get(key)!r} then, "
            f"{wanted.get(key)!r} now{' and ' + str(len(changed) - 1) + ' more' if len(changed) > 1 else ''}); "
            "resume it with the same settings or build into a new folder"
        )


EXIT_OK, EXIT_INCOMPLETE = 0, 3  # 3: some items failed or are still pending; a rerun resumes them


def exit_code(trails: dict[str, dict[str, Any]], stopped: object = None) -> int:
    """A build's exit code: incomplete when any item's step failed or is pending, or the build stopped early
    (the budget); shared by a build and a merge of shards."""
    incomplete = any(
        entry.get("status") in ("failed", "pending") for t in trails.values() for entry in t.values()
    )
    return EXIT_INCOMPLETE if incomplete or stopped else EXIT_OK
