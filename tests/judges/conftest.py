"""Fixtures for the judge tests: a real scripted OpenAI-compatible server on 127.0.0.1, a judge config
aimed at it with short waits, and a real SQLite cache file per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from iopo_eval.judges import JudgeCache, JudgeConfig, JudgeRequest, resolve_judge_config
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import trace_scores

KEY_ENV = "IOPO_TEST_JUDGE_KEY"


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer(trace_scores(10)) as srv:
        yield srv


@pytest.fixture
def config(server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> JudgeConfig:
    monkeypatch.setenv(KEY_ENV, "sk-test-not-secret")
    for name in ("IOPO_EVAL_JUDGE", "IOPO_EVAL_JUDGE_BASE_URL", "IOPO_EVAL_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return resolve_judge_config("trace-gpt4o-hardened", base_url=server.base_url).with_overrides(
        api_key_env=KEY_ENV, backoff_initial_s=0.05, backoff_max_s=0.2, timeout_s=5.0, max_retries=2
    )


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[JudgeCache]:
    with JudgeCache(tmp_path / "judge-cache.sqlite") as c:
        yield c


@pytest.fixture
def make_requests() -> Callable[..., list[JudgeRequest]]:
    return build_requests


def build_requests(n: int, n_constraints: int = 2, prefix: str = "item") -> list[JudgeRequest]:
    return [
        JudgeRequest(
            key=f"{prefix}-{i}",
            fields={
                "query": f"Write a short note number {i}.",
                "input": "(none)",
                "constraints": [f"Constraint {j} of item {i}" for j in range(1, n_constraints + 1)],
                "response": f"A short note, number {i}.",
            },
            n_expected=n_constraints,
        )
        for i in range(n)
    ]
