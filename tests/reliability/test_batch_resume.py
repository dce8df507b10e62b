"""Batch mode survives SIGKILL: a batch-mode judge stage (``iopo_eval.testing.batch_driver``, a process of its
own) killed while it polls, or between the server creating a batch and the stage hearing of it, or while
it uploads, resumes on the next run without submitting any request line again; over all 1,042 TRACE items
its results equal synchronous mode's, item by item.

The batch API is the loopback server in this process, which counts every request line it is given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.judges import JudgeCache, judge_batch, load_judge_config
from iopo_eval.judges.batch_ledger import BatchLedger
from iopo_eval.testing.batch_driver import KEY_ENV, same_items, trace_requests
from iopo_eval.testing.batch_server import BatchServer
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores


def start(
    server: BatchServer, cache: Path, out: Path, *source: str, max_requests: int = 50_000
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "iopo_eval.testing.batch_driver", "--base-url", server.base_url]
    cmd += [
        "--cache",
        str(cache),
        "--out",
        str(out),
        "--poll",
        "0.05",
        "--max-requests",
        str(max_requests),
        *source,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, KEY_ENV: "sk-loopback"}
    )


def kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # reaped: its leases and submissions belong to a dead process


def finish(proc: subprocess.Popen[bytes], timeout: float = 180) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def read(path: Path) -> dict[str, dict[str, Any]]:
    return {row.pop("key"): row for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}


def test_all_trace_items_survive_a_kill_while_polling_and_equal_synchronous_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "batch.sqlite"
    with BatchServer(hashed_scores) as server:
        server.hold(after=150)  # each batch answers 150 lines, then waits
        proc = start(server, cache, tmp_path / "first.jsonl", "--trace", max_requests=400)
        server.wait_for(lambda: len(server.batch_ids()) == 3, timeout=120)
        server.wait_for(lambda: server.routes["batches.retrieve"] >= 9, timeout=60)  # polling all three
        kill(proc)
        assert sorted(server.submitted.values()) == [1] * 1042
        with BatchLedger(cache) as ledger:
            assert [j.state for j in ledger.jobs()] == ["submitted"] * 3
        server.release()
        report = finish(start(server, cache, tmp_path / "resumed.jsonl", "--trace", max_requests=400))
        assert report["submitted"] == [] and report["lines_submitted"] == 0
        assert sorted(report["reattached"]) == sorted(server.batch_ids())
        assert "files.create" not in report["api_calls"] and "batches.create" not in report["api_calls"]
        assert report["answered"] == 1042 and report["failed"] == 0
        assert server.resubmitted == 0 and len(server.batch_ids()) == 3
    batch = read(tmp_path / "resumed.jsonl")
    assert len(batch) == 1042 and all(row["status"] == "ok" for row in batch.values())

    requests = trace_requests()
    config = load_judge_config("trace-gpt4o-hardened").with_overrides(api_key_env=KEY_ENV)
    monkeypatch.setenv(KEY_ENV, "sk-loopback")
    with OpenAIServer(hashed_scores) as sync_server, JudgeCache(tmp_path / "sync.sqlite") as sync_cache:
        run = judge_batch(
            requests,
            config.with_overrides(base_url=sync_server.base_url, concurrency=32),
            sync_cache,
            progress=False,
        )
        sync = {o.key: same_items(sync_cache.get(o.cache_key)) for o in run.outcomes}  # type: ignore[arg-type]
    with JudgeCache(cache) as batch_cache:
        stored = {o.key: same_items(batch_cache.get(o.cache_key)) for o in run.outcomes}  # type: ignore[arg-type]
    assert run.judged == 1042 and stored == sync  # raw reply, scores, reasons, overall, tokens: all equal
    assert {k: {**v, "usage": list(v["usage"])} for k, v in sync.items()} == batch


def test_a_kill_between_creating_a_batch_and_recording_it_resumes_by_metadata(tmp_path: Path) -> None:
    cache = tmp_path / "batch.sqlite"
    with BatchServer(hashed_scores) as server:
        server.stall("batches.create")  # the batch is created; the stage never hears of it
        proc = start(server, cache, tmp_path / "first.jsonl", "--synthetic", "20")
        server.wait_for(lambda: len(server.batch_ids()) == 1, timeout=60)
        kill(proc)
        with BatchLedger(cache) as ledger:
            (job,) = ledger.jobs()
            assert job.state == "preparing" and job.input_file_id and job.batch_id is None
        server.release()
        report = finish(start(server, cache, tmp_path / "resumed.jsonl", "--synthetic", "20"))
        assert report["reattached"] == server.batch_ids() and report["submitted"] == []
        assert report["api_calls"]["batches.list"] >= 1 and report["answered"] == 20
        assert server.resubmitted == 0 and server.routes["batches.create"] == 1


def test_a_kill_during_the_upload_submits_once_on_resume(tmp_path: Path) -> None:
    cache = tmp_path / "batch.sqlite"
    with BatchServer(hashed_scores) as server:
        server.stall("files.create")
        proc = start(server, cache, tmp_path / "first.jsonl", "--synthetic", "20")
        server.wait_for(lambda: server.routes["files.create"] == 1, timeout=60)
        kill(proc)
        server.release()
        report = finish(start(server, cache, tmp_path / "resumed.jsonl", "--synthetic", "20"))
        assert report["reattached"] == [] and len(report["submitted"]) == 1 and report["answered"] == 20
        assert server.resubmitted == 0 and server.routes["batches.create"] == 1
        with BatchLedger(cache) as ledger:
            assert [j.state for j in ledger.jobs()] == ["abandoned", "done"]
