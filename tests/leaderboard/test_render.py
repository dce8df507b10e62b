"""Rendering the static site from run results (no browser: see test_browser.py for that)."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import markupsafe
import pytest
from cdp_browser import HOSTILE

from iopo_eval.commands import leaderboard as leaderboard_command
from iopo_eval.leaderboard.charts import LABEL_W, PLOT_W, bar_chart, to_svg
from iopo_eval.leaderboard.columns import main_columns
from iopo_eval.leaderboard.render import build_site, items_script_parts
from iopo_eval.leaderboard.reported import ReportedError, bundled_path, load_reported
from iopo_eval.leaderboard.runs import expand_inputs, load_runs
from iopo_eval.results import Metric, ResultsError, load_results


def cli_main(argv: list[str]) -> int:
    """The real subcommand, parsed and dispatched as ``iopo-eval`` does, without importing the
    other subcommands (work in progress elsewhere must not break these tests)."""
    import argparse

    parser = argparse.ArgumentParser(prog="iopo-eval")
    leaderboard_command.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _row_html(index: str, row_id: str) -> str:
    m = re.search(rf'<tr id="{re.escape(row_id)}".*?</tr>', index, re.S)
    assert m, f"row {row_id} not in index.html"
    return m.group(0)


def test_index_cells_show_each_runs_metrics(site: Path, small_runs: dict[str, Path]) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    for name in ("strong", "weak", "partial", "smoke"):
        results, _ = load_results(small_runs[name])
        row = _row_html(index, f"run-{results.run_id}")
        for col in main_columns():
            cell = re.search(
                rf'data-col="{re.escape(col.key)}" data-v="([^"]*)"[^>]*>\s*<span class="v">([^<]*)<', row
            )
            assert cell, (name, col.key)
            bench = results.benchmarks.get(col.benchmark)
            metric = bench.metrics.get(col.metric) if bench else None
            if metric is None:
                assert cell.group(1) == "" and cell.group(2) == "–"
            else:
                assert float(cell.group(1)) == pytest.approx(metric.value, abs=1e-4)
                assert cell.group(2) == f"{metric.value:.1f}"
                assert f"[{metric.ci_low:.1f}, {metric.ci_high:.1f}]" in row
        failures = sum(b.n_failed for b in results.benchmarks.values())
        assert f'data-col="failures" data-v="{failures}"' in row
        sized = [(b.mean_response_chars, b.n_items) for b in results.benchmarks.values()]
        chars = sum(c * n for c, n in sized) / sum(n for _, n in sized)  # weighted by items
        assert f'data-col="chars" data-v="{chars:.1f}"' in row
        usd = sum(b.cost.usd for b in results.benchmarks.values())
        assert f"${usd:.2f}" in row
        assert "trace_ifs v2.0" in html.unescape(row)  # task versions in the tooltip
        # Each judged benchmark's protocol, in the Judge column's tooltip.
        assert "protocol: TRACE: upstream prompt, strict failure counting" in html.unescape(row)


def test_the_table_as_csv_beside_the_page(site: Path, small_runs: dict[str, Path]) -> None:
    """leaderboard.csv holds the page's rows and values (read back with the csv module, not pandas)."""
    import csv

    with (site / "leaderboard.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    index = (site / "index.html").read_text(encoding="utf-8")
    assert 'href="leaderboard.csv"' in index
    assert len(rows) == len(small_runs) + len(load_reported().rows)
    by_model = {r["model"]: r for r in rows if r["kind"] == "measured"}
    for name in ("strong", "partial"):
        results, _ = load_results(small_runs[name])
        row = by_model[results.model["name"]]
        for col in main_columns():
            bench = results.benchmarks.get(col.benchmark)
            metric = bench.metrics.get(col.metric) if bench else None
            cell = row[f"{col.group} {col.label}"]
            if metric is None:
                assert cell == ""
            else:
                assert float(cell) == pytest.approx(metric.value, abs=1e-4)
        assert int(row["failures"]) == sum(b.n_failed for b in results.benchmarks.values())
    reported = [r for r in rows if r["kind"] == "reported"]
    first = load_reported().rows[0]
    for col in main_columns():
        value = first.values[col.key]
        assert reported[0][f"{col.group} {col.label}"] == ("" if value is None else str(value))


def test_smoke_test_runs_are_marked(site: Path, small_runs: dict[str, Path]) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "smoke-test judge" in _row_html(index, "run-r-smoke")
    assert "smoke-test judge" not in _row_html(index, "run-r-strong")
    page = (site / "runs" / "r-smoke.html").read_text(encoding="utf-8")
    assert 'class="smoke-banner"' in page
    assert 'class="smoke-banner"' not in (site / "runs" / "r-strong.html").read_text(encoding="utf-8")


def test_reported_rows_are_marked_and_unreported_cells_say_so(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    table = load_reported()
    assert len(table.rows) == 13  # Table 3: 7 + 2 rows; Table 4: 2 ablations x 2 base models
    for i, row in enumerate(table.rows):
        html_row = _row_html(index, f"reported-{i}")
        assert "badge reported" in html_row and html.escape(row.label) in html_row
        for col in main_columns():
            value = row.values[col.key]
            if value is None:
                assert f"not reported in the paper&#39;s {row.table}" in html_row
            else:
                assert f'data-col="{col.key}" data-v="{value}"' in html_row


def test_reported_numbers_from_a_filled_file(tmp_path: Path, small_runs: dict[str, Path]) -> None:
    doc = json.loads(Path(bundled_path()).read_text(encoding="utf-8"))
    doc["rows"][0]["values"]["trace:if_s"] = 41.5  # any value: the test checks it is carried, not its truth
    filled = tmp_path / "filled.json"
    filled.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "site"
    build_site(
        [str(small_runs["strong"])], out, reported=load_reported(filled), baseline="Qwen2-7B · Instruct"
    )
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'data-col="trace:if_s" data-v="41.5"' in _row_html(index, "reported-0")
    data = json.loads(
        re.search(r'<script id="leaderboard-data" type="application/json">(.*?)</script>', index).group(1)
    )
    assert data["baseline"] == "reported-0"


@pytest.mark.parametrize(
    ("value", "message"),
    [(101, "between 0 and 100"), ("72.5", "between 0 and 100"), (float("nan"), "between 0 and 100")],
)
def test_reported_file_validation(tmp_path: Path, value: object, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"rows": [{"base_model": "M", "method": "X", "values": {"trace:if_s": value}}]}),
        encoding="utf-8",
    )
    with pytest.raises(ReportedError, match=rf"bad.json row 0: trace:if_s must be a percentage.*{message}"):
        load_reported(bad)
    bad.write_text(
        json.dumps({"rows": [{"base_model": "M", "method": "X", "values": {"nope": 1}}]}), encoding="utf-8"
    )
    with pytest.raises(ReportedError, match="unknown column 'nope'"):
        load_reported(bad)


def test_hostile_strings_are_escaped_everywhere(site: Path) -> None:
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in index
    assert "<img" not in index  # the text is there, escaped, but never as a tag
    assert str(markupsafe.escape(f"evil {HOSTILE}")) in index  # shown as text
    # The JSON for the page script: no raw "<" can close the <script> element.
    blob = re.search(
        r'<script id="leaderboard-data" type="application/json">(.*?)</script>', index, re.S
    ).group(1)
    assert "<" not in blob and "\\u003cscript\\u003e" in blob
    assert json.loads(blob)["rows"][4]["label"] == f"evil {HOSTILE}"
    pages = list((site / "runs").glob("*.html"))
    hostile_page = next(p for p in pages if "pwned" in p.read_text(encoding="utf-8"))
    text = hostile_page.read_text(encoding="utf-8")
    assert "<script>window.__pwned" not in text and "<img src=x" not in text
    assert re.fullmatch(r"r-[A-Za-z0-9._-]+\.html", hostile_page.name)  # the run id is not trusted as a path


@pytest.mark.parametrize(
    "records",
    [
        [
            {"response": 'code /* c */ "q" \\ \u2028 </script> `${x}`', "judge": {"raw": "*/ alert(1) /*"}},
            {"n": 1},
        ],
        [{"response": "*\\/ already escaped, and \\*/ a backslash before"}],
        [],
    ],
)
def test_items_script_carries_the_jsonl_inside_one_comment(records: list[dict]) -> None:
    jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    js = b"".join(items_script_parts("trace", jsonl)).decode()
    head = '(window.IOPO_ITEMS = window.IOPO_ITEMS || {})["trace"] = function () {/*\n'
    assert js.startswith(head) and js.endswith("\n*/};\n")
    body = js[len(head) : -len("\n*/};\n")]
    assert "*/" not in body  # the comment cannot be closed from inside: nothing in it runs
    assert [json.loads(line) for line in body.split("\n") if line] == records  # same items, read back


def test_run_pages_have_charts_for_every_breakdown(site: Path, small_runs: dict[str, Path]) -> None:
    results, _ = load_results(small_runs["strong"])
    page = (site / "runs" / "r-strong.html").read_text(encoding="utf-8")
    n_breakdowns = sum(1 for b in results.benchmarks.values() for n, m in b.metrics.items() if "/" in n)
    assert page.count('<g class="bar">') == n_breakdowns
    for title in (
        "Pass rate by constraint category",
        "Pass rate by constraint dimension",
        "Strict pass rate by instruction type",
        "Easy vs hard split",
        "Constraint satisfaction by constraint type",
        "DRFR by task type",
        "DRFR by composition",
    ):
        assert title in page
    # one items script per benchmark, loadable by the page
    for i, (name, bench) in enumerate(sorted(results.benchmarks.items())):
        js = (site / "runs" / "r-strong" / f"items-{i}.js").read_bytes()
        source = (small_runs["strong"] / bench.items_file).read_bytes()
        assert js == b"".join(items_script_parts(name, source))
        assert f'data-bench="{name}" data-src="r-strong/items-{i}.js"' in page


def test_bar_chart_geometry() -> None:
    m = Metric(value=50.0, ci_low=40.0, ci_high=62.5, n=10, label="x")
    chart = bar_chart("t", [("a", m), ("b", Metric(math.nan, math.nan, math.nan, 0, "b"))])
    assert chart is not None and len(chart.bars) == 1  # the NaN metric has no bar
    bar = chart.bars[0]
    assert bar.width == pytest.approx(PLOT_W / 2)
    assert bar.ci_x1 == pytest.approx(LABEL_W + PLOT_W * 0.4)
    assert bar.ci_x2 == pytest.approx(LABEL_W + PLOT_W * 0.625)
    mean = Metric(value=8.0, ci_low=7.0, ci_high=9.0, n=3, label="score", scale=10.0)
    assert bar_chart("s", [("m", mean)]).bars[0].width == pytest.approx(PLOT_W * 0.8)  # 0-10 axis
    assert bar_chart("empty", []) is None


def test_svg_escapes_labels() -> None:
    m = Metric(value=50.0, ci_low=40.0, ci_high=60.0, n=10, label="x")
    svg = str(to_svg(bar_chart("<b>title</b>", [('<script>alert("x")</script>', m)])))
    assert "<script>" not in svg and "<b>" not in svg
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in svg
    assert svg.count('<g class="bar">') == 1 and svg.count('class="ci"') == 3


def test_inputs_globs_and_folders(small_runs: dict[str, Path], tmp_path: Path) -> None:
    root = small_runs["strong"].parent
    assert len(expand_inputs([str(root / "*")])) == len(small_runs)
    assert len(expand_inputs([str(root)])) == len(small_runs)  # a folder of runs
    assert len(expand_inputs([str(small_runs["weak"]), str(small_runs["weak"] / "results.json")])) == 1
    with pytest.raises(ResultsError, match="no run matches"):
        expand_inputs([str(tmp_path / "nothing-*")])
    with pytest.raises(ResultsError, match="results file not found"):
        load_runs([str(tmp_path / "missing")])


def test_missing_items_file_is_reported_not_fatal(small_runs: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_runs["weak"], run)
    (run / "cfbench.items.jsonl").unlink()
    summary = build_site([str(run)], tmp_path / "site")
    assert any("cfbench items file" in w for w in summary.warnings)
    page = (tmp_path / "site" / "runs" / "r-weak.html").read_text(encoding="utf-8")
    assert "items file of this benchmark was not found" in page


def test_cli(small_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "site"
    assert cli_main(["leaderboard", str(small_runs["strong"]), str(small_runs["weak"]), "-o", str(out)]) == 0
    assert (out / "index.html").is_file() and (out / "assets" / "leaderboard.js").is_file()
    assert "2 runs, 13 reported rows" in capsys.readouterr().out
    assert cli_main(["leaderboard", str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert "results file not found" in capsys.readouterr().err
    assert cli_main(["leaderboard", str(small_runs["strong"]), "-o", str(out), "--baseline", "nobody"]) == 2
    by_path = ["leaderboard", str(small_runs["strong"]), str(small_runs["weak"]), "-o", str(out)]
    assert cli_main([*by_path, "--baseline", str(small_runs["weak"])]) == 0
    assert '"baseline": "run-r-weak"' in (out / "index.html").read_text(encoding="utf-8")
    assert cli_main(["leaderboard", str(small_runs["strong"]), "-o", str(out), "--no-reported"]) == 0
    assert "reported-0" not in (out / "index.html").read_text(encoding="utf-8")


def test_judge_column_names_the_model_that_judged_and_flags_other_judges(tmp_path: Path) -> None:
    """A run judged by another model through --judge-base-url/--judge-model shows that model and host,
    not the config's name, and is marked as not comparable with the paper's rows."""
    import yaml

    from iopo_eval.judges import resolve_judge_config
    from iopo_eval.judges.config import CONFIGS_DIR
    from iopo_eval.judging import describe_config
    from iopo_eval.testing.synthetic import SyntheticRun, write_synthetic_run

    raw = yaml.safe_load((CONFIGS_DIR / "trace-gpt4o-hardened.yaml").read_text())
    hardened_cfg = tmp_path / "hardened.yaml"
    hardened_cfg.write_text(yaml.safe_dump(raw))
    judges = {
        "r-qwen": describe_config(
            resolve_judge_config(
                "trace-gpt4o", base_url="http://127.0.0.1:8000/v1", model="Qwen2.5-72B-Instruct"
            )
        ),
        "r-paper": describe_config(resolve_judge_config("trace-gpt4o")),
        # GPT-4o with our own hardened prompt: the paper's model, not its prompt.
        "r-hardened": describe_config(resolve_judge_config(str(hardened_cfg))),
    }
    for run_id, judge in judges.items():
        run = tmp_path / run_id
        write_synthetic_run(
            run, SyntheticRun(run_id, seed=1, benchmarks={"trace": 20}, run_id=run_id, bootstrap_iters=10)
        )
        results = json.loads((run / "results.json").read_text())
        results["benchmarks"]["trace"]["judge"] = judge
        (run / "results.json").write_text(json.dumps(results))
    build_site([str(tmp_path / r) for r in judges], tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    qwen, paper = _row_html(index, "run-r-qwen"), _row_html(index, "run-r-paper")
    assert "Qwen2.5-72B-Instruct @ 127.0.0.1:8000" in qwen and "trace-gpt4o" not in _judge_cell(qwen)
    assert "not paper-comparable" in qwen and "≠ paper" in qwen
    assert "gpt-4o-2024-08-06 @ api.openai.com" in paper
    assert "not paper-comparable" not in paper and "≠ paper" not in paper
    hardened = _row_html(index, "run-r-hardened")
    assert "gpt-4o-2024-08-06 @ api.openai.com" in hardened and "≠ paper" in hardened


def test_the_protocol_of_each_run_is_shown_and_strict_cfbench_counting_is_flagged(tmp_path: Path) -> None:
    """The Judge column's tooltip, the CSV and the run page name each benchmark's protocol; a CFBench run
    counted strictly (not as the paper's numbers were) is marked not paper-comparable, judge or not."""
    import csv

    from iopo_eval.testing.synthetic import SyntheticRun, write_synthetic_run

    for run_id in ("r-upstream", "r-strict"):
        run = tmp_path / run_id
        benchmarks = {"trace": 20, "cfbench": 20}
        write_synthetic_run(
            run, SyntheticRun(run_id, seed=2, benchmarks=benchmarks, run_id=run_id, bootstrap_iters=10)
        )
        results = json.loads((run / "results.json").read_text())
        protocol = results["benchmarks"]["cfbench"]["protocol"]
        assert (
            protocol["name"] == "upstream prompt, upstream failure counting" and protocol["counting_as_paper"]
        )
        if run_id == "r-strict":
            protocol.update(failure_counting="strict", counting_as_paper=False)
            protocol["name"] = "upstream prompt, strict failure counting"
        (run / "results.json").write_text(json.dumps(results))
    site = tmp_path / "site"
    build_site([str(tmp_path / "r-upstream"), str(tmp_path / "r-strict")], site)
    index = (site / "index.html").read_text(encoding="utf-8")
    upstream, strict = _row_html(index, "run-r-upstream"), _row_html(index, "run-r-strict")
    assert "≠ paper" not in upstream and "≠ paper" in strict
    assert "CFBench: upstream prompt, strict failure counting" in html.unescape(strict)
    with (site / "leaderboard.csv").open(encoding="utf-8", newline="") as fh:
        rows = {row["model"]: row for row in csv.DictReader(fh)}
    assert rows["r-upstream"]["protocol"] == (
        "TRACE: upstream prompt, strict failure counting; CFBench: upstream prompt, upstream failure counting"
    )
    page = next((site / "runs").glob("*r-strict*.html")).read_text(encoding="utf-8")
    assert "<dt>protocol</dt><dd>upstream prompt, strict failure counting</dd>" in html.unescape(page)


def _judge_cell(row: str) -> str:
    m = re.search(r'<td data-col="judge" data-v="([^"]*)"', row)
    assert m
    return html.unescape(m.group(1))
