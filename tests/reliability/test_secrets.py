"""Issue 6.5: a canary API key in the environment appears in nothing a run writes or prints: run folder,
items, cache (WAL included), rendered leaderboard, log records at DEBUG, stdout and stderr, including
the error paths (a 401 whose message echoes the key, a judge that echoes it in its reply)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.cli import main as cli_main
from iopo_eval.judges import JudgeCache
from iopo_eval.testing.openai_server import Fault, OpenAIServer
from iopo_eval.testing.replies import hashed_scores

from .conftest import CANARY, judge_config_file, judge_stage, trace_items, write_generations

# Partial echoes count too (OpenAI's own 401 shows the key's first and last characters).
NEEDLES = (CANARY, CANARY[8:24], CANARY[-12:])


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


@pytest.fixture
def all_logs() -> Any:
    handler = Collect()
    root = logging.getLogger()
    saved = root.level, {n: logging.getLogger(n).level for n in ("openai", "httpx", "aiohttp", "iopo_eval")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in saved[1]:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(saved[0])
    for name, level in saved[1].items():
        logging.getLogger(name).setLevel(level)


def leaky_judge(request: dict[str, Any]) -> str:
    """Scores as usual, but one item in five has a reason that quotes the key (a misbehaving proxy)."""
    reply = json.loads(hashed_scores(request))
    if hashlib.sha256(request["messages"][-1]["content"].encode()).digest()[0] % 5 == 0:
        reply["constraints"][0]["reason"] = f"request carried Authorization: Bearer {CANARY}"
    return json.dumps(reply)


def scan(paths: list[Path]) -> list[str]:
    hits = []
    for path in paths:
        for file in [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]:
            data = file.read_bytes()
            hits += [f"{file}: {n[:6]}..." for n in NEEDLES if n.encode() in data]
    return hits


def test_canary_key_is_written_nowhere(
    tmp_path: Path,
    judge_key: str,
    monkeypatch: pytest.MonkeyPatch,
    all_logs: Collect,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)  # the default variable too
    generations = write_generations(tmp_path / "gen", trace_items()[:40])
    config = judge_config_file(tmp_path / "cfg", max_retries=1)
    cache = tmp_path / "cache" / "judge.sqlite"
    with OpenAIServer(leaky_judge) as server:
        # Error paths first: 401s that echo the Authorization header, a 429, a 500.
        server.script(
            *[Fault.echo_auth(401)] * 6, Fault.echo_auth(403), Fault.rate_limited(0.01), Fault.server_error()
        )
        results, records = judge_stage(
            generations, config, server.base_url, cache, tmp_path / "runs", "--concurrency", "4"
        )
        assert any(CANARY in h.get("authorization", "") for h in server.headers)  # the key was used
    failed = [r for r in records.values() if r.status != "ok"]
    assert any(r.judge["error_kind"] == "bad_request" for r in failed)  # the 401 path ran
    assert any("[redacted API key]" in (r.judge.get("error") or "") for r in failed)
    assert any("[redacted API key]" in (r.judge.get("raw") or "") for r in records.values())

    assert cli_main(["leaderboard", str(tmp_path / "runs" / "*"), "-o", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "index.html").is_file()
    with JudgeCache(cache) as c:
        assert c.failures()  # the failures table was written too
    out, err = capfd.readouterr()

    assert scan([tmp_path / "runs", tmp_path / "site", cache.parent, generations]) == []
    assert not [line for line in all_logs.lines if any(n in line for n in NEEDLES)]
    assert all_logs.lines  # logging really was captured
    assert not any(n in out or n in err for n in NEEDLES)
    assert (
        results.benchmarks["trace"].judge
        and "key" not in json.dumps(results.benchmarks["trace"].judge).lower()
    )
