"""``--save-prompts``: what the default judges would be sent, through the real CLI, equals what upstream's own
code builds for the same row and response: all 1,042 TRACE rows and all 1,000 CFBench rows
(``iopo-eval judge PATHS --dry-run``, responses given as a generations file and an lm-eval samples file),
and the first rows of each task through ``iopo-eval run --dry-run`` with a scripted model.

The oracles (``upstream_oracles``) run upstream's functions from the read-only data mirror inside these
tests only. The dry run makes no call: a placeholder key keeps the embedded smoke-test judge from
standing in for the paper's judges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import upstream_oracles as oracle
from awkward_text import SENT

from iopo_eval.cli import main as cli_main
from iopo_eval.data.trace import load_trace
from iopo_eval.results import read_items
from iopo_eval.testing.scripted_lm import register_scripted_lm, user_turn


def response_for(i: int) -> str:
    return f"{SENT[i % len(SENT)]} #{i}"  # never blank: a blank response is never sent


def trace_rows(mirror: Path) -> dict[str, dict[str, Any]]:
    lines = (mirror / "trace/202409_trace_evaluation.jsonl").read_text(encoding="utf-8").splitlines()
    return {str(row["id"]): row for row in map(json.loads, lines)}


def cfbench_rows(mirror: Path) -> dict[str, dict[str, Any]]:
    rows = json.loads((mirror / "cfbench/cfbench_data.json").read_text(encoding="utf-8"))
    return {str(row["idx"]): row for row in rows}


def saved(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def expected_messages(benchmark: str, row: dict[str, Any], response: str) -> list[dict[str, str]]:
    if benchmark == "trace":
        # upstream's trace_score, its question taken to be the row's input (tasks/trace/README.md)
        prompt = oracle.trace_prompt(row["input"], row["description"], row["constraints"], response)
    else:
        prompt = oracle.cfbench_prompt(row, response)  # Evaluation._judge_one -> gpt_judge_for_cfbench
    return [{"role": "user", "content": prompt}]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-placeholder-never-sent")
    for name in ("IOPO_EVAL_JUDGE", "IOPO_EVAL_JUDGE_BASE_URL", "IOPO_EVAL_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)


def test_saved_prompts_of_every_trace_and_cfbench_row_are_upstreams(
    mirror: Path, tmp_path: Path, key: None, capsys: pytest.CaptureFixture[str]
) -> None:
    trace, cfbench = trace_rows(mirror), cfbench_rows(mirror)
    assert (len(trace), len(cfbench)) == (1042, 1000)
    responses = tmp_path / "responses"
    responses.mkdir()
    # TRACE as a crashed run's generations file, CFBench as an lm-eval --log_samples file.
    with (responses / "trace.generations.jsonl").open("w", encoding="utf-8") as fh:
        for i, item_id in enumerate(trace):
            fh.write(json.dumps({"id": item_id, "response": response_for(i)}, ensure_ascii=False) + "\n")
    with (responses / "samples_cfbench_2025-01-01T00-00-00.000000.jsonl").open("w", encoding="utf-8") as fh:
        for i, item_id in enumerate(cfbench):
            sample = {"doc_id": i, "doc": {"id": item_id}, "resps": [[response_for(i)]]}
            fh.write(json.dumps(sample, ensure_ascii=False) + "\n")
    out = tmp_path / "prompts.jsonl"
    argv = ["judge", str(responses), "--dry-run", "--save-prompts", str(out)]
    assert cli_main([*argv, "--judge-cache", str(tmp_path / "c.sqlite"), "-o", str(tmp_path / "runs")]) == 0
    assert "dry run:" in capsys.readouterr().out
    lines = saved(out)
    assert len(lines) == 2042
    by_bench: dict[str, dict[str, dict[str, Any]]] = {"trace": {}, "cfbench": {}}
    for line in lines:
        assert line.keys() == {"benchmark", "task", "item_id", "role", "judge", "key", "messages"}
        by_bench[line["benchmark"]][line["item_id"]] = line
    assert by_bench["trace"].keys() == trace.keys() and by_bench["cfbench"].keys() == cfbench.keys()
    for benchmark, rows in (("trace", trace), ("cfbench", cfbench)):
        for i, (item_id, row) in enumerate(rows.items()):
            line = by_bench[benchmark][item_id]
            assert line["judge"] == f"{benchmark}-gpt4o" and line["role"] == "judge"
            assert line["messages"] == expected_messages(benchmark, row, response_for(i)), (
                benchmark,
                item_id,
            )
    tasks = {line["task"] for line in lines}
    assert tasks == {"trace_ifs", "trace_ifm", "cfbench"}


def test_a_blank_response_is_saved_as_not_sent(tmp_path: Path, key: None) -> None:
    first = load_trace()[0]
    responses = tmp_path / "trace.generations.jsonl"
    responses.write_text(json.dumps({"id": first.id, "response": " \n"}) + "\n", encoding="utf-8")
    out = tmp_path / "prompts.jsonl"
    argv = ["judge", str(responses), "--dry-run", "--save-prompts", str(out), "-o", str(tmp_path / "runs")]
    assert cli_main([*argv, "--judge-cache", str(tmp_path / "c.sqlite")]) == 0
    (line,) = saved(out)
    assert line["item_id"] == first.id and line["messages"] is None and line["not_sent"] == "empty_response"


SCRIPTED = register_scripted_lm(
    "iopo-test-saved-prompts", lambda chat, gen: response_for(len(user_turn(chat)))
)


def test_run_dry_run_saves_the_prompts_it_would_send(mirror: Path, tmp_path: Path, key: None) -> None:
    """``iopo-eval run --dry-run --save-prompts``: the scripted model's responses, judged by nobody, and
    every prompt a real run would send, as upstream's code builds it."""
    out = tmp_path / "prompts.jsonl"
    argv = ["run", "--model", "iopo-test-saved-prompts", "--tasks", "trace,cfbench", "--limit", "2"]
    argv += ["--dry-run", "--save-prompts", str(out), "--judge-cache", str(tmp_path / "c.sqlite")]
    assert cli_main([*argv, "-o", str(tmp_path / "runs")]) == 0
    lines = saved(out)
    assert sorted((line["benchmark"], line["task"]) for line in lines) == sorted(
        [("trace", "trace_ifs")] * 2 + [("trace", "trace_ifm")] * 2 + [("cfbench", "cfbench")] * 2
    )
    # The responses the judges were to see, as the run recorded them.
    (run_dir,) = (tmp_path / "runs").iterdir()
    judged = {
        (bench, rec.item_id): rec.response
        for bench in ("trace", "cfbench")
        for rec in read_items(run_dir / f"{bench}.items.jsonl")
    }
    rows = {"trace": trace_rows(mirror), "cfbench": cfbench_rows(mirror)}
    for line in lines:
        response = judged[(line["benchmark"], line["item_id"])]
        assert response.startswith(tuple(SENT))
        row = rows[line["benchmark"]][line["item_id"]]
        assert line["messages"] == expected_messages(line["benchmark"], row, response), line["item_id"]


COMPLEXBENCH_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "complexbench" / "data_final.json"


def test_complexbench_saves_both_judges_prompts_as_upstreams_get_payload(
    tmp_path: Path, key: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every scoring question of the fixture: the yes/no questions under role ``yesno`` (judge
    ``complexbench-gpt4-1106``), the rule questions under ``extract``, each with the messages upstream's
    ``get_payload`` builds (its ``_EACH`` prompt for a rule containing "each")."""
    from iopo_eval.data.complexbench import DATA_ENV

    monkeypatch.setenv(DATA_ENV, str(COMPLEXBENCH_FIXTURE))
    rows = json.loads(COMPLEXBENCH_FIXTURE.read_text(encoding="utf-8"))
    responses = tmp_path / "complexbench.generations.jsonl"
    responses.write_text(
        "".join(
            json.dumps({"id": str(r["main_id"]), "response": response_for(r["main_id"])}) + "\n" for r in rows
        ),
        encoding="utf-8",
    )
    out = tmp_path / "prompts.jsonl"
    argv = ["judge", str(responses), "--dry-run", "--save-prompts", str(out), "-o", str(tmp_path / "runs")]
    assert cli_main([*argv, "--judge-cache", str(tmp_path / "c.sqlite")]) == 0
    lines = saved(out)
    assert len(lines) == sum(len(r["scoring_questions"]) for r in rows)
    for line in lines:
        row = rows[int(line["item_id"])]
        point = int(line["key"].split("#")[1])
        question = next(q for q in row["scoring_questions"] if q["point_id"] == point)
        kind = "evaluation" if question["rule"] is None else "extraction"
        assert line["role"] == {"evaluation": "yesno", "extraction": "extract"}[kind]
        assert (
            line["judge"]
            == {"yesno": "complexbench-gpt4-1106", "extract": "complexbench-extract-gpt4-1106"}[line["role"]]
        )
        upstream_line = {
            "instruction": row["instruction"],
            "question": question["question"],
            "rule": question["rule"],
            "output": response_for(row["main_id"]),
        }
        assert line["messages"] == oracle.complexbench_messages(kind, upstream_line), line["key"]
    assert {line["role"] for line in lines} == {"yesno", "extract"}
