"""The judge session, the one owner of what a run judges with, and judging a benchmark's documents.

A :class:`JudgeSession` holds, for one run, the resolved judge configs (one per benchmark judge role,
with the user's overrides of endpoint, model and concurrency applied), the SQLite cache, the embedded
smoke-test judge when no endpoint is configured, and the money spent against the budget. Every
judgement of a run goes through :meth:`JudgeSession.judge`; a setting reaches the engine only inside the
config the session resolved (concurrency included: the engine reads ``config.concurrency`` and nothing
else). Where a session comes from:

- ``iopo-eval run`` / ``judge`` build one from their flags (``commands.common.session_from_args``; an
  unset ``--judge`` falls back to ``$IOPO_EVAL_JUDGE``), and hand it to lm-eval's filter as an argument
  (``lm_eval_glue.load_tasks`` binds it to the filters of the tasks it loads);
- a plain ``lm_eval`` run has no flags: its filters share :func:`environment_session`, built once per
  process from ``$IOPO_EVAL_JUDGE``, ``$IOPO_EVAL_JUDGE_BUDGET_USD``, ``$IOPO_EVAL_JUDGE_CONCURRENCY``,
  ``$IOPO_EVAL_JUDGE_MODE``, ``$IOPO_EVAL_JUDGE_BATCH_FALLBACK`` and ``$IOPO_EVAL_JUDGE_BATCH_WAIT_S``
  (endpoint and model overrides: ``$IOPO_EVAL_JUDGE_BASE_URL`` / ``_MODEL``, read by ``resolve_judge_config``).

:func:`judge_documents_many` judges the documents of several benchmarks (or tasks) in one engine call:
one pool in which each distinct judge config keeps its own concurrency, rate limit and mode. ``iopo-eval
run`` reaches it through ``judge_pool.RunJudgePool``; ``iopo-eval judge`` calls it directly.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from iopo_eval.benchmark import Benchmark, Doc, Judged, JudgeRole
from iopo_eval.judges.config import ENV_JUDGE, JudgeConfig, JudgeConfigError, resolve_judge_config
from iopo_eval.judges.engine import DryRunEstimate, judge_batch, merge_estimates
from iopo_eval.judges.settings import BATCH_FALLBACKS, JUDGE_MODES, BatchFallback, JudgeMode
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import ItemRecord, json_line
from iopo_eval.text import strip_reasoning

if TYPE_CHECKING:
    from iopo_eval.embedded import EmbeddedJudgeServer
    from iopo_eval.judges.cache import JudgeCache
    from iopo_eval.judges.preview import PromptLog

log = logging.getLogger(__name__)

BUDGET_ENV = "IOPO_EVAL_JUDGE_BUDGET_USD"
CONCURRENCY_ENV = "IOPO_EVAL_JUDGE_CONCURRENCY"
MODE_ENV = "IOPO_EVAL_JUDGE_MODE"  # sync | batch
BATCH_FALLBACK_ENV = "IOPO_EVAL_JUDGE_BATCH_FALLBACK"  # batch | sync
BATCH_WAIT_ENV = "IOPO_EVAL_JUDGE_BATCH_WAIT_S"  # seconds to wait for batches (unset: until done)


@dataclass(frozen=True)
class JudgeModes:
    """How a run asks its judges, when the user says: sync or batch, batch mode's fallback and wait."""

    mode: JudgeMode | None = None
    batch_fallback: BatchFallback | None = None
    batch_wait_s: float | None = None

    @classmethod
    def from_environment(cls) -> JudgeModes:
        """``$IOPO_EVAL_JUDGE_MODE``, ``$IOPO_EVAL_JUDGE_BATCH_FALLBACK``, ``$IOPO_EVAL_JUDGE_BATCH_WAIT_S``."""
        wait = os.environ.get(BATCH_WAIT_ENV) or None
        try:
            seconds = None if wait is None else float(wait)
        except ValueError:
            seconds = -1.0
        if seconds is not None and not seconds >= 0:
            raise JudgeConfigError(f"${BATCH_WAIT_ENV}: {wait!r} is not a number of seconds >= 0")
        return cls(
            mode=_choice(MODE_ENV, JUDGE_MODES),  # type: ignore[arg-type]
            batch_fallback=_choice(BATCH_FALLBACK_ENV, BATCH_FALLBACKS),  # type: ignore[arg-type]
            batch_wait_s=seconds,
        )


@dataclass
class JudgeSession:
    """Everything the judged benchmarks of one run need to judge their items."""

    # "CONFIG" for every judged benchmark, or "KEY=CONFIG,KEY=CONFIG" where KEY is a benchmark (its first
    # judge) or "<benchmark>_<role>" (e.g. complexbench_extract); None: each judge's bundled default.
    config_name: str | None = None
    base_url: str | None = None
    model: str | None = None
    cache_path: Path | None = None
    concurrency: int | None = None  # None: each config's own
    budget_usd: float | None = None
    mode: JudgeMode | None = None  # None: each config's own (sync unless the config says batch)
    batch_fallback: BatchFallback | None = None  # None: the config's batch.fallback
    batch_wait_s: float | None = None  # None: the config's batch.max_wait_s
    dry_run: bool = False
    progress: bool = True
    allow_embedded: bool = True  # start the embedded smoke-test judge when no endpoint is configured
    generations_dir: Path | None = None  # where responses are saved before judging (a judge crash loses none)
    save_prompts: Path | None = None  # --save-prompts: every judge request's exact messages, as JSONL
    spent_usd: float = 0.0
    estimates: list[DryRunEstimate] = field(default_factory=list)
    _stack: ExitStack = field(default_factory=ExitStack)
    _configs: dict[str, JudgeConfig] = field(default_factory=dict)
    _cache: JudgeCache | None = None
    _embedded: EmbeddedJudgeServer | None = None
    _prompt_log: PromptLog | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environment(cls) -> JudgeSession:
        """The session of a plain ``lm_eval`` run, whose only settings are environment variables."""
        budget = os.environ.get(BUDGET_ENV)
        concurrency = os.environ.get(CONCURRENCY_ENV)
        try:
            session = cls(
                config_name=os.environ.get(ENV_JUDGE) or None,
                budget_usd=float(budget) if budget else None,
                concurrency=int(concurrency) if concurrency else None,
            )
        except ValueError as exc:
            raise JudgeConfigError(f"${BUDGET_ENV} / ${CONCURRENCY_ENV}: not a number ({exc})") from exc
        modes = JudgeModes.from_environment()
        session.mode, session.batch_fallback = modes.mode, modes.batch_fallback
        session.batch_wait_s = modes.batch_wait_s
        return session

    # ------------------------------------------------------------ configuration

    def config_name_for(self, key: str, default_name: str) -> str:
        """The config named for judge ``key`` (``--judge KEY=CONFIG``), a config named for all, or the default."""
        spec = self.config_name or ""
        if not spec:
            return default_name
        if "=" not in spec:
            return spec
        pairs = dict(part.split("=", 1) for part in spec.split(",") if part.strip())
        return pairs.get(key, default_name)

    def config(self, bench: Benchmark[Any], role: JudgeRole) -> JudgeConfig:
        """The judge config of one of a benchmark's judges, resolved once per run."""
        key = bench.judge_key(role)
        with self._lock:
            if key in self._configs:
                return self._configs[key]
            config = self.calling(
                resolve_judge_config(
                    self.config_name_for(key, role.default_config), base_url=self.base_url, model=self.model
                )
            )
            if _needs_embedded(config):
                if not self.allow_embedded:
                    raise JudgeConfigError(
                        f"judge {config.name!r} needs ${config.api_key_env}, which is not set, and no "
                        "--judge-base-url was given (--no-embedded-judge forbids the smoke-test judge)"
                    )
                config = self._embedded_config(config)
            self._configs[key] = config
            return config

    def calling(self, config: JudgeConfig) -> JudgeConfig:
        """``config`` with this session's choice of mode (``--judge-mode``, ``--batch-fallback``,
        ``--batch-wait``); none of them changes the identity hash."""
        batch: dict[str, Any] = {}
        if self.batch_fallback is not None:
            batch["fallback"] = self.batch_fallback
        if self.batch_wait_s is not None:
            batch["max_wait_s"] = self.batch_wait_s
        return config.with_overrides(
            mode=self.mode, batch=config.batch.model_copy(update=batch) if batch else None
        )

    def _embedded_config(self, wanted: JudgeConfig) -> JudgeConfig:
        from iopo_eval import embedded

        if wanted.mode == "batch":
            log.warning("the embedded smoke-test judge has no batch API: it is asked synchronously")

        if self._embedded is None:
            log.warning(
                "No judge endpoint configured (%s is not set): starting the embedded SmolLM2-135M judge. "
                "Its verdicts are a SMOKE TEST, not paper-comparable numbers.",
                wanted.api_key_env,
            )
            self._embedded = self._stack.enter_context(embedded.EmbeddedJudgeServer())
        return embedded.embedded_judge_config(wanted, self._embedded)

    def cache(self) -> JudgeCache:
        from iopo_eval.judges.cache import JudgeCache
        from iopo_eval.paths import judge_cache_path

        with self._lock:
            if self._cache is None:
                self._cache = JudgeCache(self.cache_path or judge_cache_path())
            return self._cache

    # ------------------------------------------------------------ judging

    def judge_groups(
        self, groups: Sequence[tuple[Benchmark[Any], Sequence[JudgeRequest]]]
    ) -> list[list[JudgeOutcome]]:
        """The requests of several benchmarks in one engine call (one pool): each request goes to its
        benchmark's judge for the role it names, and benchmarks whose judges resolve to the same config
        share that config's workers (its ``concurrency``), as one judge should. Outcomes per group, in
        request order."""
        configs: dict[str, JudgeConfig] = {}
        names: dict[tuple[str, str], str] = {}  # (benchmark, role) -> the name of its config here
        routed: list[JudgeRequest] = []
        for bench, requests in groups:
            for request in requests:
                role = bench.judge_role(request.judge) if request.judge else bench.judges[0]
                name = names.get((bench.name, role.name))
                if name is None:
                    config = self.config(bench, role)
                    # One name per distinct config: equal configs of two benchmarks are one pool.
                    name = next((n for n, c in configs.items() if c == config), bench.judge_key(role))
                    configs.setdefault(name, config)
                    names[(bench.name, role.name)] = name
                routed.append(dataclasses.replace(request, judge=name))
        outcomes = self.judge_with(configs, routed)
        out, pos = [], 0
        for _, requests in groups:
            out.append(outcomes[pos : pos + len(requests)])
            pos += len(requests)
        return out

    def judge_with(
        self, configs: Mapping[str, JudgeConfig], requests: Sequence[JudgeRequest]
    ) -> list[JudgeOutcome]:
        """Any LLM calls, through this session's cache, budget and concurrency: each request goes to the
        config its ``judge`` names (the first when empty). For callers with configs of their own, such as
        the training-data builder."""
        if not requests:
            return []
        if self.concurrency is not None:
            configs = {
                name: cfg.with_overrides(concurrency=self.concurrency) for name, cfg in configs.items()
            }
        budget = None if self.budget_usd is None else max(0.0, self.budget_usd - self.spent_usd)
        run = judge_batch(
            list(requests),
            dict(configs),
            self.cache(),
            budget_usd=budget,
            dry_run=self.dry_run,
            progress=self.progress,
        )
        self.spent_usd += run.usd
        if run.estimate is not None:
            self.estimates.append(run.estimate)
        return run.outcomes

    def estimate_text(self) -> str:
        """The dry run's estimate of what judging the uncached items would cost, in both modes."""
        e = merge_estimates(self.estimates)
        if e is None or not e.items:
            return "dry run: nothing left to judge (every judgement is cached)"
        return (
            f"dry run: {e.items} judgements to make, about {e.prompt_tokens} prompt + {e.completion_tokens} "
            f"completion tokens, estimated ${e.usd:.4f} as configured (at most ${e.usd_upper_bound:.4f} if "
            f"every reply used max_tokens; tokens counted by {e.method})\n"
            f"  synchronous mode: ${e.sync_usd:.4f} (at most ${e.sync_usd_upper_bound:.4f})\n"
            f"  batch mode (--judge-mode batch; answers within 24 h): ${e.batch_usd:.4f} (at most "
            f"${e.batch_usd_upper_bound:.4f}), {e.batches} batch file(s) of {e.batch_bytes / 1e6:.1f} MB in all"
        )

    def describe(self, bench: Benchmark[Any]) -> dict[str, dict[str, Any]]:
        """Public description of each of a benchmark's judges, by role (no key, no secrets)."""
        return {role.name: describe_config(self.config(bench, role)) for role in bench.judges}

    def log_prompts(
        self, bench: Benchmark[Any], records: Sequence[ItemRecord], requests: Sequence[Sequence[JudgeRequest]]
    ) -> None:
        """Append the exact messages of every request to the ``save_prompts`` file (item by item)."""
        if self.save_prompts is None:
            return
        from iopo_eval.judges.preview import PromptLog

        with self._lock:
            if self._prompt_log is None:
                self._prompt_log = PromptLog(self.save_prompts)
        log_file = self._prompt_log
        for record, asked in zip(records, requests, strict=True):
            for role in bench.judges:
                mine = [r for r in asked if (r.judge or bench.judges[0].name) == role.name]
                if mine:
                    log_file.write(
                        benchmark=bench.name,
                        task=record.task,
                        item_id=record.item_id,
                        role=role.name,
                        config=self.config(bench, role),
                        requests=mine,
                    )

    def setenv_until_closed(self, name: str, value: str) -> None:
        """Set an environment variable that this run's scoring reads, and restore it when the session
        closes, so that a later run in the same process does not inherit it."""
        previous = os.environ.get(name)
        os.environ[name] = value
        self._stack.callback(_restore_env, name, previous)

    def close(self) -> None:
        if self._prompt_log is not None:
            self._prompt_log.close()
            self._prompt_log = None
        if self._cache is not None:
            self._cache.close()
            self._cache = None
        self._stack.close()
        self._embedded = None

    def __enter__(self) -> JudgeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_config(config: JudgeConfig) -> dict[str, Any]:
    """What results files say about a judge: identity and protocol, never a key or credentials."""
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
        "prompt": _prompt_name(config),
        "prompt_kind": prompt_kind(config),
        "parser": config.parser,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "smoke_test": bool(config.smoke_test),
        # The paper's judge (model, prompt, sampling): numbers comparable with the paper's tables.
        "paper_comparable": bool(config.paper_protocol and not config.smoke_test),
    }


def prompt_kind(config: JudgeConfig) -> str:
    """``upstream`` (an upstream evaluator's own prompt), ``hardened`` (the text of one of iopo-eval's
    bundled templates) or ``custom`` (any other template): the prompt half of a result's protocol name."""
    if config.prompt is not None:
        return "upstream"
    return "hardened" if config.template_text in _bundled_templates() else "custom"


@functools.cache
def _bundled_templates() -> frozenset[str]:
    from iopo_eval.judges.config import TEMPLATES_DIR

    return frozenset(p.read_text(encoding="utf-8") for p in TEMPLATES_DIR.glob("*.txt"))


def _prompt_name(config: JudgeConfig) -> str:
    if config.prompt is not None:
        from iopo_eval.judges.upstream_prompt import prompt_ref

        return prompt_ref(config.prompt).describe()
    return f"template:{Path(config.template).name}"


def _choice(variable: str, choices: tuple[str, ...]) -> str | None:
    value = os.environ.get(variable) or None
    if value is not None and value not in choices:
        raise JudgeConfigError(f"${variable}: {value!r} is not one of {', '.join(choices)}")
    return value


def _needs_embedded(config: JudgeConfig) -> bool:
    """No endpoint of one's own and no key for the default (OpenAI) endpoint."""
    return not config.base_url and bool(config.api_key_env) and not os.environ.get(config.api_key_env)


_environment: JudgeSession | None = None
_environment_lock = threading.Lock()


def environment_session() -> JudgeSession:
    """The one session of a plain ``lm_eval`` process, made on first use and closed at exit."""
    global _environment
    with _environment_lock:
        if _environment is None:
            _environment = JudgeSession.from_environment()
            atexit.register(_environment.close)
        return _environment


# ---------------------------------------------------------------- documents -> item records


def judge_documents(
    bench: Benchmark[Any], docs: Sequence[Doc], responses: Sequence[str], session: JudgeSession | None
) -> list[ItemRecord]:
    """The item record of each (document, raw response): every document parsed once, every judge
    request of all of them sent as one batch. A rule-checked benchmark needs no session."""
    return judge_documents_many([(bench, docs, responses)], session)[0]


def judge_documents_many(
    entries: Sequence[tuple[Benchmark[Any], Sequence[Doc], Sequence[str]]], session: JudgeSession | None
) -> list[list[ItemRecord]]:
    """:func:`judge_documents` for several (benchmark, documents, responses) at once: the judge requests
    of all of them go through one engine call (``JudgeSession.judge_groups``), so the judges of different
    benchmarks and tasks work side by side instead of one after another. Records per entry."""
    parsed = [[bench.parse(doc) for doc in docs] for bench, docs, _ in entries]
    cleaned = [[strip_reasoning(r) for r in responses] for _, _, responses in entries]
    asked: list[list[list[JudgeRequest]]] = []  # per entry, per document
    for (bench, docs, responses), items, texts in zip(entries, parsed, cleaned, strict=True):
        if not bench.judged:
            asked.append([])
            continue
        if session is None:
            raise ValueError(f"{bench.name} is judged: judging its documents needs a judge session")
        if session.generations_dir is not None:
            save_generations(session.generations_dir / f"{bench.name}.generations.jsonl", docs, responses)
        asked.append([bench.requests(item, text) for item, text in zip(items, texts, strict=True)])
    groups = [
        (bench, [req for reqs in per_doc for req in reqs])
        for (bench, _, _), per_doc in zip(entries, asked, strict=True)
        if bench.judged
    ]
    answered = iter(session.judge_groups(groups) if session is not None and groups else [])
    out = []
    for (bench, _, responses), items, texts, per_doc in zip(entries, parsed, cleaned, asked, strict=True):
        outcomes = next(answered) if bench.judged else []
        records, pos = [], 0
        for i, (item, raw, text) in enumerate(zip(items, responses, texts, strict=True)):
            n = len(per_doc[i]) if per_doc else 0
            records.append(bench.record(item, Judged(text, raw, outcomes[pos : pos + n])))
            pos += n
        if session is not None and session.save_prompts is not None and bench.judged:
            session.log_prompts(bench, records, per_doc)
        out.append(records)
    return out


def save_generations(path: Path, docs: Sequence[Doc], responses: Sequence[str]) -> None:
    """Append the responses to a JSONL file before judging, so a crash in the judge loses no generation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for doc, response in zip(docs, responses, strict=True):
            doc_id = doc.get("id", doc.get("key", doc.get("idx", doc.get("main_id"))))
            fh.write(json_line({"id": doc_id, "response": response}))


def _restore_env(name: str, previous: str | None) -> None:
    if previous is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = previous
