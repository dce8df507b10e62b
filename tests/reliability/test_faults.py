"""Issue 6.1: a full 1,042-item TRACE judge stage against an endpoint where 30% of the calls fail in
every way real endpoints fail. The stage completes, every item is judged or failed with its reason, no
failure becomes a score, and what was judged equals a fault-free run (a resume judges the rest)."""

from __future__ import annotations

from pathlib import Path

from iopo_eval.judges.types import ERROR_KINDS
from iopo_eval.results import ItemRecord
from iopo_eval.testing.faults import ALL_FAULTS, RandomFaults
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores

from .conftest import judge_config_file, judge_stage, trace_items, write_generations


def assert_same_judgement(got: ItemRecord, want: ItemRecord) -> None:
    assert got.status == want.status == "ok", got.item_id
    assert got.judge["scores"] == want.judge["scores"], got.item_id
    assert got.judge["overall"] == want.judge["overall"], got.item_id
    assert got.values == want.values, got.item_id


def test_full_trace_judge_stage_under_30_percent_faults(tmp_path: Path, judge_key: str) -> None:
    items = trace_items()
    assert len(items) == 1042
    generations = write_generations(tmp_path / "gen", items)
    config = judge_config_file(tmp_path / "cfg", timeout_s=1.0)

    with OpenAIServer(hashed_scores) as clean:
        baseline, base_items = judge_stage(
            generations, config, clean.base_url, tmp_path / "clean.sqlite", tmp_path / "clean"
        )
    assert baseline.benchmarks["trace"].n_scored == 1042 and clean.calls == 1042

    faults = RandomFaults(0.3, seed=6, sleep_s=2.0)
    cache = tmp_path / "faulty.sqlite"
    with OpenAIServer(hashed_scores, faults=faults) as server:
        first, records = judge_stage(generations, config, server.base_url, cache, tmp_path / "faulty")
        # Every kind of fault was met, at about the rate asked for.
        assert set(faults.counts) == set(ALL_FAULTS)
        assert 0.25 < faults.faulted / faults.calls < 0.35
        assert server.calls > 1042 * 1.3

        assert len(records) == 1042
        failed = [r for r in records.values() if r.status != "ok"]
        for record in records.values():
            if record.status == "ok":
                assert_same_judgement(record, base_items[record.item_id])
            else:
                # Explicitly failed, with its reason, and not scored.
                assert record.status == "judge_failed"
                assert record.judge["error_kind"] in ERROR_KINDS and record.judge["error"]
                assert record.judge["scores"] is None and record.values == {}
        trace = first.benchmarks["trace"]
        assert trace.n_scored == 1042 - len(failed)
        assert sum(trace.failures.values()) == len(failed)
        assert trace.metrics["if_all"].n == trace.n_scored  # failures count toward no metric

        # Resume with the same cache: only the failed items are asked again, and the final results
        # equal the fault-free run's.
        for _ in range(3):
            if not failed:
                break
            calls = server.calls
            _, records = judge_stage(generations, config, server.base_url, cache, tmp_path / "resume")
            assert server.calls - calls >= len(failed)
            # Each failed item may take up to max_retries + 1 calls; nothing else is asked.
            assert server.calls - calls <= len(failed) * 5
            failed = [r for r in records.values() if r.status != "ok"]
    assert not failed
    for item_id, record in records.items():
        assert_same_judgement(record, base_items[item_id])
