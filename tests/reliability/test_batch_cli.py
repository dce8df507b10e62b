"""Batch mode through the real CLI (``iopo-eval judge ... --judge-mode batch``, a process of its own) against
the loopback files + batches API: all 1,042 TRACE items give the same item records as synchronous mode;
the CLI killed (SIGKILL) while it polls resumes without submitting any request line again; a run that stops
waiting (``--batch-wait``) exits 3 with its items ``batch_pending`` and the next run collects them.

The judged responses are an interrupted run's saved generations (``trace.generations.jsonl``), one
deterministic synthetic response per TRACE row; the batch server runs in this process and counts every
request line it is given."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from iopo_eval.benchmarks import BENCHMARKS
from iopo_eval.judges.batch_ledger import BatchLedger
from iopo_eval.judges.config import CONFIGS_DIR
from iopo_eval.results import load_results, read_items
from iopo_eval.testing.batch_server import BatchServer
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores


def generations(folder: Path, limit: int | None = None) -> Path:
    """A run folder holding only saved generations: what ``iopo-eval judge`` resumes a crashed run from."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = BENCHMARKS["trace"].documents(None)
    ids = list(docs)[:limit]
    with (folder / "trace.generations.jsonl").open("w", encoding="utf-8") as fh:
        for doc_id in ids:
            text = f"Answer to item {doc_id}: {docs[doc_id][1]['description'][:60]} (synthetic)"
            fh.write(json.dumps({"id": doc_id, "response": text}, ensure_ascii=False) + "\n")
    return folder


def judge_config(tmp_path: Path, **batch: Any) -> Path:
    """The bundled TRACE judge with fast polling (the default is 30 s) and smaller batches."""
    data = yaml.safe_load((CONFIGS_DIR / "trace-gpt4o-hardened.yaml").read_text(encoding="utf-8"))
    data["batch"] = {"poll_interval_s": 0.05, **batch}
    path = tmp_path / "trace-judge.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def cli(
    source: Path, config: Path, base_url: str, cache: Path, out: Path, *flags: str
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "iopo_eval.cli", "judge", str(source), "--judge", str(config)]
    cmd += ["--judge-base-url", base_url, "--judge-cache", str(cache), "--no-embedded-judge", "-o", str(out)]
    env = {**os.environ, "OPENAI_API_KEY": "sk-loopback-not-secret"}
    return subprocess.Popen([*cmd, *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def finish(proc: subprocess.Popen[bytes], code: int = 0, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == code, (out + err).decode(errors="replace")[-3000:]
    return out.decode()


def items(out: Path) -> tuple[list[dict[str, Any]], Any]:
    (run_dir,) = out.iterdir()
    results, _ = load_results(run_dir)
    return [r.to_json() for r in read_items(run_dir / results.benchmarks["trace"].items_file)], results


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """An item record without what differs by mode by design: the cost (batch price) and the latency
    (a batch item's is the time from submission to collection)."""
    judge = {k: v for k, v in record["judge"].items() if k not in ("cost_usd", "latency_s")}
    return {**record, "judge": judge}


def test_all_trace_items_in_batch_mode_survive_a_kill_and_equal_synchronous_mode(tmp_path: Path) -> None:
    source = generations(tmp_path / "crashed-run")
    config = judge_config(tmp_path, max_requests=400)
    cache = tmp_path / "batch.sqlite"
    with BatchServer(hashed_scores) as server:
        server.hold(after=150)  # each batch answers 150 lines, then waits
        proc = cli(source, config, server.base_url, cache, tmp_path / "killed", "--judge-mode", "batch")
        server.wait_for(lambda: len(server.batch_ids()) == 3, timeout=180)
        server.wait_for(lambda: server.routes["batches.retrieve"] >= 9, timeout=60)  # polling all three
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert sorted(server.submitted.values()) == [1] * 1042
        with BatchLedger(cache) as ledger:
            assert [j.state for j in ledger.jobs()] == ["submitted"] * 3
        server.release()
        routes = dict(server.routes)
        finish(cli(source, config, server.base_url, cache, tmp_path / "batch", "--judge-mode", "batch"))
        # The rerun re-attached to the three batches: nothing uploaded, created or submitted again.
        assert server.resubmitted == 0 and sorted(server.submitted.values()) == [1] * 1042
        assert server.routes["files.create"] == routes["files.create"] == 3
        assert server.routes["batches.create"] == routes["batches.create"] == 3
        with BatchLedger(cache) as ledger:
            assert [j.state for j in ledger.jobs()] == ["done"] * 3
    batch, batch_results = items(tmp_path / "batch")

    with OpenAIServer(hashed_scores) as sync_server:
        finish(cli(source, config, sync_server.base_url, tmp_path / "sync.sqlite", tmp_path / "sync"))
        assert sync_server.calls == 1042
    sync, sync_results = items(tmp_path / "sync")

    assert len(batch) == 1042 and all(r["status"] == "ok" for r in batch)
    assert [comparable(r) for r in batch] == [comparable(r) for r in sync]  # scores, replies, tokens ...
    for b, s in zip(batch, sync, strict=True):  # the batch price is half the synchronous one
        assert b["judge"]["cost_usd"] == pytest.approx(s["judge"]["cost_usd"] / 2)
    trace_b, trace_s = batch_results.benchmarks["trace"], sync_results.benchmarks["trace"]
    assert {k: m.value for k, m in trace_b.metrics.items()} == {
        k: m.value for k, m in trace_s.metrics.items()
    }


def test_a_run_that_stops_waiting_exits_3_and_the_next_collects_without_resubmitting(
    tmp_path: Path,
) -> None:
    source = generations(tmp_path / "crashed-run", limit=12)
    config = judge_config(tmp_path)
    cache = tmp_path / "batch.sqlite"
    with BatchServer(hashed_scores) as server:
        server.hold(after=4)
        flags = ("--judge-mode", "batch", "--batch-wait", "0.5")
        out = finish(cli(source, config, server.base_url, cache, tmp_path / "first", *flags), code=3)
        assert "incomplete: some items have no score (trace: batch_pending 12)" in out
        first, _ = items(tmp_path / "first")
        assert {(r["status"], r["judge"]["error_kind"]) for r in first} == {("not_judged", "batch_pending")}
        server.release()
        finish(cli(source, config, server.base_url, cache, tmp_path / "second", "--judge-mode", "batch"))
        assert server.resubmitted == 0 and len(server.batch_ids()) == 1
    second, _ = items(tmp_path / "second")
    assert all(r["status"] == "ok" for r in second) and len(second) == 12


def test_dry_run_prints_both_modes_and_the_environment_selects_batch_mode(tmp_path: Path) -> None:
    source = generations(tmp_path / "crashed-run", limit=5)
    config = judge_config(tmp_path)
    with BatchServer(hashed_scores) as server:
        out = finish(
            cli(source, config, server.base_url, tmp_path / "c.sqlite", tmp_path / "dry", "--dry-run")
        )
        assert "dry run: 5 judgements to make" in out
        assert (
            "synchronous mode: $" in out and "batch mode (--judge-mode batch; answers within 24 h): $" in out
        )
        assert not server.routes
        os.environ["IOPO_EVAL_JUDGE_MODE"] = "batch"  # as a plain lm_eval run would set it
        try:
            finish(cli(source, config, server.base_url, tmp_path / "c.sqlite", tmp_path / "env"))
            os.environ["IOPO_EVAL_JUDGE_MODE"] = "fast"
            proc = cli(source, config, server.base_url, tmp_path / "c.sqlite", tmp_path / "bad")
            out, err = proc.communicate(timeout=120)
        finally:
            del os.environ["IOPO_EVAL_JUDGE_MODE"]
        assert len(server.batch_ids()) == 1 and sum(server.submitted.values()) == 5
    assert proc.returncode == 2 and "$IOPO_EVAL_JUDGE_MODE: 'fast' is not one of sync, batch" in err.decode()
