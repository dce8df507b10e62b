"""The build's two models, as judge-engine configs: the generator (``--llm``) and the judge (``--judge``).

Every call goes through ``iopo_eval.judges.engine`` (cache, retries, budget, cost, dry run). The generator
config names an endpoint, a model and sampling; each step replaces its template, parser and prompt version
(``step_config``), and candidate k of an instruction is asked with the config's seed + k, which is part of
the cache identity, so the k candidates are k cached samples. The judge is iopo-eval's per-constraint
TRACE judge (``trace-gpt4o`` by default), used unchanged.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from iopo_eval.judges.config import JudgeConfig, JudgeConfigError, load_judge_config
from iopo_eval.judges.types import JudgeRequest
from iopo_eval.training.databuild.steps import Ask, Step

CONFIGS_DIR = Path(__file__).parent / "configs"
TEMPLATES_DIR = Path(__file__).parent / "templates"
EMBEDDED_GENERATOR = "smollm2-generator"


def resolve_generator(
    name_or_path: str, base_url: str | None = None, model: str | None = None
) -> JudgeConfig:
    """A generator config: a YAML path, a bundled generator (``qwen2.5-72b-vllm``, ``gpt-4o``,
    ``smollm2-generator``) or any judge config name; then the endpoint and model overrides."""
    path = Path(name_or_path)
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    bundled = CONFIGS_DIR / f"{stem}.yaml"
    if not path.is_file() and str(path) == path.name and bundled.is_file():
        path = bundled
    try:
        config = load_judge_config(path if path.is_file() else name_or_path)
    except JudgeConfigError as exc:
        known = ", ".join(sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
        raise JudgeConfigError(f"--llm: {exc} (bundled generators: {known})") from None
    return config.with_overrides(base_url=base_url, model=model)


def step_config(base: JudgeConfig, step: Step, parser: str, variant: int = 0) -> JudgeConfig:
    """``base`` with the step's template, parser and reply format. Candidate ``variant`` of a response
    step is asked with the config's seed + variant (its own cache identity). A JSON step sends no seed:
    a server that honours seeds (vLLM, llama.cpp) would repeat an unparseable reply on every retry."""
    assert step.template is not None
    fmt = base.response_format if step.json_reply else "none"
    config = base.with_overrides(
        name=f"{base.name}:{step.name}",
        template=str(TEMPLATES_DIR / step.template),
        prompt_version=f"build/{Path(step.template).stem}",
        parser=parser,
        response_format=fmt,
    )
    seed = None if step.json_reply else (base.seed or 0) + variant
    return dataclasses.replace(config, seed=seed)


def template_digest(name: str) -> str:
    """``name@sha256[:12]`` of a step template: a rerun with another prompt text is refused (manifest)."""
    import hashlib

    return f"{name}@{hashlib.sha256((TEMPLATES_DIR / name).read_bytes()).hexdigest()[:12]}"


def engine_request(ask: Ask) -> JudgeRequest:
    """A step's ask as an engine request. A generation ask has no ``response`` field, which the engine reads
    as "nothing to judge" (only a judged response that is present and empty fails without a call)."""
    return JudgeRequest(key=ask.key, fields=dict(ask.fields), n_expected=ask.n_expected)


def generator_summary(config: JudgeConfig) -> dict[str, object]:
    """What identifies the generator's samples (no endpoint, no key): recorded in the manifest."""
    return {
        "name": config.name,
        "model": config.model,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "max_tokens": config.max_tokens,
        "seed": config.seed,
        "response_format": config.response_format,
        "smoke_test": config.smoke_test,
    }
