"""One judge pool per run: ``iopo-eval run`` over trace_ifs + trace_ifm + cfbench judges every task's requests
together, each judge config with its own concurrency (synchronous mode) and one set of batches per config
(batch mode), instead of one task after another. The model under test is a scripted lm-eval LM; lm-eval's
evaluator, the task YAMLs and filters, the loopback judge servers and the SQLite cache are real.

Plain ``lm_eval`` filters (no pool bound) judge their own task and give the same records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from iopo_eval.cli import main as cli_main
from iopo_eval.judges.config import CONFIGS_DIR
from iopo_eval.results import load_results, read_items
from iopo_eval.testing.batch_server import BatchServer
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import cfbench_or_trace
from iopo_eval.testing.scripted_lm import register_scripted_lm

register_scripted_lm(
    "iopo-test-pool-scripted", lambda chat, gen: f"An answer of {len(str(chat))} characters."
)
TASKS = "trace_ifs,trace_ifm,cfbench"
# The judges are named: the test does not depend on which judge each benchmark defaults to.
JUDGES = "trace=trace-gpt4o-hardened,cfbench=cfbench-gpt4o-hardened"
LIMIT = 4


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-pool-test-not-secret")
    for name in (
        "IOPO_EVAL_JUDGE",
        "IOPO_EVAL_JUDGE_BASE_URL",
        "IOPO_EVAL_JUDGE_MODEL",
        "IOPO_EVAL_JUDGE_MODE",
    ):
        monkeypatch.delenv(name, raising=False)


def run(tmp_path: Path, name: str, base_url: str, *flags: str, judges: str = JUDGES) -> dict[str, Any]:
    argv = ["run", "--model", "iopo-test-pool-scripted", "--tasks", TASKS, "--limit", str(LIMIT)]
    argv += [
        "--judge",
        judges,
        "--judge-base-url",
        base_url,
        "--judge-cache",
        str(tmp_path / f"{name}.sqlite"),
    ]
    assert cli_main([*argv, "--no-embedded-judge", "-o", str(tmp_path / name), *flags]) == 0
    (run_dir,) = (tmp_path / name).iterdir()
    results, _ = load_results(run_dir)
    return {
        bench: [r.to_json() for r in read_items(run_dir / res.items_file)]
        for bench, res in results.benchmarks.items()
    }


def test_all_tasks_are_judged_side_by_side_each_config_with_its_concurrency(tmp_path: Path) -> None:
    with OpenAIServer(cfbench_or_trace, latency_s=0.3) as server:
        records = run(tmp_path, "pooled", server.base_url, "--concurrency", "2")
        models = [body["model"] for body in server.bodies]
    assert len(records["trace"]) == 2 * LIMIT and len(records["cfbench"]) == LIMIT
    assert all(r["status"] == "ok" for rs in records.values() for r in rs)
    # Two configs with two workers each: four calls at once. One task after another would have held two.
    assert server.max_in_flight == 4
    # The cfbench judge started before the TRACE judge had finished both TRACE tasks.
    assert models.index("gpt-4o-2024-05-13") < len(models) - LIMIT


def test_batch_mode_submits_one_batch_per_judge_config_for_the_whole_run(tmp_path: Path) -> None:
    with BatchServer(cfbench_or_trace) as server:
        config = yaml.safe_load((CONFIGS_DIR / "trace-gpt4o-hardened.yaml").read_text(encoding="utf-8"))
        config["batch"] = {"poll_interval_s": 0.05}
        (tmp_path / "trace.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        cfconfig = yaml.safe_load((CONFIGS_DIR / "cfbench-gpt4o-hardened.yaml").read_text(encoding="utf-8"))
        cfconfig["batch"] = {"poll_interval_s": 0.05}
        (tmp_path / "cf.yaml").write_text(yaml.safe_dump(cfconfig, allow_unicode=True), encoding="utf-8")
        judges = f"trace={tmp_path / 'trace.yaml'},cfbench={tmp_path / 'cf.yaml'}"
        records = run(tmp_path, "batch", server.base_url, "--judge-mode", "batch", judges=judges)
        sizes = sorted(server.batch(b)["request_counts"]["total"] for b in server.batch_ids())
    # trace_ifs and trace_ifm share the TRACE judge's batch; CFBench's judge has its own.
    assert sizes == [LIMIT, 2 * LIMIT] and server.resubmitted == 0
    assert all(r["status"] == "ok" for rs in records.values() for r in rs)


def test_plain_lm_eval_filters_without_a_pool_give_the_same_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The filters of a plain ``lm_eval`` run have no pool bound: each judges its own task through the
    environment session. The records equal the pooled run's."""
    from iopo_eval import lm_eval_glue

    with OpenAIServer(cfbench_or_trace) as server:
        pooled = run(tmp_path, "pooled", server.base_url)
        calls: list[str] = []
        original = lm_eval_glue.load_tasks

        def without_pool(manager: Any, names: Any, session: Any, pool: Any = None) -> Any:
            calls.append("loaded")
            return original(manager, names, session, None)

        monkeypatch.setattr(lm_eval_glue, "load_tasks", without_pool)
        alone = run(tmp_path, "alone", server.base_url)
    assert calls == ["loaded"]

    def comparable(rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "judge": {k: v for k, v in r["judge"].items() if k != "latency_s"}} for r in rs]

    assert {b: comparable(rs) for b, rs in pooled.items()} == {b: comparable(rs) for b, rs in alone.items()}


def test_a_plain_lm_eval_runs_session_takes_the_judge_mode_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A plain ``lm_eval`` run has no flags: its filters' session reads the mode, the fallback and the wait
    from the environment and applies them to every judge config it resolves (identity unchanged)."""
    from iopo_eval.benchmarks import BENCHMARKS
    from iopo_eval.judges.config import JudgeConfigError, load_judge_config
    from iopo_eval.judging import JudgeSession

    monkeypatch.setenv("IOPO_EVAL_JUDGE_MODE", "batch")
    monkeypatch.setenv("IOPO_EVAL_JUDGE_BATCH_FALLBACK", "sync")
    monkeypatch.setenv("IOPO_EVAL_JUDGE_BATCH_WAIT_S", "600")
    session = JudgeSession.from_environment()
    assert (session.mode, session.batch_fallback, session.batch_wait_s) == ("batch", "sync", 600.0)
    trace = BENCHMARKS["trace"]
    config = session.config(trace, trace.judges[0])  # OPENAI_API_KEY is set: no embedded judge
    assert config.mode == "batch" and config.batch.fallback == "sync" and config.batch.max_wait_s == 600.0
    assert config.identity_hash() == load_judge_config(trace.judges[0].default_config).identity_hash()
    for name, value in (("IOPO_EVAL_JUDGE_MODE", "async"), ("IOPO_EVAL_JUDGE_BATCH_WAIT_S", "soon")):
        monkeypatch.setenv(name, value)
        with pytest.raises(JudgeConfigError, match=name):
            JudgeSession.from_environment()
        monkeypatch.delenv(name)
