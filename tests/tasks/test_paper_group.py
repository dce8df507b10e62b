"""The ``iopo_paper`` lm-eval group: the paper's four benchmarks, each a task or group lm-eval indexes."""

from __future__ import annotations

from pathlib import Path

import lm_eval.tasks.iopo_eval as installed_tasks
from lm_eval.tasks import TaskManager

from iopo_eval.benchmarks import BENCHMARKS, paper


def test_iopo_paper_lists_the_tasks_of_every_paper_benchmark() -> None:
    manager = TaskManager(include_defaults=False, include_path=str(Path(installed_tasks.__file__).parent))
    entry = manager.task_index["iopo_paper"]
    assert "iopo_paper" in manager.all_groups
    members = entry.cfg["task"]
    # `lm_eval --tasks iopo_paper` and `iopo-eval run --tasks paper` run the same lm-eval tasks.
    expanded = set()
    for name in members:
        assert name in manager.all_subtasks or name in manager.all_groups, name
        expanded |= (
            set(manager.task_index[name].cfg.get("task", [name])) if name in manager.all_groups else {name}
        )
    assert expanded == {task for bench in paper() for task in BENCHMARKS[bench].tasks}
