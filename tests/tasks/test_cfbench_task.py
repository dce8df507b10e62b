"""CFBench end to end through lm-eval: a scripted LM under test, the real loopback judge server.

The scripted LM answers "GOOD" or "BAD" deterministically from the prompt, and the judge gives every
checkpoint of a GOOD response 1 and of a BAD one 0, so the expected CSR / ISR / PSR are known without
trusting the scorer. Everything else is real: lm-eval's evaluator and our task YAML, the iopo_judge
filter, the async client over HTTP, the SQLite cache, the results files. The slow test runs the real
``lm_eval`` CLI on the embedded SmolLM2 model with the embedded judge.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from iopo_eval.data.cfbench import load_cfbench
from iopo_eval.judging import JudgeSession
from iopo_eval.models import ModelSpec
from iopo_eval.results import load_results, read_items
from iopo_eval.run import RunOptions, evaluate
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.scripted_lm import register_scripted_lm
from iopo_eval.testing.upstream_replies import cfbench_reply, is_cfbench_upstream, read_cfbench_prompt

KEY = "sk-cfbench-test-not-secret"


def verdict(prompt: str) -> str:
    return "GOOD" if int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3 else "BAD"


SEEN = register_scripted_lm(
    "iopo-test-cfbench-scripted", lambda chat, gen: f"{verdict(chat[-1]['content'])}: 一个回答"
).seen  # what the scripted LM was asked: chat turns and generation settings


def judge_reply(request: dict[str, Any]) -> str:
    """Upstream's prompt (the default judge) is answered in upstream's format, the hardened one in JSON."""
    text = request["messages"][-1]["content"]
    if is_cfbench_upstream(text):
        asked = read_cfbench_prompt(text)
        score = 1 if asked.response.startswith("GOOD") else 0
        return cfbench_reply(asked.criteria, [score] * len(asked.criteria))
    n = int(re.search(r"恰好包含 (\d+) 项", text).group(1))
    response = re.search(r"<response-(\w+)>\n(.*?)\n</response-\1>", text, re.S).group(2)
    score = 1 if response.startswith("GOOD") else 0
    return json.dumps({"checkpoints": [{"index": i, "score": score} for i in range(1, n + 1)]})


def test_cfbench_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    for name in ("IOPO_EVAL_JUDGE", "IOPO_EVAL_JUDGE_BASE_URL", "IOPO_EVAL_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)
    SEEN.clear()
    limit = 2
    with OpenAIServer(reply=judge_reply) as server:
        session = JudgeSession(
            base_url=server.base_url,
            cache_path=tmp_path / "judge.sqlite",
            allow_embedded=False,
            progress=False,
        )
        with session:
            results, run_dir = evaluate(
                ModelSpec("iopo-test-cfbench-scripted", {}, "scripted"),
                RunOptions(tasks=["cfbench"], output=tmp_path / "runs", limit=limit),
                session,
            )
        assert server.calls == limit
        assert all(body["model"] == "gpt-4o-2024-05-13" for body in server.bodies)
        # Judging the saved responses again with the same judge is served from the cache.
        from iopo_eval.cli import main as cli_main

        args = [
            "judge",
            str(run_dir),
            "--judge-base-url",
            server.base_url,
            "--judge-cache",
            str(tmp_path / "judge.sqlite"),
        ]
        assert cli_main([*args, "--no-embedded-judge", "-o", str(tmp_path / "rejudged")]) == 0
        assert server.calls == limit
    rejudged, _ = load_results(next((tmp_path / "rejudged").iterdir()))
    assert rejudged.benchmarks["cfbench"].cost.cache_hits == limit

    items = sorted(load_cfbench(), key=lambda i: i.idx)[:limit]
    # Upstream's input: the prompt as the only message, no system turn; greedy decoding.
    assert [s["chat"] for s in SEEN] == [[{"role": "user", "content": i.prompt}] for i in items]
    assert all(s["gen"]["do_sample"] is False and s["gen"]["max_gen_toks"] == 2048 for s in SEEN)

    good = [verdict(i.prompt) == "GOOD" for i in items]
    assert 0 < sum(good) < limit  # one of each: a scorer stuck at 0 or 1 cannot pass
    cf = results.benchmarks["cfbench"]
    for name in ("csr", "isr", "psr"):
        assert cf.metrics[name].value == pytest.approx(100 * sum(good) / limit), name
    for split in ("easy", "hard"):
        mine = [g for g, i in zip(good, items, strict=True) if i.split == split]
        if mine:
            assert cf.metrics[f"{split}/psr"].value == pytest.approx(100 * sum(mine) / len(mine))
        else:
            assert cf.metrics[f"{split}/psr"].n == 0
    assert cf.n_items == limit and cf.n_failed == 0 and cf.cost.calls == limit
    assert cf.tasks == {"cfbench": 2.0} and cf.judge["name"] == "cfbench-gpt4o" and not cf.smoke_test
    assert cf.judge["paper_comparable"] and cf.judge["prompt_kind"] == "upstream"
    assert cf.protocol["judge_prompt_version"] == "cfbench_upstream_v1"
    assert cf.protocol["name"] == "upstream prompt, upstream failure counting"

    records = read_items(run_dir / "cfbench.items.jsonl")
    assert [r.item_id for r in records] == [i.id for i in items]
    assert all(r.judge["raw"] and r.extra["parse_state"] == "1" for r in records)
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path

    # Rescoring from the stored judgements reproduces every metric without a call.
    assert cli_main(["score", "run", str(run_dir), "-o", str(tmp_path / "rescored")]) == 0
    rescored, _ = load_results(tmp_path / "rescored")
    for name, metric in cf.metrics.items():
        assert rescored.benchmarks["cfbench"].metrics[name].value == pytest.approx(
            metric.value, nan_ok=True
        ), name


def test_judge_failures_are_counted_in_lm_eval_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through lm-eval's own aggregation: a reply that never parses is a judge failure, not a score."""
    import lm_eval

    from iopo_eval.lm_eval_glue import load_tasks
    from iopo_eval.run import task_manager

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with OpenAIServer(reply='{"checkpoints": []}') as server:
        session = JudgeSession(
            base_url=server.base_url,
            cache_path=tmp_path / "judge.sqlite",
            allow_embedded=False,
            progress=False,
        )
        try:
            manager = task_manager()
            out = lm_eval.simple_evaluate(
                model="iopo-test-cfbench-scripted",
                tasks=load_tasks(manager, ["cfbench"], session),
                limit=2,
                apply_chat_template=True,
                task_manager=manager,
                bootstrap_iters=0,
            )
        finally:
            session.close()
    metrics = out["results"]["cfbench"]
    assert metrics["judge_failures,none"] == 2
    # Upstream's counting (the default): nothing readable after the retries scores 0, as upstream's
    # script scores it; the items are still counted as judge failures.
    assert metrics["csr,none"] == 0.0 and metrics["psr,none"] == 0.0


def test_the_strict_counting_leaves_failed_judgements_unscored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--cfbench-counting strict`` through the CLI: the same unreadable replies are failures, not scores,
    and the results name the other protocol (which the gate will not compare with the default's)."""
    from iopo_eval.cli import main as cli_main
    from iopo_eval.scoring.cfbench import COUNTING_ENV

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv(COUNTING_ENV, "upstream")  # recorded, so the flag's setting is undone after the test
    monkeypatch.delenv(COUNTING_ENV)
    common = [
        "--model",
        "iopo-test-cfbench-scripted",
        "--tasks",
        "cfbench",
        "--limit",
        "2",
        "--no-embedded-judge",
    ]
    with OpenAIServer(reply="无法评估") as server:
        base = [*common, "--judge-base-url", server.base_url, "--judge-cache", str(tmp_path / "c.sqlite")]
        assert cli_main(["run", *base, "-o", str(tmp_path / "upstream")]) == 3
        strict = ["run", *base, "-o", str(tmp_path / "strict"), "--cfbench-counting", "strict"]
        assert cli_main(strict) == 3
        assert COUNTING_ENV not in os.environ  # the flag held for its own run only
    upstream, upstream_dir = load_results(next((tmp_path / "upstream").iterdir()))
    stricter, strict_dir = load_results(next((tmp_path / "strict").iterdir()))
    up, st = upstream.benchmarks["cfbench"], stricter.benchmarks["cfbench"]
    assert up.metrics["csr"].value == 0.0 and up.metrics["csr"].n == 2 and up.n_failed == 2
    assert st.metrics["csr"].n == 0 and st.n_failed == 2
    assert up.protocol["name"] == "upstream prompt, upstream failure counting"
    assert st.protocol["name"] == "upstream prompt, strict failure counting"
    assert all(r.extra["counting"] == "strict" for r in read_items(strict_dir / "cfbench.items.jsonl"))
    from iopo_eval.gate import GateOptions, run_gate

    # Rescoring keeps the counting each item was recorded with, whatever the environment now says.
    monkeypatch.setenv(COUNTING_ENV, "upstream")
    assert cli_main(["score", "run", str(strict_dir), "-o", str(tmp_path / "rescored")]) == 0
    rescored, _ = load_results(tmp_path / "rescored")
    assert rescored.benchmarks["cfbench"].protocol["failure_counting"] == "strict"
    assert rescored.benchmarks["cfbench"].metrics["csr"].n == 0
    report = run_gate(upstream_dir, strict_dir, GateOptions(iters=50))
    assert any("protocol failure_counting 'upstream' (baseline) vs 'strict'" in p for p in report.problems)
    assert any("--allow-protocol-mismatch" in p for p in report.problems)


@pytest.mark.slow
def test_lm_eval_cli_runs_cfbench_on_the_embedded_model(tmp_path: Path) -> None:
    """A real ``lm_eval --tasks cfbench --limit 2``: SmolLM2-135M-Instruct under test, judged by the
    embedded llama.cpp server with our template and parser. Its verdicts are a smoke test."""
    from iopo_eval.embedded import ensure_hf_model

    model_dir = ensure_hf_model()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("OPENAI_API_KEY", "IOPO_EVAL_JUDGE_BASE_URL", "IOPO_EVAL_JUDGE")
    }
    env["IOPO_EVAL_JUDGE_CACHE"] = str(tmp_path / "judge.sqlite")
    lm_eval_bin = Path(sys.executable).parent / "lm_eval"
    cmd = [
        str(lm_eval_bin), "--model", "hf",
        "--model_args", f"pretrained={model_dir},dtype=float32",
        "--tasks", "cfbench", "--limit", "2", "--apply_chat_template",
        "--gen_kwargs", "max_gen_toks=32",
        "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "embedded SmolLM2-135M judge" in proc.stderr
    results_file = next((tmp_path / "out").rglob("results_*.json"))
    metrics = json.loads(results_file.read_text())["results"]["cfbench"]
    assert metrics["judge_failures,none"] in (0, 1, 2)
    if metrics["judge_failures,none"] < 2:
        for name in ("csr", "isr", "psr"):
            assert 0.0 <= metrics[f"{name},none"] <= 1.0
    samples = [
        json.loads(line)
        for line in next((tmp_path / "out").rglob("samples_cfbench_*.jsonl")).read_text().splitlines()
    ]
    assert len(samples) == 2
    print(json.dumps(metrics, indent=1))
    for sample in samples:
        # lm-eval logs a filtered value that is not a string as its Python repr.
        judged = ast.literal_eval(sample["filtered_resps"][0])
        judgement = judged["record"]["judge"]
        assert judgement["judge_model"] and judged["judges"]["judge"]["smoke_test"] is True
        if judgement["status"] == "ok":
            assert len(judgement["scores"]) == len(sample["doc"]["criteria"])
            assert set(judgement["scores"]) <= {0.0, 1.0}
