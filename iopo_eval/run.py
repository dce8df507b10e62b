"""``iopo-eval run``: generate through lm-eval, judge (inside lm-eval's filter), score, write results.

One code path with plain ``lm_eval``: the same tasks, the same filter, the same scoring. This module
only chooses the model and judge, opens the judge session and turns lm-eval's samples into results.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iopo_eval.benchmarks import BENCHMARKS, expand_tasks
from iopo_eval.judging import JudgeSession, set_active_session
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

    plan = expand_tasks(options.tasks)
    if options.data_mirror:
        os.environ["IOPO_EVAL_DATA_MIRROR"] = os.path.abspath(options.data_mirror)
    run_id = new_run_id()
    run_dir = options.output / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    session.generations_dir = run_dir
    tasks = [t for ts in plan.values() for t in ts]
    log.info("run %s: %s on %s -> %s", run_id, ", ".join(tasks), spec.name, run_dir)
    set_active_session(session)
    try:
        out = lm_eval.simple_evaluate(
            model=spec.backend,
            model_args=spec.model_args_str,
            tasks=tasks,
            limit=options.limit,
            batch_size=options.batch_size,
            device=options.device or _default_device(spec),
            apply_chat_template=True,
            log_samples=True,
            gen_kwargs=options.gen_kwargs or None,
            task_manager=task_manager(),
            bootstrap_iters=0,  # our own bootstrap runs on the item records
        )
    finally:
        set_active_session(None)
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
    for bench, bench_tasks in plan.items():
        samples = {t: out["samples"].get(t, []) for t in bench_tasks}
        task_versions = {t: versions.get(t) for t in bench_tasks}
        judge = session.describe(bench, _default_judge(bench)) if BENCHMARKS[bench].judged else None
        records, result = BENCHMARKS[bench].scorer().from_samples(samples, task_versions, judge)
        write_items(run_dir / result.items_file, records)
        results.benchmarks[bench] = result
    write_results(run_dir, results)
    return results, run_dir


def _default_device(spec: ModelSpec) -> str | None:
    """lm-eval's hf backend otherwise asks for CUDA on machines without it."""
    if spec.backend not in ("hf", "vllm"):
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def task_manager() -> Any:
    """An index of iopo-eval's own task folder only: every task a run can name lives there, and
    indexing lm-eval's thousands of bundled tasks costs tens of seconds."""
    import lm_eval.tasks.iopo_eval as ours
    from lm_eval.tasks import TaskManager

    return TaskManager(include_defaults=False, include_path=str(Path(ours.__file__).parent))


def _default_judge(bench: str) -> str:
    from iopo_eval.scoring.judged import get_benchmark

    return get_benchmark(bench).default_judge
