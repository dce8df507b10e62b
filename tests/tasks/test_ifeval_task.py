"""The ifeval_iopo lm-eval task: wiring through lm-eval's own evaluator, and a real CLI run.

The wiring test uses a small ``LM`` subclass that returns canned responses (no model can give chosen
outputs); everything else (task loading, data loader, prompt, generation settings, process_results,
aggregation) is lm-eval's real code path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM

from iopo_eval.aggregate import build_result, records_from_samples
from iopo_eval.data.ifeval import load_ifeval
from iopo_eval.importers.ifeval_responses import score_responses_file
from iopo_eval.scoring import ifeval
from iopo_eval.scoring.ifeval import IFEVAL, score_response

REPO = Path(__file__).resolve().parents[2]
TASK_DIR = REPO / "tasks" / "ifeval_iopo"


class CannedLM(LM):
    """Answers each prompt with a fixed response and records what lm-eval asked for."""

    def __init__(self, responses: dict[str, str]) -> None:
        super().__init__()
        self.responses = responses
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def generate_until(self, requests: list[Instance]) -> list[str]:
        out = []
        for request in requests:
            context, gen_kwargs = request.args
            self.requests.append((context, gen_kwargs))
            out.append(self.responses[context])
        return out

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError("ifeval_iopo is a generation task")

    def loglikelihood_rolling(self, requests: list[Instance]) -> list[float]:
        raise NotImplementedError("ifeval_iopo is a generation task")


def _responses() -> dict[int, str]:
    """Key 1000: no commas, at least 3 highlighted sections, at least 300 words -> passes everything
    (after its reasoning block is removed). Key 1001: no commas, but the first line has one -> fails
    strict, passes loose."""
    body = " ".join(["Raymond ruled Tripoli and fought long wars in the east"] * 30)
    return {
        1000: "<think>Commas, commas, commas.</think>\n*Early life* *Regency* *Hattin*\n" + body,
        1001: "Hark, gentle traveller!\nThou shalt see Tokyo and Kyoto and then rest in Osaka",
    }


def test_lm_eval_run_uses_iopo_scoring(tmp_path: Path) -> None:
    import lm_eval
    from lm_eval.tasks import TaskManager

    items = {item.key: item for item in load_ifeval()}
    canned = _responses()
    lm = CannedLM({items[key].prompt: text for key, text in canned.items()})
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=["ifeval_iopo"],
        limit=2,
        task_manager=TaskManager(include_defaults=False, include_path=str(TASK_DIR)),
        bootstrap_iters=0,
        log_samples=True,
    )
    # The prompt alone is the context, with lm-eval ifeval's greedy settings.
    assert [context for context, _ in lm.requests] == [items[1000].prompt, items[1001].prompt]
    gen = lm.requests[0][1]
    assert (gen["max_gen_toks"], gen["do_sample"], gen["until"]) == (1280, False, [])
    metrics = out["results"]["ifeval_iopo"]
    hand = {"prompt_strict": 0.5, "prompt_loose": 1.0, "inst_strict": 3 / 4, "inst_loose": 4 / 4}
    for name, value in hand.items():
        assert metrics[f"{name},none"] == pytest.approx(value), name
    assert float(out["versions"]["ifeval_iopo"]) == ifeval.TASK_VERSION

    # iopo-eval's run path (lm-eval's logged samples -> records) and the CLI scorer agree, in percent.
    records = records_from_samples(IFEVAL, out["samples"])
    result = build_result(IFEVAL, records, task_versions={"ifeval_iopo": ifeval.TASK_VERSION})
    assert records[0].extra["raw_response"] == canned[1000] and not records[0].response.startswith("<think>")
    for name, value in hand.items():
        assert result.metrics[name].value == pytest.approx(100 * value), name

    path = tmp_path / "responses.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": items[k].prompt, "response": v}) + "\n" for k, v in canned.items())
    )
    run = score_responses_file(path, tmp_path / "run", None, allow_partial=True)
    cli = run.benchmarks["ifeval"].metrics
    for name, value in hand.items():
        assert cli[name].value == pytest.approx(100 * value), name


def test_task_yaml_version_matches_scoring_constant() -> None:
    text = (TASK_DIR / "ifeval_iopo.yaml").read_text()
    version_line = text.split("metadata:", 1)[1].split("version:", 1)[1].splitlines()[0]
    assert float(version_line.strip()) == ifeval.TASK_VERSION


@pytest.mark.slow
def test_lm_eval_cli_on_the_embedded_model(tmp_path: Path) -> None:
    """`lm_eval --tasks ifeval_iopo` finds the installed task and scores a real model's generations
    the same way iopo-eval does (each logged sample re-scored here)."""
    from iopo_eval.embedded.model import ensure_hf_model

    model_dir = ensure_hf_model()
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={model_dir}",
        "--tasks",
        "ifeval_iopo",
        "--limit",
        "2",
        "--apply_chat_template",
        "--gen_kwargs",
        "max_gen_toks=64",
        "--output_path",
        str(tmp_path / "out"),
        "--log_samples",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    samples_files = list((tmp_path / "out").rglob("samples_ifeval_iopo_*.jsonl"))
    assert len(samples_files) == 1, list((tmp_path / "out").rglob("*"))
    samples = [json.loads(line) for line in samples_files[0].read_text().splitlines()]
    assert len(samples) == 2
    items = {item.key: item for item in load_ifeval()}
    for sample in samples:
        response = sample["filtered_resps"][0]
        assert isinstance(response, str) and response.strip()
        values = score_response(items[sample["doc"]["key"]], response).values
        assert sample["prompt_strict"] == values["prompt_strict"]
        assert sample["inst_loose"] == values["inst_loose"]
