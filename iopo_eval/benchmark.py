"""The benchmark contract: what a benchmark declares and does, in one typed place.

A benchmark is one instance of a :class:`Benchmark` subclass, listed once in the registry
(:mod:`iopo_eval.benchmarks`). Every consumer reads the registry and nothing else: the CLI (``--tasks``,
``score``, ``judge``), the lm-eval glue (the ``iopo_judge`` filter and ``process_results``), rescoring,
rejudging, the leaderboard (titles, columns, charts) and the test fixtures (``iopo_eval.testing``).

One item travels the same road whichever way it came in (written once, in :mod:`iopo_eval.judging` and
:mod:`iopo_eval.aggregate`)::

    doc ──parse──► item ──requests──► [JudgeRequest] ──session──► [JudgeOutcome] ──record──► ItemRecord
    [ItemRecord] ──aggregate.build_result──► BenchmarkResult (metrics, breakdowns, failures, cost, protocol)

A benchmark module only says what is particular to it: how its documents are read, what its judges are
asked, how a judged item becomes metric values, and which of those values lm-eval reports. Adding a
benchmark is a task folder, a module with one subclass, and one line in the registry
(``docs/adding-a-benchmark.md``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.results import ItemRecord, ItemStatus, Metric, MetricSpec

Doc = dict[str, Any]  # one lm-eval document: plain JSON-able values (Arrow stores it)
ItemT = TypeVar("ItemT")


@dataclass(frozen=True)
class JudgeRole:
    """One kind of question a benchmark asks a judge (ComplexBench: ``yesno`` and ``extract``), with the
    bundled judge config used unless the user names another (``--judge BENCH_ROLE=CONFIG``)."""

    name: str
    default_config: str


@dataclass(frozen=True)
class ChartGroup:
    """A chart on a run's leaderboard page: breakdown metrics whose names start with ``prefixes``."""

    title: str
    prefixes: tuple[str, ...]
    by_value: bool = True  # sort bars by value (long lists) rather than by name


@dataclass(frozen=True)
class LeaderboardColumn:
    """A column of the leaderboard's main table: one metric, with its short header label."""

    metric: str
    label: str


@dataclass(frozen=True)
class Judged:
    """A document's response and the judge outcomes of its requests, in request order (none for a
    rule-checked benchmark). ``response`` is what the judge saw (reasoning blocks removed)."""

    response: str
    raw_response: str
    outcomes: list[JudgeOutcome] = field(default_factory=list)

    @classmethod
    def stored(cls, record: ItemRecord) -> Judged:
        """What a stored item record says was judged, for rescoring without calls."""
        return cls(
            response=record.response,
            raw_response=str(record.extra.get("raw_response", record.response)),
            outcomes=[JudgeOutcome.from_json(o) for o in judgements_of(record)],
        )


def judgements_of(record: ItemRecord) -> list[dict[str, Any]]:
    """The judge outcomes stored on a record: one outcome dict, or ``{"judgements": [...]}`` for a
    benchmark that asks several questions per item."""
    judge = record.judge or {}
    if "judgements" in judge:
        return list(judge["judgements"])
    return [judge] if judge else []


def effective_scores(outcome: JudgeOutcome, n_expected: int) -> list[float] | None:
    """The scores an item is rated on, or None when it has no rating (a judge failure, not judged).

    An empty model response is a failure of the model, not of the judge: the engine does not ask the
    judge, and the item scores 0 on every constraint here (recorded as ``empty_response``), so a model
    cannot raise its rates by answering nothing.
    """
    if outcome.status == "ok" and outcome.scores is not None:
        return list(outcome.scores)
    if outcome.error_kind == "empty_response":
        return [0.0] * n_expected
    return None


def status_of(outcome: JudgeOutcome, scored: bool) -> ItemStatus:
    """An item's status from its (single) judgement: scored, not asked (budget, dry run) or failed."""
    if scored:
        return "ok"
    return "not_judged" if outcome.status == "skipped" else "judge_failed"


class Benchmark(ABC, Generic[ItemT]):
    """A benchmark: its declarations (class attributes) and the few steps that are its own (methods).

    ``ItemT`` is the parsed form of a document (a dataclass of the benchmark's data module)."""

    name: str  # results key, items file stem, ``--tasks`` name
    title: str  # shown on the leaderboard
    tasks: tuple[str, ...]  # lm-eval task names, in the order a run lists them
    metrics: tuple[MetricSpec, ...]  # named metrics; ``headline`` ones are the paper's columns
    scoring_version: str  # bump whenever scoring changes (recorded in every result's protocol)
    breakdown_prefixes: tuple[str, ...] = ()  # item values named "<prefix>..." become metrics too
    judges: tuple[JudgeRole, ...] = ()  # empty: checked by rules, no judge
    columns: tuple[LeaderboardColumn, ...] = ()  # the leaderboard's main table (Table 3 of the paper)
    charts: tuple[ChartGroup, ...] = ()  # run pages; breakdown prefixes not listed get a chart each
    lm_eval_metrics: tuple[str, ...] = ()  # item values lm-eval reports per document ("/" -> "_")
    in_paper: bool = False  # part of ``--tasks paper``
    task_dir: Path | None = None  # the lm-eval task folder, when it is not bundled with iopo-eval

    # ------------------------------------------------------------ declarations derived

    @property
    def judged(self) -> bool:
        return bool(self.judges)

    @property
    def items_file(self) -> str:
        return f"{self.name}.items.jsonl"

    @property
    def headline(self) -> list[str]:
        return [s.name for s in self.metrics if s.headline]

    def judge_role(self, name: str) -> JudgeRole:
        for role in self.judges:
            if role.name == name:
                return role
        raise KeyError(f"{self.name}: no judge role {name!r} (roles: {[r.name for r in self.judges]})")

    def judge_key(self, role: JudgeRole) -> str:
        """The name a user gives this judge with ``--judge KEY=CONFIG``: the benchmark's name for its
        first judge, ``<benchmark>_<role>`` for the others (e.g. ``complexbench_extract``)."""
        return self.name if role == self.judges[0] else f"{self.name}_{role.name}"

    def protocol_judge_prefix(self, role: JudgeRole) -> str:
        """Protocol keys of a judge: ``judge_identity`` for the first, ``<role>_judge_identity`` else."""
        return "judge" if role == self.judges[0] else f"{role.name}_judge"

    # ------------------------------------------------------------ documents

    @abstractmethod
    def documents(self, mirror: str | None = None) -> dict[str, tuple[str, Doc]]:
        """Every document by item id, with the lm-eval task it belongs to."""

    @abstractmethod
    def parse(self, doc: Doc) -> ItemT:
        """A document as the benchmark's item (validated; bad input raises ``DataError``)."""

    # ------------------------------------------------------------ judging and scoring

    def requests(self, item: ItemT, response: str) -> list[JudgeRequest]:
        """What the judges are asked about one response; a request's ``judge`` names a role (the first
        role when empty). A rule-checked benchmark asks nothing."""
        return []

    @abstractmethod
    def record(self, item: ItemT, judged: Judged) -> ItemRecord:
        """The item record of one judged (or rule-checked) response."""

    def rescore(self, item: ItemT, stored: ItemRecord) -> ItemRecord:
        """The record recomputed from a stored one with the current code (no judge calls)."""
        return self.record(item, Judged.stored(stored))

    # ------------------------------------------------------------ results

    def protocol(self, records: Sequence[ItemRecord], docs: Sequence[Doc]) -> dict[str, Any]:
        """What the numbers were measured under, beyond the scoring version and the judges (which
        :func:`iopo_eval.aggregate.build_result` adds): data digest, rule notes, ..."""
        return {}

    def extra_metrics(self, records: Sequence[ItemRecord]) -> dict[str, Metric]:
        """Metrics that are not a sum over items (ComplexBench's group-level coherent test)."""
        return {}

    def lm_eval_values(self, record: ItemRecord) -> dict[str, Any]:
        """One document's values for lm-eval's metric_list (None where the item does not count)."""
        out: dict[str, Any] = {
            name.replace("/", "_"): record.values.get(name) for name in self.lm_eval_metrics
        }
        if self.judged:
            out["judge_failures"] = int(record.status != "ok")
        return out

    def task_versions(self) -> dict[str, Any]:
        """``metadata.version`` of each task, read from the task YAML (no lm-eval index needed)."""
        return task_versions(self.task_folder(), self.tasks)

    def task_folder(self) -> Path:
        if self.task_dir is not None:
            return self.task_dir
        import lm_eval.tasks.iopo_eval as bundled

        return Path(bundled.__file__).parent

    def __repr__(self) -> str:
        return f"<benchmark {self.name}: {', '.join(self.tasks)}>"


def task_versions(folder: Path, tasks: Sequence[str]) -> dict[str, Any]:
    return {task: version for task, version in _versions_in(folder).items() if task in tasks}


def _versions_in(folder: Path) -> Mapping[str, Any]:
    versions: dict[str, Any] = {}
    for path in sorted(folder.rglob("*.yaml")):
        try:
            cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_IgnoreTagsLoader)
        except yaml.YAMLError:
            continue
        if not isinstance(cfg, dict) or not isinstance(cfg.get("task"), str):
            continue
        meta = cfg.get("metadata") or {}
        if "version" not in meta and cfg.get("include"):
            inc = yaml.load(
                (path.parent / cfg["include"]).read_text(encoding="utf-8"), Loader=_IgnoreTagsLoader
            )
            meta = (inc or {}).get("metadata") or {}
        versions[cfg["task"]] = meta.get("version")
    return versions


class _IgnoreTagsLoader(yaml.SafeLoader):
    """Reads task YAML without importing anything: lm-eval's ``!function`` tags load as None."""


_IgnoreTagsLoader.add_multi_constructor("!", lambda loader, suffix, node: None)
