"""benchmarks/gpu_suite.sh --dry-run: the GPU script's own steps at tiny shapes on the CPU (the real run needs
a GPU machine; this keeps the script working between such runs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_suite_dry_run(tmp_path) -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_suite.sh"), "--dry-run", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (tmp_path / "summary.txt").read_text()
    assert "train_step exit status: 0" in summary
    step = json.loads((tmp_path / "train_step.json").read_text())
    assert set(step["results"]) == {"sft", "dpo", "iopo_lean1"}
    assert all(r["s_per_example"] > 0 and r["model_tflop_per_example"] > 0 for r in step["results"].values())
    generation = json.loads((tmp_path / "generation.json").read_text())
    assert generation["hf"] == {"exit": 0, "prompts": 4, "wall_s": generation["hf"]["wall_s"]}
    assert "vllm" in generation
