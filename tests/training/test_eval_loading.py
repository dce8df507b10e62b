"""Results record how the model under test was loaded (dtype, PEFT adapter), and the gate says when a
baseline and a candidate were loaded differently (an adapter in bf16 and a merged float32 model score
differently from loading alone)."""

from __future__ import annotations

import json

from iopo_eval.gate import run_gate
from iopo_eval.models import model_info, resolve_model
from iopo_eval.testing.synthetic import SyntheticRun, write_synthetic_run
from iopo_eval.training.toy_models import random_model


def test_results_record_dtype_and_adapter(tmp_path, tokenizer) -> None:
    merged = tmp_path / "merged"
    random_model("tiny", vocab_size=len(tokenizer)).save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    assert model_info(resolve_model(str(merged), None))["load"] == {"dtype": "auto (float32)", "peft": None}
    spec = resolve_model("hf", f"pretrained={merged},peft={tmp_path / 'adapter'},dtype=bfloat16")
    assert model_info(spec)["load"] == {"dtype": "bfloat16", "peft": str(tmp_path / "adapter")}
    assert model_info(resolve_model("local-chat-completions", "model=m,base_url=http://x"))["load"] is None


def _run(tmp_path, name, load):
    path = write_synthetic_run(
        tmp_path / name, SyntheticRun(model_name=name, seed=1, benchmarks={"ifeval": 60}, run_id=name)
    )
    data = json.loads(path.read_text())
    data["model"]["load"] = load
    path.write_text(json.dumps(data))
    return path


def test_gate_notes_models_loaded_differently(tmp_path) -> None:
    adapter = {"dtype": "bfloat16", "peft": "runs/iopo/final"}
    merged = {"dtype": "auto (float32)", "peft": None}
    report = run_gate(_run(tmp_path, "a", adapter), _run(tmp_path, "b", merged))
    notes = [n for n in report.notes if "loaded differently" in n]
    assert notes == [
        "the models were loaded differently: baseline dtype=bfloat16, peft=runs/iopo/final, candidate "
        "dtype=auto (float32); part of any difference can come from that alone"
    ]
    assert "loaded differently" in report.to_markdown()
    same = run_gate(_run(tmp_path, "c", merged), _run(tmp_path, "d", merged))
    assert not [n for n in same.notes if "loaded differently" in n]
