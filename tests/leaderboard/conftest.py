"""Fixtures for the leaderboard tests: synthetic runs, a rendered site, a real headless Chromium."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The suite runs with --import-mode=importlib, which puts no test folder on sys.path: add this one
# so the tests here can import their browser helper.
sys.path.insert(0, str(Path(__file__).parent))
from cdp_browser import HOSTILE, SMALL, Browser, find_chromium


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install -y chromium) but was not found on PATH")
        pytest.skip(
            "chromium not installed (apt-get install -y chromium); browser tests need a real Chromium"
        )
    return path


@pytest.fixture(scope="session")
def browser(chromium_path: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(chromium_path, tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield b
    finally:
        b.close()


# ---------------------------------------------------------------- synthetic runs and a rendered site


@pytest.fixture(scope="session")
def small_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from iopo_eval.testing.synthetic import SMOKE_JUDGE, SyntheticRun, write_synthetic_run

    root = tmp_path_factory.mktemp("lb-runs")
    specs = {
        "strong": SyntheticRun(
            "strong-model", skill=0.85, seed=1, benchmarks=SMALL, run_id="r-strong", failure_rate=0.1
        ),
        "weak": SyntheticRun("weak-model", skill=0.4, seed=2, benchmarks=SMALL, run_id="r-weak"),
        # Only two benchmarks: its other columns are empty and must sort last.
        "partial": SyntheticRun(
            "partial-model", skill=0.6, seed=3, benchmarks={"trace": 60, "ifeval": 40}, run_id="r-partial"
        ),
        "smoke": SyntheticRun(
            "smoke-model", skill=0.6, seed=4, benchmarks=SMALL, judge=SMOKE_JUDGE, run_id="r-smoke"
        ),
        "hostile": SyntheticRun(
            f"evil {HOSTILE}",
            skill=0.5,
            seed=5,
            benchmarks=SMALL,
            response_marker=HOSTILE,
            run_id=f"r-{HOSTILE}",
        ),
    }
    out = {}
    for name, spec in specs.items():
        spec.bootstrap_iters = 50
        write_synthetic_run(root / name, spec)
        out[name] = root / name
    return out


@pytest.fixture(scope="session")
def site(small_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from iopo_eval.leaderboard.render import build_site

    out = tmp_path_factory.mktemp("lb-site")
    build_site([str(p) for p in small_runs.values()], out)
    return out
