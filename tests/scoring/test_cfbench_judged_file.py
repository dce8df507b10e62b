"""``iopo-eval score cfbench --judged FILE``: files judged by upstream's script, rescored with no calls.

The fixture is built at test time from real rows of the pinned data (never copied into the repository)
plus judge replies written here in upstream's text format, so every expected number is known by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.cli import main as cli_main
from iopo_eval.data.cfbench import CFBenchItem, load_cfbench
from iopo_eval.importers.cfbench_judged import JudgedFileError, score_judged_file
from iopo_eval.results import load_results, read_items


def pick(items: list[CFBenchItem]) -> dict[str, CFBenchItem]:
    """Items of the shapes the fixture needs, chosen by structure from the real data."""

    def first(cond: Any) -> CFBenchItem:
        return next(i for i in items if cond(i))

    n_prim = lambda i: sum(c.is_primary for c in i.criteria)  # noqa: E731
    simple = lambda i: all("\n" not in c.text and "\t" not in c.text for c in i.criteria)  # noqa: E731
    return {
        "perfect": first(
            lambda i: simple(i) and i.split == "easy" and n_prim(i) >= 1 and len(i.criteria) >= 3
        ),
        "primary_miss": first(
            lambda i: simple(i) and i.split == "hard" and n_prim(i) >= 1 and len(i.criteria) >= 4
        ),
        "fallback": first(lambda i: simple(i) and i.split == "easy" and len(i.criteria) == 4 and i.idx > 50),
        "unreadable": first(lambda i: i.split == "hard" and i.idx > 50),
    }


def strict_reply(item: CFBenchItem, scores: list[int]) -> str:
    return "\n\n".join(f"{c.text}\t{s}" for c, s in zip(item.criteria, scores, strict=True))


def row(item: CFBenchItem, judge_response: str, **stored: Any) -> dict[str, Any]:
    doc = item.to_doc()
    doc.pop("id")  # upstream rows have no "id"
    return {**doc, "response": f"response to {item.idx}", "judge_response": judge_response, **stored}


@pytest.fixture
def fixture(tmp_path: Path) -> tuple[Path, dict[str, CFBenchItem]]:
    chosen = pick(load_cfbench())
    perfect, miss, fb, bad = (
        chosen["perfect"],
        chosen["primary_miss"],
        chosen["fallback"],
        chosen["unreadable"],
    )
    first_primary = next(k for k, c in enumerate(miss.criteria) if c.is_primary)
    miss_scores = [0 if k == first_primary else 1 for k in range(len(miss.criteria))]
    # Single newlines between the lines: upstream's strict parse fails and its fallback reads the lines.
    fb_reply = "\n".join(f"{c.text}\t{s}" for c, s in zip(fb.criteria, [1, 0, 1, 1], strict=True))
    rows = [
        row(
            perfect,
            strict_reply(perfect, [1] * len(perfect.criteria)),
            judge_score=["1"] * len(perfect.criteria),
            judge_parsing="1",
        ),
        row(miss, strict_reply(miss, miss_scores)),
        # Upstream stored what its quirk read: only the three 1s.
        row(fb, fb_reply, judge_score=["1", "1", "1"], judge_parsing="0"),
        row(bad, "抱歉，我无法完成评估。", judge_score=["0"], judge_parsing="-1"),
    ]
    path = tmp_path / "judged.json"
    path.write_text(json.dumps(rows[::-1], ensure_ascii=False), encoding="utf-8")  # any row order
    return path, chosen


def test_judged_file_is_scored_with_upstreams_rules_keeping_zeros(
    fixture: tuple[Path, dict[str, CFBenchItem]], tmp_path: Path
) -> None:
    path, chosen = fixture
    miss = chosen["primary_miss"]
    miss_csr = round((len(miss.criteria) - 1) / len(miss.criteria), 2)
    run, records = score_judged_file(
        path, tmp_path / "out", allow_partial=True, counting="strict", bootstrap_iters=20
    )
    result = run.benchmarks["cfbench"]
    by_id = {r.item_id: r for r in records}
    assert [r.item_id for r in records] == sorted(by_id, key=int)
    # perfect: 1/1/1; primary miss: csr (n-1)/n, 0, 0; fallback 3 of 4 kept with the zero: 0.75, 0, 0.75 > 0.8? no.
    fb = by_id[chosen["fallback"].id]
    assert fb.values["csr"] == 0.75 and fb.values["isr"] == 0.0 and fb.values["psr"] == 0.0
    assert fb.extra["parse_state"] == "0" and fb.extra["matches_stored"] is False
    assert by_id[chosen["perfect"].id].extra["matches_stored"] is True
    # The unreadable reply is a failure, counted and not scored.
    bad = by_id[chosen["unreadable"].id]
    assert bad.status == "judge_failed" and bad.values == {} and bad.judge["raw"] == "抱歉，我无法完成评估。"
    m = result.metrics
    assert m["csr"].value == pytest.approx(100 * (1.0 + miss_csr + 0.75) / 3)
    assert m["isr"].value == pytest.approx(100 / 3)
    assert m["psr"].value == pytest.approx(100 / 3)
    assert m["easy/csr"].value == pytest.approx(100 * (1.0 + 0.75) / 2)
    assert m["hard/csr"].value == pytest.approx(100 * miss_csr) and m["hard/csr"].n == 1
    assert m["priority/primary"].n == 2  # only the two strict parses have aligned checkpoints
    assert result.failures == {"parse_error": 1, "no_response": 996}
    assert result.n_items == 1000 and result.n_scored == 3
    assert result.protocol["fallback_zeros"] == "kept" and result.cost.calls == 0
    assert run.model["backend"] == "judged-file"
    # What was written is what was returned.
    assert len(read_items(tmp_path / "out" / "cfbench.items.jsonl")) == 4
    on_disk, _ = load_results(tmp_path / "out")
    assert on_disk.benchmarks["cfbench"].metrics["csr"].value == pytest.approx(m["csr"].value)


def test_upstreams_quirks_can_be_reproduced_for_comparison(
    fixture: tuple[Path, dict[str, CFBenchItem]], tmp_path: Path
) -> None:
    path, chosen = fixture
    miss = chosen["primary_miss"]
    miss_csr = round((len(miss.criteria) - 1) / len(miss.criteria), 2)
    run, records = score_judged_file(
        path, tmp_path / "out", allow_partial=True, counting="upstream", bootstrap_iters=20
    )
    by_id = {r.item_id: r for r in records}
    # Dropping the zero turns the fallback item into a perfect one, as upstream reads it ...
    fb = by_id[chosen["fallback"].id]
    assert fb.values["csr"] == 1.0 and fb.values["isr"] == 1.0 and fb.values["psr"] == 1.0
    assert fb.extra["matches_stored"] is True  # ... which is exactly what upstream stored
    # ... and the unreadable item counts 0 everywhere.
    assert by_id[chosen["unreadable"].id].values["csr"] == 0.0
    m = run.benchmarks["cfbench"].metrics
    assert m["csr"].value == pytest.approx(100 * (1.0 + miss_csr + 1.0 + 0.0) / 4)
    assert m["isr"].value == pytest.approx(50.0) and m["psr"].value == pytest.approx(50.0)
    assert run.benchmarks["cfbench"].protocol["fallback_zeros"] == "dropped"
    assert all(r.extra["matches_stored"] for r in records if "matches_stored" in r.extra)


def test_cli_scores_and_rescoring_the_run_reproduces_it(
    fixture: tuple[Path, dict[str, CFBenchItem]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fixture
    out = tmp_path / "cli"
    # By default upstream's counting: the reading agrees with what upstream's script stored.
    assert cli_main(["score", "cfbench", "--judged", str(path), "-o", str(out), "--allow-partial"]) == 0
    printed = capsys.readouterr().out
    assert "parse states: strict 2, fallback 1, unreadable 1" in printed
    assert "differ from this reading: 0" in printed
    assert load_results(out)[0].benchmarks["cfbench"].protocol["failure_counting"] == "upstream"
    # The strict counting keeps the fallback's zero, so that item reads differently from upstream's.
    out = tmp_path / "strict"
    args = [
        "score",
        "cfbench",
        "--judged",
        str(path),
        "-o",
        str(out),
        "--allow-partial",
        "--counting",
        "strict",
    ]
    assert cli_main(args) == 0
    assert "differ from this reading: 1" in capsys.readouterr().out
    first, _ = load_results(out)
    assert first.benchmarks["cfbench"].protocol["failure_counting"] == "strict"
    # `iopo-eval score run` re-reads the stored judge replies with the same rules.
    assert cli_main(["score", "run", str(out), "-o", str(tmp_path / "again")]) == 0
    again, _ = load_results(tmp_path / "again")
    for name, metric in first.benchmarks["cfbench"].metrics.items():
        assert again.benchmarks["cfbench"].metrics[name].value == pytest.approx(metric.value, nan_ok=True), (
            name
        )


def test_a_partial_file_needs_allow_partial(
    fixture: tuple[Path, dict[str, CFBenchItem]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = fixture
    assert cli_main(["score", "cfbench", "--judged", str(path), "-o", str(tmp_path / "x")]) == 2
    assert "996 of 1000 CFBench items are missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: rows[0].pop("judge_response"), "needs a string field 'judge_response'"),
        (lambda rows: rows[0].update(response=None), "needs a string field 'response'"),
        (lambda rows: rows[0]["criteria"][0].__setitem__(1, "必需"), "priority '必需'"),
        (lambda rows: rows[0].update(split="medium"), "split 'medium'"),
        (lambda rows: rows[0].update(prompt=rows[0]["prompt"] + "!"), "differ from the pinned CFBench data"),
        (lambda rows: rows.append(dict(rows[0])), "second row for idx"),
        (lambda rows: rows[0].update(idx=5000), "not in the CFBench data"),
    ],
)
def test_bad_rows_are_named(
    fixture: tuple[Path, dict[str, CFBenchItem]], tmp_path: Path, mutate: Any, message: str
) -> None:
    path, _ = fixture
    rows = json.loads(path.read_text(encoding="utf-8"))
    mutate(rows)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(JudgedFileError, match=message) as err:
        score_judged_file(bad, tmp_path / "out", allow_partial=True)
    assert str(bad) in str(err.value)


def test_not_a_list_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"idx": 0}', encoding="utf-8")
    with pytest.raises(JudgedFileError, match="expected a JSON list"):
        score_judged_file(bad, tmp_path / "out")
    with pytest.raises(JudgedFileError, match="not found"):
        score_judged_file(tmp_path / "missing.json", tmp_path / "out")
