"""The TRACE tasks as lm-eval builds them: each task reports its own metrics only."""

from __future__ import annotations

from iopo_eval.run import task_manager


def test_each_trace_task_shows_its_own_rate_only() -> None:
    """IF over all instructions under trace_ifs would only repeat IF-S (and IF-M under trace_ifm)."""
    loaded = task_manager().load(["trace"])
    metrics = {name: [m["metric"] for m in task.config.metric_list] for name, task in loaded["tasks"].items()}
    assert metrics == {
        "trace_ifs": ["if_s", "if_s_upstream", "mean_score", "judge_failures"],
        "trace_ifm": ["if_m", "if_m_upstream", "mean_score", "judge_failures"],
    }
    assert not loaded["groups"]["trace"].aggregate_metric_list
