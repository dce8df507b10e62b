"""One judge pool per run: how ``iopo-eval run`` judges every task's responses together although lm-eval
calls each task's filter in turn.

What lm-eval 0.4.13 does (``lm_eval.evaluator.evaluate``): it builds the requests of every task, runs the
model once per request type over all tasks together, and only then walks the tasks one by one, calling
``task.apply_filters()`` and at once ``process_results`` on each document. So when the first task's
``iopo_judge`` filter runs, every task's generations exist (``task.instances[i].resps``), and each filter
must return its task's judged values before lm-eval moves on. A background pool fed by the filters would
gain nothing: the second filter is not called before the first returns.

So the first filter call judges everything. :func:`iopo_eval.lm_eval_glue.load_tasks` registers each
loaded task whose filter pipeline starts with ``iopo_judge`` here and binds this pool to its filter. On
the first filter call, the pool reads every registered task's documents and responses from its lm-eval
instances, exactly what lm-eval's ``FilterEnsemble`` hands that task's filter, and judges all of them in
one engine call (``judging.judge_documents_many``): one pool in which each distinct judge config keeps
its own ``concurrency``, rate limit and mode (and in batch mode, one set of batches for the whole run
instead of one 24-hour wait per task). Each filter call then takes its task's records, after checking
that the documents and responses it was given are the ones judged; any other call (a task not
registered, a mismatch) judges its own responses as before. Plain ``lm_eval`` has no pool: its filters
judge one task after another through the environment session, with the same results.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iopo_eval.benchmark import Benchmark, Doc
from iopo_eval.benchmarks import get
from iopo_eval.judging import JudgeSession, judge_documents, judge_documents_many
from iopo_eval.results import ItemRecord

log = logging.getLogger(__name__)


def first_text(resps: Any) -> str:
    """The response text the judge filter reads from one instance's ``resps`` (the first one)."""
    first = resps[0] if isinstance(resps, (list, tuple)) and resps else resps
    return first if isinstance(first, str) else ""


@dataclass
class _Judged:
    docs: list[Doc]
    responses: list[str]
    records: list[ItemRecord]


class RunJudgePool:
    """The judged tasks of one run, judged together at the first filter call (see the module docstring)."""

    def __init__(self, session: JudgeSession) -> None:
        self.session = session
        self._tasks: dict[str, tuple[str, Any]] = {}  # task name -> (benchmark name, lm-eval Task)
        self._judged: dict[str, _Judged] | None = None
        self._lock = threading.Lock()

    def add(self, task_name: str, benchmark: str, task: Any) -> None:
        self._tasks[task_name] = (benchmark, task)

    def records(
        self, task_name: str, bench: Benchmark[Any], docs: Sequence[Doc], responses: Sequence[str]
    ) -> list[ItemRecord]:
        """The records of one task's filter call: from the pooled judging when it covered exactly these
        documents and responses, else judged here."""
        with self._lock:
            if self._judged is None:
                self._judged = self._judge_all()
            done = self._judged.pop(task_name, None)
        if done is not None and done.responses == list(responses) and done.docs == list(docs):
            return done.records
        if done is not None:
            log.warning(
                "task %s: its filter saw other responses than the pool judged; judging them again", task_name
            )
        return judge_documents(bench, docs, responses, self.session)

    def _judge_all(self) -> dict[str, _Judged]:
        names, entries = [], []
        for name, (benchmark, task) in self._tasks.items():
            instances = list(getattr(task, "instances", None) or [])
            if not instances or any(not inst.resps for inst in instances):
                continue  # not generated (yet): its own filter call judges it
            docs = [inst.doc for inst in instances]
            names.append(name)
            entries.append((get(benchmark), docs, [first_text(inst.resps) for inst in instances]))
        if not entries:
            return {}
        log.info("judging %s in one pool", ", ".join(names))
        records = judge_documents_many(entries, self.session)
        return {
            name: _Judged(list(docs), list(responses), recs)
            for name, (_, docs, responses), recs in zip(names, entries, records, strict=True)
        }
