"""Running a build: seeds in, steps one after the other over chunks of items, state after every chunk,
outputs and the report at the end.

Paying once: every reply is committed to the engine's cache the moment it arrives, and every finished
item is appended to its step's state file after each chunk. A killed build therefore loses at most the
calls in flight; on the rerun, finished items are skipped and replies that arrived before the kill are
cache hits. An item whose calls failed after the engine's retries (or were not made because of
``--budget``) is not recorded: it *fails* this run, the run ends with exit code 3, and a rerun asks
again, paying only for what is missing.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from filelock import FileLock, Timeout

from iopo_eval.judges.cache import JudgeCache
from iopo_eval.judges.config import JudgeConfig
from iopo_eval.judges.engine import JudgeRun, judge_batch
from iopo_eval.judges.parse import JudgeParseError
from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.training.databuild import state as st
from iopo_eval.training.databuild.decontam import DEFAULT_N, EvalIndex, build_index
from iopo_eval.training.databuild.distribution import CountDistribution, draw_dimensions, parse_distribution
from iopo_eval.training.databuild.errors import BuildError
from iopo_eval.training.databuild.items import BuildItem
from iopo_eval.training.databuild.llm import engine_request, generator_summary, step_config, template_digest
from iopo_eval.training.databuild.parsers import taxonomy_parsers
from iopo_eval.training.databuild.seeds import in_shard, read_seeds
from iopo_eval.training.databuild.steps import STEPS, Ask, Ctx, Result, Step
from iopo_eval.training.databuild.taxonomy import Taxonomy, load_taxonomy, taxonomy_to_yaml
from iopo_eval.training.eval_guard import EvaluationDataError, refuse_evaluation_file

log = logging.getLogger(__name__)
BUILDER_VERSION = "build-data-v1"


@dataclass
class BuildSettings:
    seeds: Path
    out: Path
    generator: JudgeConfig
    judge: JudgeConfig
    field: str = "instruction"
    limit: int | None = None
    shard: tuple[int, int] | None = None
    taxonomy_file: Path | None = None
    distribution: str = "paper"
    build_seed: int = 0
    candidates: int = 4
    pass_score: float = 10.0
    remove_share: float = 0.0
    ngram: int = DEFAULT_N
    skip_decontamination: tuple[str, ...] = ()
    cache: Path | None = None  # default: OUT/cache.sqlite
    concurrency: int | None = None
    budget_usd: float | None = None
    chunk_size: int = 1024

    def validate(self) -> None:
        if self.candidates < 1:
            raise BuildError(f"--candidates must be at least 1, got {self.candidates}")
        if not 0 < self.pass_score <= 10:
            raise BuildError(f"--pass-score must be in (0, 10], got {self.pass_score}")
        if not 0 <= self.remove_share <= 1:
            raise BuildError(f"--remove-share must be between 0 and 1, got {self.remove_share}")
        if self.chunk_size < 1:
            raise BuildError(f"--chunk-size must be at least 1, got {self.chunk_size}")
        if self.limit is not None and self.limit < 1:
            raise BuildError(f"--limit must be at least 1, got {self.limit}")
        if self.budget_usd is not None and self.budget_usd < 0:
            raise BuildError(f"--budget must be >= 0, got {self.budget_usd}")


@dataclass
class StepLedger:
    """What one step cost in one invocation."""

    requests: int = 0
    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def add(self, run: JudgeRun) -> None:
        self.requests += len(run.outcomes)
        self.calls += run.calls
        self.cache_hits += run.cache_hits
        self.prompt_tokens += run.prompt_tokens
        self.completion_tokens += run.completion_tokens
        self.usd += run.usd
        for kind, n in run.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + n


@dataclass
class Prepared:
    """Everything a build needs before its first call (shared by the build and the dry run)."""

    taxonomy: Taxonomy
    distribution: CountDistribution
    ctx: Ctx
    items: list[BuildItem]
    seeds_rows: int
    seeds_duplicates: int
    seeds_other_shards: int
    index: EvalIndex
    manifest: dict[str, Any]


def prepare(settings: BuildSettings) -> Prepared:
    settings.validate()
    try:
        refuse_evaluation_file(settings.seeds) if settings.seeds.is_file() else None
    except EvaluationDataError as exc:
        raise BuildError(str(exc)) from exc
    seed_file = read_seeds(settings.seeds, settings.field)
    seeds = seed_file.seeds
    other = 0
    if settings.shard is not None:
        kept = [s for s in seeds if in_shard(s.id, settings.shard)]
        other = len(seeds) - len(kept)
        seeds = kept
    if settings.limit is not None:
        seeds = seeds[: settings.limit]
    taxonomy = load_taxonomy(settings.taxonomy_file)
    distribution = parse_distribution(settings.distribution)
    items = []
    for seed in seeds:
        n = distribution.draw(settings.build_seed, seed.id)
        dims = draw_dimensions(taxonomy, n, settings.build_seed, seed.id)
        items.append(BuildItem(seed.id, seed.instruction, seed.fields, len(dims), dims))
    index = build_index(settings.ngram, settings.skip_decontamination)
    ctx = Ctx(
        taxonomy=taxonomy,
        parsers=taxonomy_parsers(taxonomy),
        candidates=settings.candidates,
        pass_score=settings.pass_score,
        remove_share=settings.remove_share,
        build_seed=settings.build_seed,
        contamination=index.check,
    )
    from iopo_eval.data.store import sha256_of

    manifest = {
        "builder": BUILDER_VERSION,
        "seeds_sha256": sha256_of(settings.seeds),
        "seeds_field": settings.field,
        "limit": settings.limit,
        "shard": list(settings.shard) if settings.shard else None,
        "taxonomy": {"version": taxonomy.version, "fingerprint": taxonomy.fingerprint()},
        "distribution": {
            "name": distribution.name,
            "weights": {str(k): v for k, v in distribution.weights.items()},
        },
        "build_seed": settings.build_seed,
        "candidates": settings.candidates,
        "pass_score": settings.pass_score,
        "remove_share": settings.remove_share,
        "decontamination": {"ngram": settings.ngram, "skipped": sorted(settings.skip_decontamination)},
        "generator": generator_summary(settings.generator),
        "judge": {**settings.judge.summary(), "temperature": settings.judge.temperature},
        "templates": {s.name: template_digest(s.template) for s in STEPS if s.template},
        "steps": [s.name for s in STEPS],
    }
    return Prepared(
        taxonomy, distribution, ctx, items, seed_file.rows, seed_file.duplicates, other, index, manifest
    )


def _chunks(items: list[BuildItem], size: int) -> Iterator[list[BuildItem]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Runner:
    def __init__(self, settings: BuildSettings, prepared: Prepared, cache: JudgeCache) -> None:
        self.settings = settings
        self.prepared = prepared
        self.cache = cache
        self.spent = 0.0
        self.stopped: str | None = None  # why no further call is made in this run

    def _remaining(self) -> float | None:
        if self.settings.budget_usd is None:
            return None
        return max(0.0, self.settings.budget_usd - self.spent)

    def _config(self, step: Step, variant: int) -> JudgeConfig:
        if step.role == "judge":
            return self.settings.judge
        return step_config(self.settings.generator, step, self.prepared.ctx.parsers[step.name], variant)

    def run_chunk(
        self, step: Step, chunk: list[BuildItem], ledger: StepLedger
    ) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """Records of the items this chunk finished, and item id -> error kind for those that failed."""
        ctx = self.prepared.ctx
        asks: dict[str, list[Ask]] = {item.id: step.requests(item, ctx) for item in chunk}
        outcomes: dict[str, list[JudgeOutcome | None]] = {k: [None] * len(v) for k, v in asks.items()}
        variants = sorted({a.variant for v in asks.values() for a in v})
        for variant in variants:
            entries = [
                (iid, i, a) for iid, v in asks.items() for i, a in enumerate(v) if a.variant == variant
            ]
            run = judge_batch(
                [engine_request(a) for _, _, a in entries],
                self._config(step, variant).with_overrides(concurrency=self.settings.concurrency),
                self.cache,
                budget_usd=self._remaining(),
                progress=False,
            )
            ledger.add(run)
            self.spent += run.usd
            for (iid, i, _), outcome in zip(entries, run.outcomes, strict=True):
                outcomes[iid][i] = outcome
            if run.failures.get("budget_exhausted"):
                self.stopped = "budget"
        records: list[dict[str, Any]] = []
        failed: dict[str, str] = {}
        for item in chunk:
            # every slot is filled: each ask belongs to exactly one variant, and zip(strict=True) above
            outs = cast(list[JudgeOutcome], outcomes[item.id])
            bad = next((o for o in outs if o.status != "ok"), None)
            if bad is not None:
                failed[item.id] = bad.error_kind or "not_asked"
                continue
            try:
                result = step.apply(item, outs, ctx)
            except JudgeParseError as exc:  # a cached reply that no longer parses: ask again next run
                failed[item.id] = exc.error_kind
                continue
            records.append(_record(item.id, result))
        return records, failed

    def run(self) -> dict[str, Any]:
        out = self.settings.out
        items = self.prepared.items
        alive = list(items)
        trails: dict[str, dict[str, Any]] = {item.id: {} for item in items}
        run_steps: dict[str, dict[str, Any]] = {}
        for step in STEPS:
            state = st.StateFile(out / "state" / f"{step.name}.jsonl")
            records = state.load()
            todo = [item for item in alive if item.id not in records]
            ledger = StepLedger()
            failed: dict[str, str] = {}
            started = time.perf_counter()
            for chunk in _chunks(todo, self.settings.chunk_size) if self.stopped is None else ():
                new, bad = self.run_chunk(step, chunk, ledger)
                state.append(new)
                failed.update(bad)
                if self.stopped is not None:
                    break
            ledger.elapsed_s = time.perf_counter() - started
            survivors = []
            for item in alive:
                record = state.records.get(item.id)
                if record is None:
                    trails[item.id][step.name] = (
                        {"status": "failed", "reason": failed[item.id]}
                        if item.id in failed
                        else {"status": "pending"}
                    )
                    continue
                item.update(record.get("delta") or {})
                trails[item.id][step.name] = {
                    k: record[k] for k in ("status", "reason", "stats") if record.get(k)
                }
                if record["status"] == "kept":
                    survivors.append(item)
            counts = Counter(t[step.name]["status"] for t in trails.values() if step.name in t)
            log.info(
                "%-13s %5d in, %5d kept, %4d dropped, %4d failed | %d calls, %d cache hits, $%.4f",
                step.name, len(alive), counts["kept"], counts["dropped"], counts["failed"],
                ledger.calls, ledger.cache_hits, ledger.usd,
            )  # fmt: skip
            run_steps[step.name] = asdict(ledger)
            alive = survivors
        return {"steps": run_steps, "stopped": self.stopped, "trails": trails}


def _record(item_id: str, result: Result) -> dict[str, Any]:
    record: dict[str, Any] = {"id": item_id, "status": "dropped" if result.drop else "kept"}
    if result.drop:
        record["reason"] = result.drop
    if result.delta:
        record["delta"] = result.delta
    if result.stats:
        record["stats"] = {k: v for k, v in result.stats.items() if v}
    return record


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / ".lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BuildError(f"{out}: another build is running in this folder") from None
    try:
        yield
    finally:
        lock.release()


def run_build(settings: BuildSettings) -> tuple[int, dict[str, Any]]:
    """Build (or resume) into ``settings.out``; returns the exit code and the report."""
    from iopo_eval.training.databuild.outputs import write_outputs
    from iopo_eval.training.databuild.report import build_report, write_report

    prepared = prepare(settings)
    with _locked(settings.out):
        st.check_manifest(settings.out / "manifest.json", prepared.manifest)
        (settings.out / "taxonomy.yaml").write_text(taxonomy_to_yaml(prepared.taxonomy), encoding="utf-8")
        cache_path = settings.cache or settings.out / "cache.sqlite"
        started = time.time()
        with JudgeCache(cache_path) as cache:
            result = Runner(settings, prepared, cache).run()
        run_line = {
            "started_at": started,
            "elapsed_s": time.time() - started,
            "stopped": result["stopped"],
            "steps": result["steps"],
        }
        runs_path = settings.out / "runs.jsonl"
        if runs_path.is_file():
            st.trim_torn_tail(runs_path)
        with runs_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(run_line) + "\n")
        smoke = settings.generator.smoke_test or settings.judge.smoke_test
        counts = write_outputs(
            settings.out, prepared.items, result["trails"], prepared.taxonomy, prepared.ctx, smoke
        )
        report = build_report(
            manifest=prepared.manifest,
            items=prepared.items,
            trails=result["trails"],
            runs=[
                json.loads(line)
                for line in runs_path.read_text(encoding="utf-8").splitlines()
                if line.strip()
            ],
            taxonomy=prepared.taxonomy,
            distribution=prepared.distribution,
            outputs=counts,
            seeds={
                "rows": prepared.seeds_rows,
                "duplicates": prepared.seeds_duplicates,
                "other_shards": prepared.seeds_other_shards,
                "in_build": len(prepared.items),
            },
            decontamination=prepared.index.summary(),
        )
        write_report(settings.out, report, prepared.taxonomy)
    return st.exit_code(result["trails"], result["stopped"]), report
