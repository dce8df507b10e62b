"""Shared pieces of the reliability tests: real TRACE rows from the data mirror with synthetic responses,
a judge config file with short waits aimed at a loopback server, and the `iopo-eval judge` stage."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from iopo_eval.cli import main as cli_main
from iopo_eval.data.trace import TraceItem, load_trace
from iopo_eval.judges.config import CONFIGS_DIR, TEMPLATES_DIR
from iopo_eval.results import ItemRecord, RunResults, json_line, load_results, read_items

KEY_ENV = "IOPO_RELIABILITY_JUDGE_KEY"
CANARY = "sk-canary-5e1d0c9b8a7f6e5d4c3b2a19"


@functools.cache
def trace_items() -> tuple[TraceItem, ...]:
    return tuple(load_trace())


def synthetic_response(item: TraceItem) -> str:
    """A deterministic stand-in for a model's answer (no model runs here)."""
    return f"Answer to item {item.id}: {item.description[:80]} ... (a synthetic response of {len(item.id)} parts)"


def write_generations(
    folder: Path, items: tuple[TraceItem, ...] | list[TraceItem], responses: dict[str, str] | None = None
) -> Path:
    """The file an interrupted `iopo-eval run` leaves: `iopo-eval judge FOLDER` judges it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "trace.generations.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for item in items:
            text = (responses or {}).get(item.id, synthetic_response(item))
            fh.write(json_line({"id": item.id, "response": text}))  # as the lm-eval filter saves them
    return folder


def judge_config_file(folder: Path, **overrides: Any) -> Path:
    """The bundled trace-gpt4o judge with short timeouts and waits, as a YAML file (what users do)."""
    raw = yaml.safe_load((CONFIGS_DIR / "trace-gpt4o-hardened.yaml").read_text(encoding="utf-8"))
    raw.update(
        name="trace-gpt4o-test",
        api_key_env=KEY_ENV,
        template=str(TEMPLATES_DIR / raw["template"]),
        timeout_s=1.0,
        backoff_initial_s=0.01,
        backoff_max_s=0.05,
        concurrency=32,
    )
    raw.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "judge.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def judge_stage(
    generations: Path, config: Path, base_url: str, cache: Path, output: Path, *extra: str
) -> tuple[RunResults, dict[str, ItemRecord]]:
    """`iopo-eval judge` in this process; returns the results and the item records by id."""
    output.mkdir(parents=True, exist_ok=True)
    before = set(output.iterdir())
    code = cli_main(
        [
            "judge",
            str(generations),
            "--judge",
            str(config),
            "--judge-base-url",
            base_url,
            "--judge-cache",
            str(cache),
            "--no-embedded-judge",
            "-o",
            str(output),
            *extra,
        ]
    )
    (run_dir,) = set(output.iterdir()) - before
    results, run_dir = load_results(run_dir)
    # 0 only when every item has a score; 3 says the run is written but some items are left unscored.
    incomplete = any(b.n_failed for b in results.benchmarks.values()) and "--dry-run" not in extra
    assert code == (3 if incomplete else 0)
    records = read_items(run_dir / results.benchmarks["trace"].items_file)
    return results, {r.item_id: r for r in records}


@pytest.fixture
def judge_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, CANARY)
    for name in ("IOPO_EVAL_JUDGE", "IOPO_EVAL_JUDGE_BASE_URL", "IOPO_EVAL_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    return CANARY
