"""A real ``lm_eval --tasks trace_ifs`` run: SmolLM2-135M-Instruct under test, judged by the embedded
llama.cpp server serving the same model. Nothing is scripted; the verdicts are a smoke test."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from iopo_eval.embedded import ensure_hf_model


@pytest.mark.slow
def test_lm_eval_cli_runs_trace_ifs_with_the_embedded_judge(tmp_path: Path) -> None:
    model_dir = ensure_hf_model()
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "IOPO_EVAL_JUDGE_BASE_URL")}
    env["IOPO_EVAL_JUDGE_CACHE"] = str(tmp_path / "judge.sqlite")
    lm_eval = Path(sys.executable).parent / "lm_eval"
    cmd = [
        str(lm_eval), "--model", "hf",
        "--model_args", f"pretrained={model_dir}",
        "--tasks", "trace_ifs", "--limit", "2", "--apply_chat_template",
        "--gen_kwargs", "max_gen_toks=32",
        "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    # No --include_path: the installed package must make the task visible to lm-eval by itself.
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "embedded SmolLM2-135M judge" in proc.stderr  # the smoke-test judge announced itself
    results_file = next((tmp_path / "out").rglob("results_*.json"))
    metrics = json.loads(results_file.read_text())["results"]["trace_ifs"]
    # Both documents were judged or counted as failed; a failure is never a score.
    assert metrics["judge_failures,none"] in (0, 1, 2)
    if metrics["judge_failures,none"] < 2:
        assert 0.0 <= metrics["if_s,none"] <= 1.0
    # Only the task's own metrics: IF over all instructions would just repeat IF-S here.
    shown = {k.split(",")[0] for k in metrics if "," in k and "_stderr" not in k}
    assert shown == {"if_s", "if_s_upstream", "mean_score", "judge_failures"}
    samples = next((tmp_path / "out").rglob("samples_trace_ifs_*.jsonl")).read_text().splitlines()
    assert len(samples) == 2
    # The default judge (upstream's prompt) ran on the embedded server as its hardened counterpart: a 135M
    # model does not keep upstream's free-text format. lm-eval logs the filtered value as its repr.
    judged = [ast.literal_eval(json.loads(s)["filtered_resps"][0]) for s in samples]
    names = {j["judges"]["judge"]["name"] for j in judged}
    assert names == {"trace-gpt4o-hardened@embedded-SmolLM2-135M-Instruct"}
    assert all(
        j["judges"]["judge"]["smoke_test"] and j["judges"]["judge"]["prompt_kind"] == "hardened"
        for j in judged
    )
    # The judge's verdicts sit in the cache: a real SQLite file that a second run reuses.
    assert (tmp_path / "judge.sqlite").stat().st_size > 0
