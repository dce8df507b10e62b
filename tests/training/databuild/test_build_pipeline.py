"""The whole pipeline on 20 seeds against the loopback server: outputs in every format, the trainer's
readers, the report; reruns that pay nothing twice; a budget that stops cleanly; shard merge."""

from __future__ import annotations

import json

import pytest

from iopo_eval.training.data import PreferencePair, Quadruple, SFTExample, as_pairs, load_examples
from iopo_eval.training.databuild.errors import BuildError
from iopo_eval.training.databuild.merge import merge_shards
from tests.training.databuild.conftest import build, phase, settings_for


@pytest.fixture
def twenty(tmp_path, server, scripted):
    scripted.unusable_rate, scripted.qc_drop_rate, scripted.qc_fix_rate, scripted.garbage_rate = (
        0.05,
        0.1,
        0.1,
        0.05,
    )
    code, report = build(server, tmp_path / "out", limit=20)
    return tmp_path / "out", code, report


def test_twenty_seeds_end_to_end(twenty, server) -> None:
    out, code, report = twenty
    assert code == 0
    o = report["outputs"]
    assert o["quadruples"] >= 10 and o["dpo_pairs"] >= 5 and o["sft"] >= 30 and o["instructions"] >= 15
    # every phase is accounted for: what goes in comes out kept or dropped with a reason
    for row in report["phases"]:
        assert row["in"] == row["kept"] + sum(row["dropped"].values()), row
    assert phase(report, "seeds")["in"] == 20
    # the trainer's readers take every file as written
    assert all(isinstance(e, Quadruple) for e in load_examples(out / "quadruples.jsonl"))
    assert len(load_examples(out / "iopo_train.json")) == o["quadruples"]
    assert all(isinstance(e, PreferencePair) for e in load_examples(out / "dpo_pairs.jsonl"))
    assert all(isinstance(e, SFTExample) for e in load_examples(out / "sft.jsonl"))
    assert len(as_pairs(load_examples(out / "quadruples.jsonl"))) == 2 * o["quadruples"]
    upstream = json.loads((out / "iopo_train.json").read_text(encoding="utf-8"))
    assert [t["from"] for t in upstream[0]["conversations"]] == ["human", "human"]
    import datasets

    def hf(name: str):
        return datasets.load_dataset("parquet", data_files={"train": str(out / "hf" / f"{name}.parquet")})[
            "train"
        ]

    assert hf("iopo").num_rows == o["quadruples"] and hf("iopo")[0]["x1"][0]["role"] == "user"
    assert hf("dpo").num_rows == o["dpo_pairs"] and hf("sft").num_rows == o["sft"]
    # the report: histogram against the paper's, shares against TRACE's evaluation set, pass rates, cost
    c = report["constraints_per_instruction"]
    assert round(c["paper_mean"], 2) == 4.36 and sum(c["built"].values()) == o["instructions"]
    assert set(report["categories"]["trace_eval"]) == {
        "content",
        "situation",
        "style",
        "format",
        "example",
        "other",
    }
    assert report["categories"]["trace_eval_source"] == "TRACE evaluation file"
    assert 0 < report["judge"]["x1_responses"]["rate"] <= 1
    assert report["cost"]["all_runs"]["total"]["calls"] == server.calls
    assert report["cost"]["all_runs"]["total"]["usd"] > 0  # the judge config prices GPT-4o
    assert report["calls_per_quadruple"] == pytest.approx(server.calls / o["quadruples"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") >= 5 and "SMOKE TEST" not in html
    assert set(json.loads((out / "report.json").read_text())) >= {
        "phases",
        "judge",
        "cost",
        "decontamination",
    }


def test_rerun_pays_nothing_and_changed_settings_are_refused(twenty, server, tmp_path) -> None:
    out, _, report = twenty
    before = (out / "quadruples.jsonl").read_text()
    server.reset_counters()
    code, again = build(server, out, limit=20)
    assert code == 0 and server.calls == 0 and again["outputs"] == report["outputs"]
    assert (out / "quadruples.jsonl").read_text() == before
    assert again["cost"]["all_runs"]["runs"] == 2
    with pytest.raises(BuildError, match="other settings .candidates: 4 then, 2 now"):
        build(server, out, limit=20, candidates=2)


def test_budget_stops_cleanly_and_a_rerun_finishes(tmp_path, server) -> None:
    code, report = build(server, tmp_path / "out", limit=6, budget_usd=0.01)
    assert code == 3 and report["cost"]["this_run"]["total"]["usd"] <= 0.01
    first_calls = server.calls
    assert any(p["pending"] or p["failed"] for p in report["phases"])
    code, report = build(server, tmp_path / "out", limit=6)
    assert code == 0 and report["outputs"]["quadruples"] > 0
    clean = build(server, tmp_path / "clean", limit=6, cache=tmp_path / "clean.sqlite")[1]
    # the stopped run and its resumption together asked what one clean build asks
    assert (
        first_calls + report["cost"]["this_run"]["total"]["calls"]
        == clean["cost"]["this_run"]["total"]["calls"]
    )


def test_shards_merge_into_the_whole_build(tmp_path, server) -> None:
    whole = build(server, tmp_path / "whole", limit=None, distribution="1-3")[1]
    for i in range(3):
        build(server, tmp_path / f"shard{i}", shard=(i, 3), distribution="1-3")
    code, merged = merge_shards([tmp_path / f"shard{i}" for i in (2, 0, 1)], tmp_path / "merged")
    assert code == 0 and merged["outputs"] == whole["outputs"] and merged["seeds"]["in_build"] == 40

    def rows(folder):
        return sorted((tmp_path / folder / "quadruples.jsonl").read_text().splitlines())

    assert rows("merged") == rows("whole")
    with pytest.raises(BuildError, match="shard 1/3 is missing"):
        merge_shards([tmp_path / "shard0", tmp_path / "shard2"], tmp_path / "m2")
    with pytest.raises(BuildError, match="both shard 0/3"):
        merge_shards([tmp_path / "shard0", tmp_path / "shard0", tmp_path / "shard1"], tmp_path / "m3")
    build(server, tmp_path / "odd", shard=(1, 3), distribution="2-3")
    with pytest.raises(BuildError, match="other settings"):
        merge_shards([tmp_path / "shard0", tmp_path / "odd", tmp_path / "shard2"], tmp_path / "m4")
    with pytest.raises(BuildError, match="not built with --shard"):
        merge_shards([tmp_path / "whole"], tmp_path / "m5")


def test_settings_are_checked(tmp_path, server) -> None:
    from iopo_eval.training.databuild.pipeline import run_build

    for kw, message in (
        ({"candidates": 0}, "--candidates"),
        ({"pass_score": 11}, "--pass-score"),
        ({"remove_share": 2}, "--remove-share"),
        ({"distribution": "0-2"}, "counts must be 1-15"),
    ):
        with pytest.raises(BuildError, match=message):
            run_build(settings_for(server, tmp_path / "x", **kw))
