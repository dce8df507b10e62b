"""Seeded runs are identical, a killed run resumes to the weights of an uninterrupted one, and a checkpoint
that already holds every step is loaded rather than trained on (tiny random Qwen2, LoRA with dropout so that
the steps draw random numbers too)."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import TrainerCallback

from iopo_eval.training.data import write_quadruples
from iopo_eval.training.run import train
from iopo_eval.training.toy_models import random_model


class Killed(Exception):
    """Stands for the process dying right after a checkpoint was written."""


class KillAfterCheckpoint(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if state.global_step == self.step:
            raise Killed(f"killed after checkpoint-{self.step}")


@pytest.fixture
def setup(tmp_path, tokenizer, quads):
    model = tmp_path / "tiny-model"
    random_model("tiny", vocab_size=len(tokenizer)).save_pretrained(model)
    tokenizer.save_pretrained(model)
    data = tmp_path / "quads.jsonl"
    write_quadruples(data, quads(6))
    recipe = tmp_path / "recipe.yaml"
    settings = {
        "model_name_or_path": str(model), "train_file": str(data), "use_cpu": True,
        "per_device_train_batch_size": 2, "learning_rate": 5e-3, "lr_scheduler_type": "cosine",
        "warmup_steps": 0.2, "save_steps": 1, "logging_steps": 1, "lora_r": 4, "lora_dropout": 0.1,
        "disable_tqdm": True, "precompute_ref_log_probs": True, "ref_cache_dir": str(tmp_path / "ref"),
        "sequences_per_backward": 1, "seed": 7,
    }  # fmt: skip
    recipe.write_text(yaml.safe_dump(settings))
    return tmp_path, recipe


def _weights(final) -> dict[str, torch.Tensor]:
    return load_file(str(final / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_other_seed_other_weights(setup) -> None:
    root, recipe = setup
    args = ["max_steps=3"]
    one = _weights(train("iopo", str(recipe), args, output_dir=str(root / "a")))
    two = _weights(train("iopo", str(recipe), args, output_dir=str(root / "b")))
    other = _weights(train("iopo", str(recipe), [*args, "seed=8"], output_dir=str(root / "c")))
    assert _same(one, two)
    assert not _same(one, other)


@pytest.mark.parametrize(
    ("overrides", "kill_at", "total"),
    [(["max_steps=4"], 2, 4), (["num_train_epochs=2"], 4, 6)],  # 3 steps per epoch: both cross epoch 0
    ids=["max_steps", "epochs"],
)
def test_killed_run_resumes_to_the_uninterrupted_weights(setup, caplog, overrides, kill_at, total) -> None:
    root, recipe = setup
    whole = train("iopo", str(recipe), overrides, output_dir=str(root / "whole"))
    with pytest.raises(Killed):
        train("iopo", str(recipe), overrides, output_dir=str(root / "killed"),
              callbacks=[KillAfterCheckpoint(kill_at)])  # fmt: skip
    assert not (root / "killed" / "final").exists()
    caplog.set_level("INFO")
    resumed = train("iopo", str(recipe), overrides, output_dir=str(root / "killed"))
    assert f"resuming from {root / 'killed' / f'checkpoint-{kill_at}'}" in caplog.text
    info = json.loads((resumed / "training_info.json").read_text())
    assert info["global_step"] == total
    assert _same(_weights(whole), _weights(resumed))
    losses = [h["loss"] for h in info["log_history"] if "loss" in h]
    whole_losses = [h["loss"] for h in json.loads((whole / "training_info.json").read_text())["log_history"]
                    if "loss" in h]  # fmt: skip
    assert losses[-(total - kill_at) :] == whole_losses[-(total - kill_at) :]


def test_complete_checkpoint_is_loaded_not_trained_on(setup, caplog) -> None:
    root, recipe = setup
    out = root / "run"
    first = _weights(train("iopo", str(recipe), ["max_steps=2"], output_dir=str(out)))
    # killed between the last checkpoint and final/: the rerun writes final/ from checkpoint-2
    for f in (out / "final").iterdir():
        f.unlink()
    (out / "final").rmdir()
    caplog.set_level("INFO")
    again = train("iopo", str(recipe), ["max_steps=2"], output_dir=str(out))
    assert "already holds all 2 optimizer steps" in caplog.text
    assert not (out / "checkpoint-3").exists()
    assert json.loads((again / "training_info.json").read_text())["global_step"] == 2
    assert _same(first, _weights(again))
