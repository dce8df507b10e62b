"""The benchmarks a run can include: their lm-eval tasks and their scoring module.

A scoring module provides ``from_samples(samples_by_task, task_versions, judge)`` (lm-eval's logged
samples -> item records and a BenchmarkResult) and ``rescore(records, task_versions, judge, mirror)``
(recompute from stored judgements); judged ones also ``docs_by_id(mirror)`` (id -> (task, lm-eval doc)).
Modules are imported lazily so that a run imports only what it uses.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    tasks: tuple[str, ...]
    module: str  # scoring module: from_samples(), rescore(), docs_by_id(), result_for()
    judged: bool

    def scorer(self) -> Any:
        return importlib.import_module(self.module)


BENCHMARKS: dict[str, BenchmarkSpec] = {
    "trace": BenchmarkSpec("trace", ("trace_ifs", "trace_ifm"), "iopo_eval.scoring.trace", True),
    "cfbench": BenchmarkSpec("cfbench", ("cfbench",), "iopo_eval.scoring.cfbench", True),
    "ifeval": BenchmarkSpec("ifeval", ("ifeval_iopo",), "iopo_eval.scoring.ifeval", False),
    "complexbench": BenchmarkSpec("complexbench", ("complexbench",), "iopo_eval.scoring.complexbench", True),
    "complexbench_en": BenchmarkSpec(
        "complexbench_en", ("complexbench_en",), "iopo_eval.scoring.complexbench", True
    ),
}

# Names accepted by `iopo-eval run --tasks`: a benchmark, "paper" (all four), or a single task.
PAPER = ("trace", "ifeval", "cfbench", "complexbench")


def expand_tasks(names: list[str]) -> dict[str, list[str]]:
    """Map requested names to {benchmark: [lm-eval tasks]} in a stable order."""
    task_to_bench = {t: b.name for b in BENCHMARKS.values() for t in b.tasks}
    out: dict[str, list[str]] = {}
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            if name == "paper":
                missing = [b for b in PAPER if b not in BENCHMARKS]
                if missing:
                    raise ValueError(f"'paper' needs benchmarks that this install lacks: {', '.join(missing)}")
                for bench in PAPER:
                    out.setdefault(bench, list(BENCHMARKS[bench].tasks))
            elif name in BENCHMARKS:
                out.setdefault(name, list(BENCHMARKS[name].tasks))
            elif name in task_to_bench:
                tasks = out.setdefault(task_to_bench[name], [])
                if name not in tasks:
                    tasks.append(name)
            else:
                import difflib

                known = [*BENCHMARKS, *task_to_bench, "paper"]
                close = difflib.get_close_matches(name, known, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"unknown task or benchmark {name!r}.{hint} Known: {', '.join(known)}")
    return out
