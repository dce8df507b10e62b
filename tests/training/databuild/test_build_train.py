"""What a build writes is what `iopo-eval train` reads: one training step of each method on a tiny model."""

from __future__ import annotations

import json

import pytest
import yaml

from iopo_eval.cli import main as cli_main
from iopo_eval.training.toy_models import random_model
from tests.training.databuild.conftest import build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from iopo_eval.testing.build_replies import ScriptedBuilder
    from iopo_eval.testing.openai_server import OpenAIServer

    out = tmp_path_factory.mktemp("build") / "out"
    with OpenAIServer(ScriptedBuilder()) as server:
        code, report = build(server, out, limit=20)
    assert code == 0 and min(report["outputs"].values()) > 0
    return out


@pytest.mark.parametrize(
    ("method", "train_file"),
    [
        ("iopo", "quadruples.jsonl"),
        ("iopo", "iopo_train.json"),
        ("dpo", "dpo_pairs.jsonl"),
        ("sft", "sft.jsonl"),
    ],
)
def test_train_reads_the_built_files(tmp_path, built, tokenizer, method, train_file) -> None:
    model_dir = tmp_path / "tiny"
    random_model("tiny", vocab_size=len(tokenizer)).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    recipe = {
        "method": method, "model_name_or_path": str(model_dir), "train_file": str(built / train_file),
        "output_dir": str(tmp_path / "run"), "use_cpu": True, "per_device_train_batch_size": 2, "max_steps": 1,
        "learning_rate": 1e-3, "save_strategy": "no", "logging_steps": 1, "lora_r": 4, "disable_tqdm": True,
        "max_length": 512,
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    assert cli_main(["train", "--method", method, "--config", str(path)]) == 0
    info = json.loads((tmp_path / "run" / "final" / "training_info.json").read_text())
    assert info["method"] == method and info["global_step"] == 1
