"""The bridge into lm-eval, the same for every benchmark: the ``iopo_judge`` filter that judges all of a
task's responses at once, the per-document ``process_results``, and the aggregations the task YAMLs name.

lm-eval calls a task's filters once with every response and document, before per-document scoring. That
is where a judged benchmark sends its whole batch to the judge (concurrently, through the cache) and
builds each document's item record (:func:`iopo_eval.judging.judge_documents`). The filtered value of a
document is ``{"record": <item record>, "judges": {role: description}}``: ``process_results`` reads its
metric values from the record, and ``iopo-eval run`` reads the records back from lm-eval's samples, so a
document is parsed once on its way to a result.

The judge session reaches the filter as an argument: :func:`load_tasks` (used by ``iopo-eval run``)
binds the run's session, and the run's judge pool (``judge_pool.RunJudgePool``: every task's requests
judged together at the first filter call; why and how is said there), to the filters of the tasks it
loads. A filter without them (a plain ``lm_eval`` run) judges its own task through the process's
environment session (:func:`iopo_eval.judging.environment_session`).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import Any

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

from iopo_eval.benchmarks import get
from iopo_eval.judge_pool import RunJudgePool, first_text
from iopo_eval.judging import JudgeSession, environment_session, judge_documents
from iopo_eval.results import ItemRecord

log = logging.getLogger(__name__)


@register_filter("iopo_judge")
class JudgeFilter(Filter):
    """``filter: [{function: iopo_judge, benchmark: trace}]`` in a task's filter_list."""

    def __init__(
        self,
        benchmark: str,
        session: JudgeSession | None = None,
        pool: RunJudgePool | None = None,
        task: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.benchmark = benchmark
        self.session = session
        self.pool = pool
        self.task = task

    def apply(self, resps: Any, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        bench = get(self.benchmark)
        session = self.session or environment_session()
        responses = [first_text(r) for r in resps]
        if self.pool is not None and self.task:
            records = self.pool.records(self.task, bench, list(docs), responses)
        else:
            records = judge_documents(bench, list(docs), responses, session)
        judges = session.describe(bench) if bench.judged else {}
        return [{"record": rec.to_json(), "judges": judges} for rec in records]


def load_tasks(
    task_manager: Any, names: Sequence[str], session: JudgeSession, pool: RunJudgePool | None = None
) -> list[Any]:
    """lm-eval Task objects for ``names``, with ``session`` bound to their ``iopo_judge`` filters; with a
    ``pool``, the tasks whose filter pipeline starts with ``iopo_judge`` are judged together in it."""
    loaded = task_manager.load(list(names))["tasks"]
    tasks = [loaded[name] for name in names]
    for name, task in zip(names, tasks, strict=True):
        for ensemble in getattr(task, "_filters", []):
            steps = list(ensemble.filters)
            pooled = pool if pool is not None and steps and _is_judge(steps[0]) else None
            ensemble.filters = [_bound(step, session, pooled, name) for step in steps]
            if pooled is not None:
                pooled.add(name, steps[0].keywords["benchmark"], task)
    return tasks


def _is_judge(step: Any) -> bool:
    return isinstance(step, functools.partial) and step.func is JudgeFilter and "benchmark" in step.keywords


def _bound(step: Any, session: JudgeSession, pool: RunJudgePool | None, task: str) -> Any:
    if isinstance(step, functools.partial) and step.func is JudgeFilter:
        bound = {"session": session, **({"pool": pool, "task": task} if pool is not None else {})}
        return functools.partial(JudgeFilter, *step.args, **{**step.keywords, **bound})
    return step


# ---------------------------------------------------------------- per-document results and aggregations


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    """A judged document's metric values for lm-eval (``process_results: !function utils.process_results``)."""
    judged = results[0]
    if not isinstance(judged, dict) or "record" not in judged:
        raise TypeError("judged documents must pass through the iopo_judge filter before scoring")
    record = ItemRecord.from_json(judged["record"])
    return get(record.benchmark).lm_eval_values(record)


def mean_judged(values: list[float | None]) -> float:
    """Mean over the documents that count; failed judgements are counted in judge_failures instead."""
    judged = [v for v in values if v is not None]
    return sum(judged) / len(judged) if judged else math.nan


def micro_judged(values: list[list[float] | None]) -> float:
    """Sum of numerators over sum of denominators, over the documents that count (a micro-average)."""
    pairs = [v for v in values if v is not None]
    den = sum(p[1] for p in pairs)
    return sum(p[0] for p in pairs) / den if den else math.nan


def count(values: list[int]) -> int:
    return int(sum(values))
