"""Issue 6.2 and 6.3: a judge stage killed with SIGKILL at random points resumes to the results of an
uninterrupted run, paying again only for the calls in flight at the kill; two processes judging the
same items into one cache at once pay once per item and lose nothing.

The judge stage is ``iopo_eval.testing.judge_driver`` (the real engine, cache and client in a process of
its own); the judge is the loopback server in this process, which counts every call it receives."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.judges import JudgeCache, judge_batch, load_judge_config
from iopo_eval.testing.judge_driver import requests_from
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores

from .conftest import judge_config_file, trace_items, write_generations

N_ITEMS = 120
CONCURRENCY = 8
TRIALS = 10


def start_driver(gen: Path, config: Path, url: str, cache: Path, out: Path) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "iopo_eval.testing.judge_driver",
        "--generations",
        str(gen / "trace.generations.jsonl"),
    ]
    cmd += ["--config", str(config), "--base-url", url, "--cache", str(cache), "--out", str(out)]
    cmd += ["--concurrency", str(CONCURRENCY)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout: float = 120) -> dict[str, int]:
    """Wait for a driver; returns its totals (calls, cache_hits, judged)."""
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def read_outcomes(path: Path) -> dict[str, tuple[list[float], float]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(r["status"] == "ok" for r in rows)
    return {r["key"]: (r["scores"], r["overall"]) for r in rows}


@pytest.fixture
def stage(tmp_path: Path, judge_key: str) -> tuple[Path, Path]:
    gen = write_generations(tmp_path / "gen", trace_items()[:N_ITEMS])
    return gen, judge_config_file(tmp_path / "cfg", timeout_s=10.0)


def test_sigkill_at_random_points_then_resume(tmp_path: Path, stage: tuple[Path, Path]) -> None:
    gen, config_path = stage
    with OpenAIServer(hashed_scores, latency_s=0.02) as server:
        config = load_judge_config(config_path).with_overrides(base_url=server.base_url)
        requests = requests_from(gen / "trace.generations.jsonl")
        with JudgeCache(tmp_path / "reference.sqlite") as cache:
            reference_run = judge_batch(
                requests, config.with_overrides(concurrency=CONCURRENCY), cache, progress=False
            )
        reference = {o.key: (o.scores, o.overall) for o in reference_run.outcomes}
        assert server.calls == N_ITEMS

        rng = random.Random(20241106)
        report = []
        for trial in range(TRIALS):
            server.reset_counters()
            cache = tmp_path / f"trial{trial}.sqlite"
            kill_after = rng.randint(1, N_ITEMS - CONCURRENCY)
            proc = start_driver(gen, config_path, server.base_url, cache, tmp_path / "killed.jsonl")
            deadline = time.monotonic() + 60
            while server.calls < kill_after and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            in_flight_at_kill = server.in_flight
            assert proc.poll() is None, f"trial {trial}: the stage ended before the kill"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            time.sleep(0.05)  # requests already on the wire reach the server's counters
            killed_calls = server.calls
            with JudgeCache(cache) as c:
                committed = len(c)
                stale_leases = len(c.leases())

            started = time.monotonic()
            resume = start_driver(gen, config_path, server.base_url, cache, tmp_path / "resumed.jsonl")
            finish(resume)
            resume_s = time.monotonic() - started
            resumed_calls = server.calls - killed_calls

            assert read_outcomes(tmp_path / "resumed.jsonl") == reference, f"trial {trial}"
            # The resume pays only for what the killed run had not committed ...
            assert resumed_calls == N_ITEMS - committed, f"trial {trial}"
            # ... so the calls paid twice are those in flight at the kill: at most the concurrency.
            duplicates = killed_calls + resumed_calls - N_ITEMS
            assert duplicates == killed_calls - committed
            # A lease left behind is a call that was claimed and not committed: in flight at the kill.
            assert 0 <= duplicates <= stale_leases <= CONCURRENCY, f"trial {trial}: {duplicates} duplicates"
            # Leases of the dead process did not make the resume wait for their expiry.
            assert resume_s < 30
            report.append((kill_after, killed_calls, in_flight_at_kill, committed, stale_leases, duplicates))
    print("\nkill_after killed_calls in_flight committed stale_leases duplicates")
    for row in report:
        print(" ".join(f"{v:>10}" for v in row))


def test_two_processes_share_one_cache(tmp_path: Path, stage: tuple[Path, Path]) -> None:
    gen, config_path = stage
    cache = tmp_path / "shared.sqlite"
    # The judge holds every answer until both processes have calls in flight, so the two really judge
    # at the same time (whatever their start-up times): the second must leave the first's items alone.
    both_in_flight = threading.Event()

    def held_reply(request: dict[str, Any]) -> str:
        both_in_flight.wait(timeout=60)
        return hashed_scores(request)

    with OpenAIServer(held_reply, latency_s=0.01) as server:
        first = start_driver(gen, config_path, server.base_url, cache, tmp_path / "a.jsonl")
        second = start_driver(gen, config_path, server.base_url, cache, tmp_path / "b.jsonl")
        deadline = time.monotonic() + 60
        while server.in_flight < 2 * CONCURRENCY and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.in_flight == 2 * CONCURRENCY
        both_in_flight.set()
        out_a, out_b = finish(first), finish(second)
        a = read_outcomes(tmp_path / "a.jsonl")
        b = read_outcomes(tmp_path / "b.jsonl")
        assert a == b and len(a) == N_ITEMS
        # Each item was paid for once: whichever process asked first, the other took its answer.
        assert server.calls == N_ITEMS
        assert out_a["calls"] + out_b["calls"] == N_ITEMS
        assert out_a["calls"] >= CONCURRENCY and out_b["calls"] >= CONCURRENCY, (out_a, out_b)
        with JudgeCache(cache) as c:
            assert len(c) == N_ITEMS
            assert c.leases() == []
    check = sqlite3.connect(cache).execute("PRAGMA integrity_check").fetchone()[0]
    assert check == "ok"


def test_lease_of_a_live_owner_is_waited_for_then_taken_when_it_expires(
    tmp_path: Path, stage: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lease held by a process on another machine (so not checkable) blocks its item until it expires;
    then this process judges the item itself."""
    from iopo_eval.judges import engine

    gen, config_path = stage
    monkeypatch.setattr(engine, "LEASE_POLL_S", 0.05)
    with OpenAIServer(hashed_scores) as server:
        config = load_judge_config(config_path).with_overrides(base_url=server.base_url)
        requests = requests_from(gen / "trace.generations.jsonl")[:5]
        with JudgeCache(tmp_path / "c.sqlite") as cache:
            dry = judge_batch(requests, config, cache, dry_run=True, progress=False)
            blocked = dry.outcomes[2].cache_key
            assert cache.claim(blocked, "elsewhere.example/1/x", ttl_s=1.0) == ("claimed", None)
            started = time.monotonic()
            run = judge_batch(requests, config.with_overrides(concurrency=2), cache, progress=False)
            waited = time.monotonic() - started
        assert run.judged == 5 and server.calls == 5
        assert 0.8 < waited < 10
