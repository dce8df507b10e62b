"""`iopo-eval train` end to end on a tiny random model saved to disk: recipe parsing, progress, checkpoints,
resume from the last checkpoint, and a final folder that lm-eval's HF backend loads."""

from __future__ import annotations

import json

import pytest
import yaml

from iopo_eval.cli import main as cli_main
from iopo_eval.training.data import write_quadruples
from iopo_eval.training.run import load_recipe, parse_recipe, resolve_recipe
from iopo_eval.training.toy_models import random_model


@pytest.fixture
def tiny_dir(tmp_path, tokenizer):
    path = tmp_path / "tiny-model"
    random_model("tiny", vocab_size=len(tokenizer)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _recipe(tmp_path, tiny_dir, quads, **extra):
    data = tmp_path / "quads.jsonl"
    write_quadruples(data, quads(4))
    recipe = {
        "model_name_or_path": str(tiny_dir), "train_file": str(data), "output_dir": str(tmp_path / "run"),
        "use_cpu": True, "per_device_train_batch_size": 2, "learning_rate": 1e-3, "save_steps": 1,
        "logging_steps": 1, "lora_r": 4, "disable_tqdm": True, **extra,
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def test_train_iopo_resume_and_lm_eval_loads(tmp_path, tiny_dir, quads, caplog) -> None:
    recipe = _recipe(tmp_path, tiny_dir, quads, method="iopo", max_steps=1, sequences_per_backward=2)
    assert cli_main(["train", "--method", "iopo", "--config", str(recipe)]) == 0
    run = tmp_path / "run"
    assert (run / "checkpoint-1").is_dir()
    info = json.loads((run / "final" / "training_info.json").read_text())
    assert info["global_step"] == 1 and info["method"] == "iopo" and info["lora_merged"]
    # resume: more steps continue from checkpoint-1 instead of starting over
    caplog.set_level("INFO")
    assert cli_main(["train", "--method", "iopo", "--config", str(recipe), "--set", "max_steps=2"]) == 0
    assert f"resuming from {run / 'checkpoint-1'}" in caplog.text
    info = json.loads((run / "final" / "training_info.json").read_text())
    assert info["global_step"] == 2 and (run / "checkpoint-2").is_dir()

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(run / "final"), device="cpu", batch_size=1)
    assert "<|im_start|>" in lm.apply_chat_template([{"role": "user", "content": "hi"}])
    ((ll, _),) = lm.loglikelihood([Instance("loglikelihood", {}, ("the sea", " is calm"), 0)])
    assert ll < 0


def test_recipe_errors(tmp_path, tiny_dir, quads) -> None:
    recipe = _recipe(tmp_path, tiny_dir, quads, method="dpo", betaa=0.1)
    with pytest.raises(ValueError, match="betaa"):
        parse_recipe("dpo", load_recipe(recipe))
    assert cli_main(["train", "--method", "sft"]) == 2
    with pytest.raises(ValueError, match="is a 'dpo' recipe"):
        cli_main(["train", "--method", "iopo", "--config", str(recipe)])
    with pytest.raises(FileNotFoundError, match="iopo_qwen2_7b_lora"):
        resolve_recipe("no-such-recipe")


@pytest.mark.parametrize("name", ["iopo_qwen2_7b_lora", "dpo_qwen2_7b_lora", "sft_qwen2_7b_lora"])
def test_packaged_recipes_parse_with_paper_settings(name) -> None:
    settings = load_recipe(resolve_recipe(name), ["use_cpu=true"])  # the recipes ask for bf16 on a GPU
    model_args, config = parse_recipe(settings["method"], settings)
    assert (config.learning_rate, config.num_train_epochs, config.lr_scheduler_type) == (5e-6, 3, "cosine")
    assert (config.warmup_steps, config.max_length) == (0.1, 6000)
    assert model_args.use_lora and model_args.lora_target_modules == "all-linear"
    if name != "sft_qwen2_7b_lora":
        assert config.beta == 0.1


def test_build_rules_command(tmp_path, capsys) -> None:
    out = tmp_path / "q.jsonl"
    assert cli_main(["train", "build-rules", "--n", "5", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5
