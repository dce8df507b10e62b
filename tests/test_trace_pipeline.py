"""TRACE end to end through lm-eval, with a real loopback OpenAI-compatible judge server.

The model under test is a small scripted lm-eval LM (registered below): it answers "GOOD" or "BAD"
deterministically from the prompt, so the expected IF-S / IF-M are known without trusting the scorer.
Everything else is real: lm-eval's evaluator and our task YAML, the iopo_judge filter, the async judge
client over HTTP, the SQLite cache, the results files and the CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.cli import main as cli_main
from iopo_eval.data.trace import load_trace
from iopo_eval.judging import JudgeSession
from iopo_eval.models import ModelSpec, resolve_model
from iopo_eval.results import load_results, read_items
from iopo_eval.run import RunOptions, evaluate
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.scripted_lm import register_scripted_lm, user_turn
from iopo_eval.testing.upstream_replies import (
    is_trace_upstream,
    read_trace_prompt,
    trace_constraints,
    trace_reply,
)

CANARY = "sk-canary-7f3e9a1b2c4d"
UNMATCHED = 'Fine Grained Score: [{"a": 10, "b": 10}]\nConstraints Overall Score: [[10]]'


def verdict(prompt: str) -> str:
    return "GOOD" if int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3 else "BAD"


register_scripted_lm("iopo-test-scripted", lambda chat, gen: f"{verdict(user_turn(chat))}: a response")


def judge_reply(request: dict[str, Any]) -> str:
    """A judge that gives 10 to every constraint of a GOOD response and 7 to the last one of a BAD one:
    in upstream's format for upstream's prompt (the default judge), in JSON for the hardened one."""
    text = request["messages"][-1]["content"]
    if is_trace_upstream(text):
        asked = read_trace_prompt(text)
        constraints = trace_constraints(asked.constraints)
        scores = [10.0] * len(constraints)
        if "GOOD" not in asked.response:
            scores[-1] = 7.0
        return trace_reply(constraints, scores)
    n = int(re.search(r"exactly (\d+) entries", text).group(1))
    response = re.search(r"<response-(\w+)>\n(.*?)\n</response-\1>", text, re.S).group(2)
    scores = [10] * n
    if "GOOD" not in response:
        scores[-1] = 7
    items = [{"index": i + 1, "reason": "checked", "score": s} for i, s in enumerate(scores)]
    return json.dumps({"constraints": items, "overall": min(scores)})


@pytest.fixture
def judge_server() -> OpenAIServer:
    with OpenAIServer(reply=judge_reply) as server:
        yield server


def expected_rates(limit: int) -> tuple[float, float]:
    items = load_trace()
    singles = [i for i in items if i.subset == "single"][:limit]
    multis = [i for i in items if i.subset == "multi"][:limit]

    def rate(chosen: list) -> float:
        return 100 * sum(verdict(i.user_prompt) == "GOOD" for i in chosen) / len(chosen)

    return rate(singles), rate(multis)


def test_trace_end_to_end(
    tmp_path: Path, judge_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    cache = tmp_path / "judge.sqlite"
    limit = 6
    session = JudgeSession(
        base_url=judge_server.base_url, cache_path=cache, allow_embedded=False, progress=False
    )
    with session:
        results, run_dir = evaluate(
            ModelSpec("iopo-test-scripted", {}, "scripted"),
            RunOptions(tasks=["trace"], output=tmp_path / "runs", limit=limit),
            session,
        )
    if_s, if_m = expected_rates(limit)
    trace = results.benchmarks["trace"]
    assert trace.metrics["if_s"].value == pytest.approx(if_s)
    assert trace.metrics["if_m"].value == pytest.approx(if_m)
    assert trace.n_items == 2 * limit and trace.n_failed == 0
    assert trace.cost.calls == 2 * limit and trace.cost.cache_hits == 0
    assert trace.tasks == {"trace_ifs": 2.0, "trace_ifm": 2.0}
    assert trace.judge["model"] == "gpt-4o-2024-08-06" and not trace.smoke_test
    assert (
        trace.judge["paper_comparable"]
        and trace.protocol["name"] == "upstream prompt, strict failure counting"
    )
    # The overall score is the minimum here, so upstream code's rule (overall == 10) agrees with the
    # paper's (every constraint at 10) on every item.
    assert trace.metrics["if_s_upstream"].value == pytest.approx(if_s)
    assert trace.metrics["rule_disagreements"].value == 0.0
    assert judge_server.calls == 2 * limit
    # The API key reached the server as a bearer token, and nowhere else.
    assert any(
        CANARY in (h.get("Authorization") or h.get("authorization") or "") for h in judge_server.headers
    )
    for path in [*run_dir.rglob("*"), cache]:
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path

    # Rejudging the run with the same judge pays nothing: every judgement comes from the cache.
    code = cli_main(
        [
            "judge",
            str(run_dir),
            "--judge-base-url",
            judge_server.base_url,
            "--judge-cache",
            str(cache),
            "--no-embedded-judge",
            "-o",
            str(tmp_path / "rejudged"),
        ]
    )
    assert code == 0
    assert judge_server.calls == 2 * limit
    rejudged, _ = load_results(next((tmp_path / "rejudged").iterdir()))
    assert rejudged.benchmarks["trace"].cost.cache_hits == 2 * limit
    assert rejudged.benchmarks["trace"].metrics["if_m"].value == pytest.approx(if_m)

    # Rescoring from stored judgements reproduces every metric and makes no call.
    assert cli_main(["score", "run", str(run_dir), "-o", str(tmp_path / "rescored")]) == 0
    rescored, rescored_dir = load_results(tmp_path / "rescored")
    for name, metric in trace.metrics.items():
        assert rescored.benchmarks["trace"].metrics[name].value == pytest.approx(metric.value), name
    assert len(read_items(rescored_dir / "trace.items.jsonl")) == 2 * limit
    assert judge_server.calls == 2 * limit


def test_failed_judgements_are_counted_not_scored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    # Two fine-grained scores for a one-constraint instruction: they cannot be matched, so the overall of
    # 10 counts for nothing (upstream's code would have read it as followed).
    with OpenAIServer(reply=UNMATCHED) as server:
        session = JudgeSession(
            base_url=server.base_url, cache_path=tmp_path / "c.sqlite", allow_embedded=False, progress=False
        )
        with session:
            results, run_dir = evaluate(
                ModelSpec("iopo-test-scripted", {}, "scripted"),
                RunOptions(tasks=["trace_ifs"], output=tmp_path / "runs", limit=2),
                session,
            )
    trace = results.benchmarks["trace"]
    assert trace.n_scored == 0
    assert trace.failures == {"wrong_count": 2}
    assert trace.metrics["if_s"].n == 0
    records = read_items(run_dir / "trace.items.jsonl")
    assert all(r.status == "judge_failed" and r.values == {} for r in records)
    assert all(r.judge["raw"] for r in records)  # the raw reply is kept for inspection
    # The generations were saved before judging, so nothing is lost if judging dies.
    saved = (run_dir / "trace.generations.jsonl").read_text().splitlines()
    assert len(saved) == 2


def test_dry_run_estimates_and_pays_nothing(
    tmp_path: Path, judge_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    session = JudgeSession(
        base_url=judge_server.base_url,
        cache_path=tmp_path / "c.sqlite",
        allow_embedded=False,
        progress=False,
        dry_run=True,
    )
    with session:
        results, _ = evaluate(
            ModelSpec("iopo-test-scripted", {}, "scripted"),
            RunOptions(tasks=["trace_ifs"], output=tmp_path / "runs", limit=3),
            session,
        )
        estimate = session.estimate_text()
    assert judge_server.calls == 0
    trace = results.benchmarks["trace"]
    assert trace.failures == {"dry_run": 3} and trace.n_scored == 0
    assert re.match(
        r"dry run: 3 judgements to make, about \d+ prompt \+ \d+ completion tokens, estimated \$", estimate
    )


def test_model_under_test_behind_an_openai_compatible_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--model local-chat-completions``: lm-eval's own API backend sends the row's messages (system turn
    included) to a real server on 127.0.0.1; the same server also plays the judge here."""
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)

    def reply(request: dict[str, Any]) -> str:
        text = request["messages"][-1]["content"]
        return judge_reply(request) if is_trace_upstream(text) else "GOOD: served answer"

    with OpenAIServer(reply=reply) as server:
        spec = resolve_model(
            "local-chat-completions",
            f"model=served-model,base_url={server.base_url}/chat/completions,num_concurrent=2,max_retries=1",
        )
        session = JudgeSession(
            base_url=server.base_url, cache_path=tmp_path / "c.sqlite", allow_embedded=False, progress=False
        )
        with session:
            results, _ = evaluate(
                spec, RunOptions(tasks=["trace_ifs"], output=tmp_path / "runs", limit=2), session
            )
        model_calls = [b for b in server.bodies if b["model"] == "served-model"]
    assert len(model_calls) == 2
    assert all(
        b["messages"][0] == {"role": "system", "content": "You are a helpful assistant."} for b in model_calls
    )
    assert results.benchmarks["trace"].metrics["if_s"].value == 100.0
    assert results.model["backend"] == "local-chat-completions" and results.model["name"] == "served-model"


def test_cli_exit_code_says_when_items_are_left_unscored(
    tmp_path: Path,
    judge_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Judge failures after the retries end `iopo-eval run` with 3, not 0 (a CI job must not carry on with
    a partial run); `iopo-eval judge RUN_DIR` then judges just the failed items and exits 0."""
    monkeypatch.setenv("OPENAI_API_KEY", CANARY)
    cache = tmp_path / "c.sqlite"
    common = ["--judge-cache", str(cache), "--no-embedded-judge"]
    with OpenAIServer(reply=UNMATCHED) as broken:
        argv = ["run", "--model", "iopo-test-scripted", "--tasks", "trace_ifs", "--limit", "2"]
        code = cli_main([*argv, "-o", str(tmp_path / "runs"), "--judge-base-url", broken.base_url, *common])
    out = capsys.readouterr().out
    assert code == 3
    assert "incomplete: some items have no score (trace: wrong_count 2)" in out
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert f"results folder: {run_dir}" in out

    rejudge = [
        "judge",
        str(run_dir),
        "-o",
        str(tmp_path / "again"),
        "--judge-base-url",
        judge_server.base_url,
    ]
    code = cli_main([*rejudge, *common, "--leaderboard", str(tmp_path / "site")])
    out = capsys.readouterr().out
    assert code == 0 and judge_server.calls == 2
    assert "incomplete" not in out
    assert f"leaderboard: {(tmp_path / 'site' / 'index.html').resolve().as_uri()}" in out
    again, _ = load_results(next((tmp_path / "again").iterdir()))
    assert again.benchmarks["trace"].n_failed == 0

    dry = cli_main(
        [*argv, "-o", str(tmp_path / "dry"), "--judge-base-url", judge_server.base_url, "--dry-run", *common]
    )
    assert dry == 0  # nothing judged by design: not an incomplete run
