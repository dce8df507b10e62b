"""ComplexBench end to end through lm-eval on the hand-made fixture, with a real loopback judge server.

The model under test is a scripted lm-eval LM (registered below) that answers each fixture instruction
with the response in tests/fixtures/complexbench/script.json; the loopback OpenAI-compatible server
answers each judge prompt with the scripted reply for its question (JSON and upstream text formats mixed).
Everything else is real: lm-eval's evaluator and our task YAML, the iopo_judge filter routing yes/no
and extraction requests to their two judge configs, HTTP, the SQLite cache, the results files and CLI.
The expected DRFR (17 of 26 questions) is computed by hand in tests/scoring/test_complexbench.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.cli import main as cli_main
from iopo_eval.data.complexbench import DATA_ENV
from iopo_eval.judging import JudgeSession
from iopo_eval.models import ModelSpec
from iopo_eval.results import load_results, read_items
from iopo_eval.run import RunOptions, evaluate
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.scripted_lm import register_scripted_lm, user_turn
from iopo_eval.testing.upstream_replies import complexbench_question, complexbench_reply

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "complexbench"
DATA = FIXTURES / "data_final.json"
SCRIPT = json.loads((FIXTURES / "script.json").read_text(encoding="utf-8"))
ROWS = json.loads(DATA.read_text(encoding="utf-8"))
MIRROR_GENERATIONS = Path("/work/shared/data/complexbench/llm_generations/gpt4_1106.jsonl")
KEY = "sk-canary-complexbench-51e0"

# instruction (zh or en) -> scripted response; question (zh or en) -> zh question (the script's key)
RESPONSE_OF = {
    text: SCRIPT["responses"][str(row["main_id"])]
    for row in ROWS
    for text in (row["instruction"], row["instruction_en"])
}
ZH_QUESTION = {
    text: q["question"]
    for row in ROWS
    for q in row["scoring_questions"]
    for text in (q["question"], q["question_en"])
}


register_scripted_lm("iopo-test-complexbench", lambda chat, gen: RESPONSE_OF[user_turn(chat)])


def judge_reply(request: dict[str, Any]) -> str:
    """The scripted reply of the prompt's question: as it is for the hardened prompts (JSON or upstream's
    text), in upstream's text format for upstream's prompts (the default judges)."""
    text = request["messages"][-1]["content"]
    hardened = re.search(r"<question-(\w+)>\n(.*?)\n</question-\1>", text, re.S)
    if hardened is not None:
        question, is_extraction = hardened.group(2), "Extraction mode:" in text
    else:
        kind, question = complexbench_question(text)
        is_extraction = kind != "yesno"
    reply = SCRIPT["judge"][ZH_QUESTION[question]][0]
    # The yes/no judge never sees extraction prompts and vice versa.
    assert is_extraction == ("scope" in reply or "评分对象" in reply), question
    return reply if hardened is not None else complexbench_reply(reply)


@pytest.fixture
def judge_server() -> OpenAIServer:
    with OpenAIServer(reply=judge_reply) as server:
        yield server


@pytest.fixture
def fixture_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(DATA_ENV, str(DATA))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return DATA


def run(tmp_path: Path, server: OpenAIServer, task: str, judge: str | None = None) -> tuple[Any, Path]:
    session = JudgeSession(
        config_name=judge,
        base_url=server.base_url,
        cache_path=tmp_path / "judge.sqlite",
        allow_embedded=False,
        progress=False,
    )
    with session:
        return evaluate(
            ModelSpec("iopo-test-complexbench", {}, "scripted"),
            RunOptions(tasks=[task], output=tmp_path / "runs"),
            session,
        )


def test_complexbench_end_to_end(tmp_path: Path, judge_server: OpenAIServer, fixture_data: Path) -> None:
    results, run_dir = run(tmp_path, judge_server, "complexbench")
    cb = results.benchmarks["complexbench"]
    assert cb.metrics["drfr"].value == pytest.approx(100 * 17 / 26)
    assert cb.metrics["category_family/Selection"].value == pytest.approx(100 * 13 / 18)
    assert cb.metrics["coherent/depth_2plus/relative_drop"].value == pytest.approx(100.0)
    assert cb.metrics["unknown_rule"].value == pytest.approx(100 / 26)
    assert cb.n_items == 8 and cb.n_failed == 0
    assert cb.tasks == {"complexbench": 3.0}
    assert cb.protocol["scoring_version"] == "complexbench-scoring-3"
    assert cb.protocol["name"] == "upstream prompt, upstream failure counting"
    assert cb.judge["paper_comparable"] and cb.protocol["extract_judge"]["paper_comparable"]
    assert judge_server.calls == 26 and cb.cost.calls == 26  # one request per scoring question
    # Both judges are recorded: yes/no as the benchmark's judge, the extractor in the protocol.
    assert cb.judge["name"] == "complexbench-gpt4-1106"
    assert cb.protocol["extract_judge"]["name"] == "complexbench-extract-gpt4-1106"
    assert cb.protocol["data_sha256"] == __import__("hashlib").sha256(DATA.read_bytes()).hexdigest()
    kinds = [complexbench_question(b["messages"][-1]["content"])[0] for b in judge_server.bodies]
    # The 7 rules whose string has "each": number/startswith (1), length (2), keyword/keyword_num (4),
    # forbidden_word/endswith (5) get upstream's _EACH extraction prompt; the other 12 of the 19 rule
    # questions its plain one, and the 7 LLM questions the yes/no prompt.
    assert (kinds.count("extract_each"), kinds.count("extract"), kinds.count("yesno")) == (7, 12, 7)
    assert all(b["messages"][0]["role"] == "user" and len(b["messages"]) == 1 for b in judge_server.bodies)
    records = read_items(run_dir / "complexbench.items.jsonl")
    chain = next(r for r in records if r.item_id == "1")
    assert [(q["judge"], q["rely"]) for q in chain.extra["questions"]] == [
        (False, False),
        (True, False),
        (True, True),
    ]
    assert all(j["raw"] for r in records for j in r.judge["judgements"])  # raw judge text kept
    for path in [*run_dir.rglob("*"), tmp_path / "judge.sqlite"]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path

    # Rescoring from the stored judgements reproduces every figure without a call.
    assert cli_main(["score", "run", str(run_dir), "-o", str(tmp_path / "rescored")]) == 0
    rescored, _ = load_results(tmp_path / "rescored")
    for name, metric in cb.metrics.items():
        got = rescored.benchmarks["complexbench"].metrics[name].value
        assert got == pytest.approx(metric.value, nan_ok=True), name
    # Rejudging the run pays nothing: every judgement comes from the cache, on both judges.
    assert (
        cli_main(
            [
                "judge",
                str(run_dir),
                "--judge-base-url",
                judge_server.base_url,
                "--judge-cache",
                str(tmp_path / "judge.sqlite"),
                "--no-embedded-judge",
                "-o",
                str(tmp_path / "rejudged"),
            ]
        )
        == 0
    )
    assert judge_server.calls == 26
    rejudged, _ = load_results(next((tmp_path / "rejudged").iterdir()))
    assert rejudged.benchmarks["complexbench"].cost.cache_hits == 26
    assert rejudged.benchmarks["complexbench"].metrics["drfr"].value == pytest.approx(100 * 17 / 26)


def test_english_variant(tmp_path: Path, judge_server: OpenAIServer, fixture_data: Path) -> None:
    results, run_dir = run(tmp_path, judge_server, "complexbench_en")
    en = results.benchmarks["complexbench_en"]
    assert en.metrics["drfr"].value == pytest.approx(100 * 17 / 26)
    assert en.protocol["language"] == "en"
    prompts = [b["messages"][-1]["content"] for b in judge_server.bodies]
    assert all("Write a short piece" in p for p in prompts if "Is the response about spring?" in p)
    assert not any("回答是否围绕春天的主题" in p for p in prompts)  # English questions only
    assert {r.item_id for r in read_items(run_dir / "complexbench_en.items.jsonl")} == {
        f"en/{i}" for i in range(8)
    }


def test_judge_failures_are_counted_as_upstream_counts_them(tmp_path: Path, fixture_data: Path) -> None:
    """Every reply is "no idea". Upstream reads it as every reply: every yes/no question "no" (no 是 in
    it), every rule checked on the one segment "no idea" (no segment marker: upstream takes the whole
    reply). Passing: 2#2 (no punctuation), 3#2 and 3#3 (not starts/ends with), 5#0 and 5#1 (no forbidden
    word), and 2#1 (7 characters) fails through its dependency 2#0: 5 of 26. With upstream's prompts (the
    default) these are verdicts, as upstream's parsers make them; the hardened parsers reject them
    (retried, then recorded failures, 8 instances) and the headline still counts them upstream's way."""
    with OpenAIServer(reply="no idea") as server:
        results, _ = run(tmp_path, server, "complexbench")
    cb = results.benchmarks["complexbench"]
    assert cb.n_scored == 8 and cb.failures == {}
    assert cb.metrics["drfr"].n == 8 and cb.metrics["drfr"].value == pytest.approx(100 * 5 / 26)
    hardened = "complexbench=complexbench-gpt4-1106-hardened,complexbench_extract=complexbench-extract-gpt4-1106-hardened"
    with OpenAIServer(reply="no idea") as server:
        results, _ = run(tmp_path / "hardened", server, "complexbench", hardened)
    cb = results.benchmarks["complexbench"]
    assert cb.n_scored == 0 and cb.failures == {"parse_error": 8}
    assert cb.metrics["drfr"].n == 8 and cb.metrics["drfr"].value == pytest.approx(100 * 5 / 26)
    assert cb.metrics["drfr_judged"].n == 0
    assert cb.protocol["name"] == "hardened prompt, upstream failure counting"


@pytest.mark.skipif(not MIRROR_GENERATIONS.is_file(), reason="needs the local data mirror")
def test_judge_an_upstream_generation_file(
    tmp_path: Path,
    judge_server: OpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``iopo-eval judge --complexbench-generations`` on upstream's gpt4_1106.jsonl: the fixture's
    instructions are replaced by the first rows' at test time (the data never enters the repository)."""
    gens = [json.loads(line) for line in MIRROR_GENERATIONS.read_text(encoding="utf-8").splitlines()[:3]]
    rows = json.loads(DATA.read_text(encoding="utf-8"))[:3]
    for row, gen in zip(rows, gens, strict=True):
        row["instruction"] = gen["instruction"]
    data = tmp_path / "data_final.json"
    data.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setenv(DATA_ENV, str(data))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    argv = ["judge", "--complexbench-generations", str(MIRROR_GENERATIONS), "--limit", "3"]
    argv += ["--judge-base-url", judge_server.base_url, "--judge-cache", str(tmp_path / "c.sqlite")]
    assert cli_main([*argv, "--no-embedded-judge", "-o", str(tmp_path / "runs")]) == 0
    results, run_dir = load_results(next((tmp_path / "runs").iterdir()))
    cb = results.benchmarks["complexbench"]
    assert cb.n_items == 3 and cb.n_scored == 3 and judge_server.calls == 10  # 4 + 3 + 3 questions
    assert results.model["name"] == "gpt4_1106"
    records = {r.item_id: r for r in read_items(run_dir / "complexbench.items.jsonl")}
    assert [records[str(i)].response for i in range(3)] == [g["generated"] for g in gens]
    # Without --limit the 1,150 generations do not match the 3-instance data: a clear error.
    code = cli_main(["judge", "--complexbench-generations", str(MIRROR_GENERATIONS), "--no-embedded-judge"])
    assert code == 2
    assert "not in the ComplexBench data" in capsys.readouterr().err


@pytest.mark.slow
def test_lm_eval_cli_runs_complexbench_with_the_embedded_judge(tmp_path: Path) -> None:
    """A real ``lm_eval --tasks complexbench --limit 2`` run on SmolLM2-135M judged by the embedded
    server (both judges): a smoke test of the wiring, not of the verdicts."""
    from iopo_eval.embedded import ensure_hf_model

    model_dir = ensure_hf_model()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "IOPO_EVAL_JUDGE_BASE_URL")}
    env["IOPO_EVAL_JUDGE_CACHE"] = str(tmp_path / "judge.sqlite")
    env[DATA_ENV] = str(DATA)
    lm_eval = Path(sys.executable).parent / "lm_eval"
    cmd = [
        str(lm_eval), "--model", "hf",
        "--model_args", f"pretrained={model_dir}",
        "--tasks", "complexbench", "--limit", "2", "--apply_chat_template",
        "--gen_kwargs", "max_gen_toks=32",
        "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "embedded SmolLM2-135M judge" in proc.stderr
    metrics = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())["results"][
        "complexbench"
    ]
    assert metrics["judge_failures,none"] in (0, 1, 2)
    if metrics["judge_failures,none"] < 2:
        assert 0.0 <= metrics["drfr,none"] <= 1.0
    samples = next((tmp_path / "out").rglob("samples_complexbench_*.jsonl")).read_text().splitlines()
    assert len(samples) == 2
    # Instance 0 asks 4 questions and instance 1 asks 3: 7 judgements, each from one of the two judges.
    # lm-eval writes the filtered value as its Python repr (str of the dict).
    judged = [ast.literal_eval(json.loads(s)["filtered_resps"][0]) for s in samples]
    assert sum(len(j["record"]["judge"]["judgements"]) for j in judged) == 7
    assert all(set(j["judges"]) == {"yesno", "extract"} for j in judged)


def test_each_judge_is_configured_under_its_own_name(
    tmp_path: Path, judge_server: OpenAIServer, fixture_data: Path
) -> None:
    """``--judge complexbench_extract=CFG`` changes the extractor only; yes/no questions keep theirs."""
    from iopo_eval.judges.config import CONFIGS_DIR

    text = (CONFIGS_DIR / "complexbench-extract-gpt4-1106-hardened.yaml").read_text(encoding="utf-8")
    custom = tmp_path / "my-extractor.yaml"
    custom.write_text(
        text.replace("name: complexbench-extract-gpt4-1106-hardened", "name: my-extractor")
        .replace("model: gpt-4-1106-preview", "model: extractor-model")
        .replace(
            "template: complexbench_extract_v1.txt",
            f"template: {CONFIGS_DIR.parent / 'templates'}/complexbench_extract_v1.txt",
        ),
        encoding="utf-8",
    )
    session = JudgeSession(
        config_name=f"complexbench_extract={custom}",
        base_url=judge_server.base_url,
        cache_path=tmp_path / "judge.sqlite",
        allow_embedded=False,
        progress=False,
    )
    with session:
        results, _ = evaluate(
            ModelSpec("iopo-test-complexbench", {}, "scripted"),
            RunOptions(tasks=["complexbench"], output=tmp_path / "runs"),
            session,
        )
    models = {("Extraction mode:" in b["messages"][-1]["content"], b["model"]) for b in judge_server.bodies}
    assert models == {(True, "extractor-model"), (False, "gpt-4-1106-preview")}
    cb = results.benchmarks["complexbench"]
    assert cb.protocol["extract_judge"]["name"] == "my-extractor"
    assert cb.judge["name"] == "complexbench-gpt4-1106"
    assert cb.metrics["drfr"].value == pytest.approx(100 * 17 / 26)
