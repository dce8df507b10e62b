"""``iopo-eval judge``: judge responses produced elsewhere, or judge a run again with another judge.

Inputs, by what the path holds:
- an lm-eval ``--log_samples`` output (a folder or ``samples_<task>_*.jsonl`` files),
- an iopo-eval run folder (its items files, or the ``<bench>.generations.jsonl`` a crashed run saved),
- an upstream file read by an importer (``iopo_eval.importers``), keyed the same way.
Responses are judged through the same session and scored with the same code as ``iopo-eval run``
(``judging.judge_documents_many``: all benchmarks in one judge pool; ``aggregate.build_result``).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from iopo_eval.aggregate import build_result
from iopo_eval.benchmarks import BENCHMARKS, by_task
from iopo_eval.judging import JudgeSession, judge_documents_many
from iopo_eval.results import (
    RESULTS_NAME,
    ResultsError,
    RunResults,
    load_results,
    new_run_id,
    now_iso,
    read_items,
    write_items,
    write_results,
)

log = logging.getLogger(__name__)
_SAMPLES_FILE = re.compile(r"samples_(?P<task>.+?)_\d{4}-\d{2}-\d{2}T[\d\-\.]+\.jsonl$")

# (benchmark, task, doc id) -> raw response
Responses = dict[tuple[str, str, str], str]


def collect_responses(paths: list[Path]) -> tuple[Responses, dict[str, Any]]:
    """Find the responses to judge; returns them and the model description when one is known."""
    found: Responses = {}
    model: dict[str, Any] = {}
    task_bench = {task: bench.name for task, bench in by_task().items()}
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("samples_*.jsonl")))
            if (path / RESULTS_NAME).is_file():
                results, run_dir = load_results(path)
                model = results.model
                for bench, res in results.benchmarks.items():
                    for rec in read_items(run_dir / res.items_file):
                        raw = rec.extra.get("raw_response", rec.response)
                        found[(bench, rec.task, rec.item_id)] = raw
            else:
                files.extend(sorted(path.glob("*.generations.jsonl")))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    for f in files:
        m = _SAMPLES_FILE.search(f.name)
        if m:
            task = m.group("task")
            if task not in task_bench:
                log.info("skipping %s: task %s is not a judged iopo-eval task", f, task)
                continue
            for lineno, line in enumerate(_read_lines(f), 1):
                if not line.strip():
                    continue
                try:
                    sample = json.loads(line)
                    raw = sample["resps"][0][0]
                    doc_id = str(sample["doc"].get("id", sample["doc_id"]))
                except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
                    raise ResultsError(f"{f} line {lineno}: not an lm-eval sample ({exc!r})") from exc
                found[(task_bench[task], task, doc_id)] = raw
        elif f.name.endswith(".generations.jsonl"):
            bench = f.name.split(".", 1)[0]
            for lineno, line in enumerate(_read_lines(f), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ResultsError(
                        f"{f} line {lineno}: not JSON ({exc}); the file may be truncated"
                    ) from exc
                if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("response"), str):
                    raise ResultsError(f'{f} line {lineno}: expected {{"id": ..., "response": "text"}}')
                found[(bench, "", str(row["id"]))] = row["response"]
        else:
            raise ResultsError(f"{f}: not an lm-eval samples file, iopo-eval run folder or generations file")
    if not found:
        raise ResultsError(f"no responses found in {', '.join(map(str, paths))}")
    return found, model


def _read_lines(path: Path) -> list[str]:
    """The lines of a responses file. Bytes that are not UTF-8 are kept as escapes (surrogateescape) and
    the file is named in a warning: the judge sees U+FFFD there, the items file keeps the escapes."""
    data = path.read_bytes()
    # Split on newlines only: str.splitlines() also splits on U+2028 / U+0085, which JSON leaves raw
    # inside strings (a response holding one would look like a truncated line).
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        log.warning("%s line %d: not valid UTF-8; undecodable bytes are kept as escapes", path, line)
        return data.decode("utf-8", errors="surrogateescape").split("\n")


def judge_and_score(
    responses: Responses, session: JudgeSession, output: Path, model: dict[str, Any], mirror: str | None
) -> tuple[RunResults, Path]:
    run_id = new_run_id()
    run_dir = output / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    results = RunResults(
        run_id=run_id,
        created_at=now_iso(),
        command=shlex.join(["iopo-eval", *sys.argv[1:]]),
        model=model or {"name": "unknown (judged from saved responses)"},
        benchmarks={},
    )
    entries = []
    for name in sorted({b for b, _, _ in responses}):
        if name not in BENCHMARKS:
            raise ResultsError(f"responses of benchmark {name!r}, which this install does not know")
        bench = BENCHMARKS[name]
        if not bench.judged:
            continue
        docs = bench.documents(mirror)
        keys = [k for k in responses if k[0] == name]
        missing = [k[2] for k in keys if k[2] not in docs]
        if missing:
            raise ResultsError(f"{name}: {len(missing)} response ids are not in the data, e.g. {missing[:5]}")
        ordered = sorted(keys, key=lambda k: (docs[k[2]][0], _natural(k[2])))
        entries.append((bench, [docs[k[2]][1] for k in ordered], [responses[k] for k in ordered]))
    for (bench, chosen, _), records in zip(entries, judge_documents_many(entries, session), strict=True):
        result = build_result(bench, records, judges=session.describe(bench), docs=chosen)
        write_items(run_dir / result.items_file, records)
        results.benchmarks[bench.name] = result
    write_results(run_dir, results)
    return results, run_dir


def _natural(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (sys.maxsize, text)
