"""Builds against the scripted OpenAI-compatible loopback server (a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from iopo_eval.judges.config import load_judge_config
from iopo_eval.testing.build_replies import ScriptedBuilder
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.training.databuild.llm import CONFIGS_DIR, resolve_generator
from iopo_eval.training.databuild.pipeline import BuildSettings, run_build
from iopo_eval.training.databuild.seeds import PACKAGED_SEEDS

FAST = {"backoff_initial_s": 0.001, "backoff_max_s": 0.002}


@pytest.fixture
def scripted() -> ScriptedBuilder:
    return ScriptedBuilder(unusable_rate=0.0, qc_drop_rate=0.0, qc_fix_rate=0.0)


@pytest.fixture
def server(scripted: ScriptedBuilder) -> Iterator[OpenAIServer]:
    with OpenAIServer(scripted) as srv:
        yield srv


def settings_for(server: OpenAIServer, out: Path, seeds: Path = PACKAGED_SEEDS, **kw: Any) -> BuildSettings:
    generator = resolve_generator("qwen2.5-72b-vllm", base_url=server.base_url).with_overrides(
        max_retries=1, **FAST
    )
    judge = load_judge_config("trace-gpt4o").with_overrides(base_url=server.base_url, max_retries=1, **FAST)
    return BuildSettings(seeds=seeds, out=out, generator=generator, judge=judge, **kw)


def build(server: OpenAIServer, out: Path, **kw: Any) -> tuple[int, dict[str, Any]]:
    return run_build(settings_for(server, out, **kw))


def generator_yaml(tmp_path: Path, base_url: str) -> Path:
    """The bundled vLLM generator config aimed at ``base_url`` (for builds run through the CLI)."""
    raw = yaml.safe_load((CONFIGS_DIR / "qwen2.5-72b-vllm.yaml").read_text(encoding="utf-8"))
    raw.update(
        base_url=base_url,
        template=str(CONFIGS_DIR.parent / "templates" / "respond_v1.txt"),
        max_retries=1,
        **FAST,
    )
    path = tmp_path / "generator.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def phase(report: dict[str, Any], step: str) -> dict[str, Any]:
    return next(p for p in report["phases"] if p["step"] == step)
