"""Adding a benchmark needs a task folder, a module and a registry line, and nothing else.

The toy benchmark in tests/fixtures/toy_benchmark (written as docs/adding-a-benchmark.md says) is
registered here and run end to end with no edit to iopo-eval: a real lm-eval run of its task (a scripted
model under test), the judge (a real loopback OpenAI-compatible server, through the session, engine and
SQLite cache), the results files, rescoring and rejudging, the leaderboard page and its CSV, and the
regression gate. The expected figures follow from the scripted answers, not from the scorer.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from iopo_eval.benchmarks import BENCHMARKS, expand_tasks, register, unregister
from iopo_eval.cli import main as cli_main
from iopo_eval.gate import EXIT_OK, EXIT_REGRESSION, GateOptions, run_gate
from iopo_eval.judging import JudgeSession
from iopo_eval.leaderboard.render import build_site
from iopo_eval.models import ModelSpec
from iopo_eval.results import load_results, read_items
from iopo_eval.run import RunOptions, evaluate
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.scripted_lm import register_scripted_lm, user_turn

TOY_DIR = Path(__file__).parent / "fixtures" / "toy_benchmark"
KEY = "sk-canary-toy-9d2c"
ITEMS = [json.loads(line) for line in (TOY_DIR / "items.jsonl").read_text().splitlines() if line.strip()]
WORDS_OF = {item["prompt"]: item["words"] for item in ITEMS}


def _answer(skip_last_word_on: set[str]) -> Any:
    """A model that writes every required word, except the last one on the listed items."""

    def answer(chat: list[dict[str, str]], gen: dict[str, Any]) -> str:
        prompt = user_turn(chat)
        item = next(i for i in ITEMS if i["prompt"] == prompt)
        words = item["words"][:-1] if item["id"] in skip_last_word_on else item["words"]
        return "A sentence with " + " and ".join(words) + "."

    return answer


register_scripted_lm("iopo-test-toy-good", _answer(set()))
register_scripted_lm("iopo-test-toy-bad", _answer({"t1", "t3", "t4", "t6"}))


def judge_reply(request: dict[str, Any]) -> str:
    """10 for each required word the response contains, 2 for a missing one."""
    text = request["messages"][-1]["content"]
    response = re.search(r"<response-(\w+)>\n(.*?)\n</response-\1>", text, re.S).group(2)
    words = re.findall(r"^\d+\. (\w+)$", text.split("Required words:", 1)[1].split("<response-", 1)[0], re.M)
    entries = [
        {"index": i, "reason": "checked", "score": 10 if w in response else 2} for i, w in enumerate(words, 1)
    ]
    return json.dumps({"constraints": entries, "overall": min(e["score"] for e in entries)})


@pytest.fixture
def toy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("toy_benchmark", TOY_DIR / "toy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["toy_benchmark"] = module
    spec.loader.exec_module(module)
    register(module.TOY)  # the one registry line
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    try:
        yield module
    finally:
        unregister("toy")
        sys.modules.pop("toy_benchmark", None)


def _run(model: str, tmp_path: Path, server: OpenAIServer) -> tuple[Any, Path]:
    session = JudgeSession(
        base_url=server.base_url, cache_path=tmp_path / "judge.sqlite", allow_embedded=False, progress=False
    )
    with session:
        return evaluate(
            ModelSpec(model, {}, model), RunOptions(tasks=["toy"], output=tmp_path / model), session
        )


def test_a_registered_toy_benchmark_runs_end_to_end(toy: ModuleType, tmp_path: Path) -> None:
    assert expand_tasks(["toy_words"]) == {"toy": ["toy_words"]}
    with OpenAIServer(reply=judge_reply) as server:
        good, good_dir = _run("iopo-test-toy-good", tmp_path, server)
        bad, bad_dir = _run("iopo-test-toy-bad", tmp_path, server)
        # One call per item and model, every word of an item in one call; t2 and t5 get the same answer
        # from both models, and the shared cache pays for those once.
        assert server.calls == 10
        assert (bad.benchmarks["toy"].cost.calls, bad.benchmarks["toy"].cost.cache_hits) == (4, 2)

        # Results: the toy's metrics, breakdowns, judge, protocol and its task version from its own YAML.
        result = good.benchmarks["toy"]
        assert result.metrics["pass"].value == 100.0 and result.metrics["word_rate"].value == 100.0
        assert bad.benchmarks["toy"].metrics["pass"].value == pytest.approx(100 * 2 / 6)  # t2, t5 kept
        assert bad.benchmarks["toy"].metrics["word_rate"].value == pytest.approx(100 * 7 / 11)
        assert bad.benchmarks["toy"].metrics["kind/city"].value == pytest.approx(100 / 3)
        assert result.tasks == {"toy_words": 2.0} and result.headline == ["pass"]
        assert result.judge["name"] == "toy-judge" and result.judge["endpoint_host"].startswith("127.0.0.1")
        assert result.protocol["scoring_version"] == "toy-scoring-1"
        assert result.protocol["judge_prompt_version"] == "toy_judge_v1"
        assert result.cost.calls == 6 and result.n_failed == 0
        records = read_items(bad_dir / "toy.items.jsonl")
        assert {r.item_id: r.values["pass"] for r in records} == {
            "t1": 0.0, "t2": 1.0, "t3": 0.0, "t4": 0.0, "t5": 1.0, "t6": 0.0,
        }  # fmt: skip

        # Rescoring from the stored judgements and rejudging from the cache: same figures, no call.
        assert cli_main(["score", "run", str(bad_dir), "-o", str(tmp_path / "rescored")]) == 0
        rescored, _ = load_results(tmp_path / "rescored")
        assert rescored.benchmarks["toy"].metrics["pass"].value == pytest.approx(100 * 2 / 6)
        argv = ["judge", str(bad_dir), "--judge-base-url", server.base_url]
        argv += [
            "--judge-cache",
            str(tmp_path / "judge.sqlite"),
            "--no-embedded-judge",
            "-o",
            str(tmp_path / "rj"),
        ]
        assert cli_main(argv) == 0
        assert server.calls == 10
        rejudged, _ = load_results(next((tmp_path / "rj").iterdir()))
        assert rejudged.benchmarks["toy"].cost.cache_hits == 6

    # The leaderboard: a Toy column in the main table (and in its CSV), a Toy section on the run page.
    site = build_site([str(good_dir), str(bad_dir)], tmp_path / "site")
    index = site.index.read_text(encoding="utf-8")
    assert '<th colspan="1" class="group">Toy</th>' in index and 'data-col="toy:pass"' in index
    with (tmp_path / "site" / "leaderboard.csv").open(encoding="utf-8", newline="") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh) if r["kind"] == "measured"}
    assert float(rows["iopo-test-toy-bad"]["Toy Pass"]) == pytest.approx(100 * 2 / 6, abs=1e-3)
    page = next((tmp_path / "site" / "runs").glob("*.html")).read_text(encoding="utf-8")
    assert "Toy" in page and "Pass rate by kind" in page

    # The gate: the bad run regresses against the good one on the toy's headline metric.
    report = run_gate(good_dir, bad_dir, GateOptions(iters=200))
    assert [(c.benchmark, c.metric) for c in report.checks] == [("toy", "pass")]
    assert report.checks[0].test == "mcnemar" and report.checks[0].discordant == (4, 0)
    assert report.exit_code == EXIT_OK  # 4 discordant items of 6: p = 0.125, not significant
    strict = run_gate(good_dir, bad_dir, GateOptions(iters=200, alpha=0.2))
    assert strict.exit_code == EXIT_REGRESSION


def test_unregistered_benchmarks_are_unknown_again(tmp_path: Path) -> None:
    assert "toy" not in BENCHMARKS
    with pytest.raises(ValueError, match="unknown task or benchmark 'toy'"):
        expand_tasks(["toy"])
