"""The registry: every benchmark iopo-eval knows, one line each, read by every consumer.

The CLI (``--tasks``, ``score``, ``judge``), the lm-eval glue, rescoring, rejudging, the leaderboard and
the test fixtures all look benchmarks up here; nothing else lists them. A benchmark outside this package
(a plugin, a test's toy benchmark) joins with :func:`register`.
"""

from __future__ import annotations

import difflib
from typing import Any

from iopo_eval.benchmark import Benchmark
from iopo_eval.scoring.cfbench import CFBENCH
from iopo_eval.scoring.complexbench import COMPLEXBENCH, COMPLEXBENCH_EN
from iopo_eval.scoring.ifeval import IFEVAL
from iopo_eval.scoring.trace import TRACE

BENCHMARKS: dict[str, Benchmark[Any]] = {}


def register(bench: Benchmark[Any]) -> Benchmark[Any]:
    """Add a benchmark (its name and task names must be new)."""
    if bench.name in BENCHMARKS and BENCHMARKS[bench.name] is not bench:
        raise ValueError(f"a benchmark named {bench.name!r} is already registered")
    taken = {t: b.name for b in BENCHMARKS.values() if b is not bench for t in b.tasks}
    for task in bench.tasks:
        if task in taken:
            raise ValueError(f"{bench.name}: task {task!r} already belongs to benchmark {taken[task]!r}")
    BENCHMARKS[bench.name] = bench
    return bench


def unregister(name: str) -> None:
    BENCHMARKS.pop(name, None)


register(TRACE)
register(IFEVAL)
register(CFBENCH)
register(COMPLEXBENCH)
register(COMPLEXBENCH_EN)


def get(name: str) -> Benchmark[Any]:
    try:
        return BENCHMARKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, BENCHMARKS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no benchmark {name!r}.{hint} Known: {', '.join(BENCHMARKS)}") from None


def by_task() -> dict[str, Benchmark[Any]]:
    """Every registered lm-eval task name, with its benchmark."""
    return {task: bench for bench in BENCHMARKS.values() for task in bench.tasks}


def paper() -> list[str]:
    """The benchmarks of the IOPO paper's Table 3, in registry order (``--tasks paper``)."""
    return [b.name for b in BENCHMARKS.values() if b.in_paper]


def expand_tasks(names: list[str]) -> dict[str, list[str]]:
    """Map requested names (benchmarks, tasks, "paper"; comma-separated) to {benchmark: [lm-eval tasks]}
    in a stable order."""
    task_to_bench = {t: b.name for t, b in by_task().items()}
    out: dict[str, list[str]] = {}
    for raw in names:
        for name in (n.strip() for n in raw.split(",")):
            if not name:
                continue
            if name == "paper":
                for bench in paper():
                    out.setdefault(bench, list(BENCHMARKS[bench].tasks))
            elif name in BENCHMARKS:
                out.setdefault(name, list(BENCHMARKS[name].tasks))
            elif name in task_to_bench:
                tasks = out.setdefault(task_to_bench[name], [])
                if name not in tasks:
                    tasks.append(name)
            else:
                known = [*BENCHMARKS, *task_to_bench, "paper"]
                close = difflib.get_close_matches(name, known, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"unknown task or benchmark {name!r}.{hint} Known: {', '.join(known)}")
    return out
