"""A judge session: the resolved judge config, its cache, an optional embedded judge server, and the
running totals of one run. ``iopo-eval run`` opens one explicitly; inside a plain ``lm_eval`` run the
filter opens one from the environment on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iopo_eval.judges.types import JudgeOutcome, JudgeRequest

log = logging.getLogger(__name__)

JUDGE_ENV = "IOPO_EVAL_JUDGE"
BUDGET_ENV = "IOPO_EVAL_JUDGE_BUDGET_USD"
CONCURRENCY_ENV = "IOPO_EVAL_JUDGE_CONCURRENCY"


@dataclass
class JudgeSession:
    """Everything a judged benchmark needs to judge its items, for one run."""

    # "CONFIG" for every judged benchmark, or "bench=CONFIG,bench=CONFIG"; None: each benchmark's default
    # (or $IOPO_EVAL_JUDGE).
    config_name: str | None = None
    base_url: str | None = None
    model: str | None = None
    cache_path: Path | None = None
    concurrency: int | None = None
    budget_usd: float | None = None
    dry_run: bool = False
    progress: bool = True
    allow_embedded: bool = True  # start the embedded smoke-test judge when no endpoint is configured
    generations_dir: Path | None = None  # where responses are saved before judging (a judge crash loses none)
    spent_usd: float = 0.0
    estimates: list[Any] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)
    _configs: dict[str, Any] = field(default_factory=dict)
    _cache: Any = None
    _embedded: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # ------------------------------------------------------------ configuration

    def config_name_for(self, benchmark: str, default_name: str) -> str:
        spec = self.config_name or os.environ.get(JUDGE_ENV) or ""
        if not spec:
            return default_name
        if "=" not in spec:
            return spec
        pairs = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
        return pairs.get(benchmark, default_name)

    def config_for(self, benchmark: str, default_name: str) -> Any:
        """The judge config for a benchmark whose bundled default is ``default_name``."""
        from iopo_eval.judges import JudgeConfigError, resolve_judge_config

        with self._lock:
            if benchmark in self._configs:
                return self._configs[benchmark]
            config = resolve_judge_config(
                self.config_name_for(benchmark, default_name), base_url=self.base_url, model=self.model
            )
            if _needs_embedded(config):
                if not self.allow_embedded:
                    raise JudgeConfigError(
                        f"judge {config.name!r} needs ${config.api_key_env}, which is not set, and no "
                        "--judge-base-url was given (--no-embedded-judge forbids the smoke-test judge)"
                    )
                config = self._embedded_config(config)
            self._configs[benchmark] = config
            return config

    def _embedded_config(self, wanted: Any) -> Any:
        from iopo_eval import embedded

        if self._embedded is None:
            log.warning(
                "No judge endpoint configured (%s is not set): starting the embedded SmolLM2-135M judge. "
                "Its verdicts are a SMOKE TEST, not paper-comparable numbers.",
                wanted.api_key_env,
            )
            self._embedded = self._stack.enter_context(embedded.EmbeddedJudgeServer())
        return embedded.embedded_judge_config(wanted, self._embedded)

    def cache(self) -> Any:
        from iopo_eval.judges import JudgeCache
        from iopo_eval.paths import judge_cache_path

        with self._lock:
            if self._cache is None:
                self._cache = JudgeCache(self.cache_path or judge_cache_path())
            return self._cache

    # ------------------------------------------------------------ judging

    def judge(self, benchmark: str, requests: list[JudgeRequest], default_config: str) -> list[JudgeOutcome]:
        from iopo_eval.judges import judge_batch

        config = self.config_for(benchmark, default_config)
        budget = None if self.budget_usd is None else max(0.0, self.budget_usd - self.spent_usd)
        run = judge_batch(
            requests,
            config,
            self.cache(),
            concurrency=self.concurrency,
            budget_usd=budget,
            dry_run=self.dry_run,
            progress=self.progress,
        )
        self.spent_usd += run.usd
        if self.dry_run:
            self.estimates.append(run)
        return run.outcomes

    def estimate_text(self) -> str:
        """The dry run's estimate of what judging the uncached items would cost."""
        ests = [run.estimate for run in self.estimates if run.estimate is not None]
        if not ests:
            return "dry run: nothing left to judge (every judgement is cached)"
        items = sum(e.items for e in ests)
        prompt = sum(e.prompt_tokens for e in ests)
        completion = sum(e.completion_tokens for e in ests)
        usd = sum(e.usd for e in ests)
        upper = sum(e.usd_upper_bound for e in ests)
        methods = ", ".join(sorted({e.method for e in ests}))
        return (
            f"dry run: {items} judgements to make, about {prompt} prompt + {completion} completion tokens, "
            f"estimated ${usd:.4f} (at most ${upper:.4f} if every reply used max_tokens; tokens counted by {methods})"
        )

    def describe(self, benchmark: str, default_config: str) -> dict[str, Any]:
        """Public description of the judge for results files (no key, no secrets)."""
        return describe_config(self.config_for(benchmark, default_config))

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._stack.close()
        self._embedded = None

    def __enter__(self) -> JudgeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_config(config: Any) -> dict[str, Any]:
    """What results files say about a judge: identity and protocol, never a key or credentials."""
    from urllib.parse import urlsplit

    endpoint = "https://api.openai.com/v1"
    host = "api.openai.com"
    if config.base_url:
        parts = urlsplit(config.base_url)
        host = str(parts.hostname) + (f":{parts.port}" if parts.port else "")
        endpoint = f"{parts.scheme}://{host}{parts.path}"
    return {
        "name": config.name,
        "model": config.model,
        "endpoint": endpoint,
        "endpoint_host": host,
        "identity_hash": config.identity_hash(),
        "prompt_version": config.prompt_version,
        "template": str(config.template),
        "parser": config.parser,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "smoke_test": bool(config.smoke_test),
        # The paper's judge (model, prompt, sampling): numbers comparable with the paper's tables.
        "paper_comparable": bool(config.paper_protocol and not config.smoke_test),
    }


def _needs_embedded(config: Any) -> bool:
    """No endpoint of one's own and no key for the default (OpenAI) endpoint."""
    return not config.base_url and bool(config.api_key_env) and not os.environ.get(config.api_key_env)


_active: JudgeSession | None = None


def set_active_session(session: JudgeSession | None) -> None:
    global _active
    _active = session


def active_session() -> JudgeSession:
    """The session of the current run; inside plain ``lm_eval`` one is built from the environment."""
    global _active
    if _active is None:
        budget = os.environ.get(BUDGET_ENV)
        conc = os.environ.get(CONCURRENCY_ENV)
        _active = JudgeSession(
            budget_usd=float(budget) if budget else None,
            concurrency=int(conc) if conc else None,
        )
        atexit.register(_active.close)
    return _active
