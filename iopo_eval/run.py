"""``iopo-eval run``: generate through lm-eval, judge (inside lm-eval's filter), score, write results.

One code path with plain ``lm_eval``: the same tasks, the same filter, the same scoring. This module
only chooses the model and judge, opens the judge session and turns lm-eval's samples into results.
The judged tasks of a run are judged together, in one pool (``judge_pool``).
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iopo_eval import aggregate
from iopo_eval.benchmark import Benchmark
from iopo_eval.benchmarks import BENCHMARKS, expand_tasks
from iopo_eval.judging import JudgeSession
from iopo_eval.models import ModelSpec, model_info
from iopo_eval.results import RunResults, new_run_id, now_iso, write_items, write_results

log = logging.getLogger(__name__)


@dataclass
class RunOptions:
    tasks: list[str]
    output: Path
    limit: int | None = None
    batch_size: str | int = 1
    device: str | None = None
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    data_mirror: str | None = None


def evaluate(spec: ModelSpec, options: RunOptions, session: JudgeSession) -> tuple[RunResults, Path]:
    """Run the requested benchmarks on one model and write ``results.json`` + per-benchmark items."""
    import lm_eval
    import lm_eval.models  # registers lm-eval's backends even when another LM registered first

    from iopo_eval.judge_pool import RunJudgePool
    from iopo_eval.lm_eval_glue import load_tasks

    plan = expand_tasks(options.tasks)
    benches = [BENCHMARKS[name] for name in plan]
    run_id = new_run_id()
    run_dir = options.output / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    session.generations_dir = run_dir
    names = [t for ts in plan.values() for t in ts]
    log.info("run %s: %s on %s -> %s", run_id, ", ".join(names), spec.name, run_dir)
    # The data mirror reaches the task loaders as task metadata, the session reaches the judge filters
    # as an argument: nothing is handed over through the environment.
    metadata = {"data_mirror": str(Path(options.data_mirror).resolve())} if options.data_mirror else {}
    manager = task_manager(benches, metadata)
    out = lm_eval.simple_evaluate(
        model=spec.backend,
        model_args=spec.model_args_str,
        tasks=load_tasks(manager, names, session, RunJudgePool(session)),
        limit=options.limit,
        batch_size=options.batch_size,
        device=options.device or _default_device(spec),
        apply_chat_template=True,
        log_samples=True,
        gen_kwargs=options.gen_kwargs or None,
        task_manager=manager,
        bootstrap_iters=0,  # our own bootstrap runs on the item records
    )
    if out is None:  # non-zero rank in a distributed run
        sys.exit(0)
    results = RunResults(
        run_id=run_id,
        created_at=now_iso(),
        command=shlex.join(["iopo-eval", *sys.argv[1:]]),
        model=model_info(spec) | {"generation": options.gen_kwargs, "limit": options.limit},
        benchmarks={},
    )
    versions = out.get("versions", {})
    for bench in benches:
        samples = {t: out["samples"].get(t, []) for t in plan[bench.name]}
        records = aggregate.records_from_samples(bench, samples)
        result = aggregate.build_result(
            bench,
            records,
            task_versions={t: versions.get(t) for t in plan[bench.name]},
            judges=session.describe(bench) if bench.judged else None,
            docs=aggregate.docs_of(samples, plan[bench.name]),
        )
        write_items(run_dir / result.items_file, records)
        results.benchmarks[bench.name] = result
    write_results(run_dir, results)
    return results, run_dir


def _default_device(spec: ModelSpec) -> str | None:
    """lm-eval's hf backend otherwise asks for CUDA on machines without it."""
    if spec.backend not in ("hf", "vllm"):
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def task_manager(benches: Iterable[Benchmark[Any]] = (), metadata: dict[str, Any] | None = None) -> Any:
    """An index of iopo-eval's own task folder, plus the task folders of registered benchmarks that
    live elsewhere: every task a run can name is there, and indexing lm-eval's thousands of bundled
    tasks costs tens of seconds."""
    import lm_eval.tasks.iopo_eval as ours
    from lm_eval.tasks import TaskManager

    paths = [str(Path(ours.__file__).parent)]
    paths += [str(b.task_dir) for b in benches if b.task_dir is not None and str(b.task_dir) not in paths]
    return TaskManager(include_defaults=False, include_path=paths, metadata=metadata)
