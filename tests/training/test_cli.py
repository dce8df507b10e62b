"""`iopo-eval train` end to end on a tiny random model saved to disk: recipe parsing, progress, checkpoints,
resume from the last checkpoint, a rerun of a finished run that does nothing, bad input (one message, exit
2), the packaged recipes on a CPU, and a final folder that lm-eval's HF backend loads."""

from __future__ import annotations

import json
import os
import re
import stat

import pytest
import torch
import yaml
from safetensors import safe_open

from iopo_eval.cli import main as cli_main
from iopo_eval.training.data import write_quadruples
from iopo_eval.training.recipe import (
    RecipeError,
    apply_device_defaults,
    load_recipe,
    parse_recipe,
    resolve_recipe,
)
from iopo_eval.training.run import main as run_main
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
    if recipe.get("method") != "sft":
        recipe["ref_cache_dir"] = str(tmp_path / "ref")
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _dtype_of(folder) -> torch.dtype:
    with safe_open(str(folder / "model.safetensors"), "pt") as fh:
        return fh.get_tensor(next(iter(fh.keys()))).dtype


def test_train_iopo_resume_rerun_and_lm_eval_loads(tmp_path, tiny_dir, quads, caplog, capsys) -> None:
    recipe = _recipe(tmp_path, tiny_dir, quads, method="iopo", max_steps=1, sequences_per_backward=2)
    assert cli_main(["train", "--method", "iopo", "--config", str(recipe)]) == 0
    run = tmp_path / "run"
    assert (run / "checkpoint-1").is_dir()
    info = json.loads((run / "final" / "training_info.json").read_text())
    assert info["global_step"] == 1 and info["method"] == "iopo" and info["lora_merged"]
    card = (run / "final" / "README.md").read_text()
    assert "max_steps 1" in card and "seed 42" in card and info["data_fingerprint"] in card
    # resume: more steps continue from checkpoint-1 instead of starting over
    caplog.set_level("INFO")
    assert cli_main(["train", "--method", "iopo", "--config", str(recipe), "--set", "max_steps=2"]) == 0
    assert f"resuming from {run / 'checkpoint-1'}" in caplog.text
    info = json.loads((run / "final" / "training_info.json").read_text())
    assert info["global_step"] == 2 and (run / "checkpoint-2").is_dir()
    # a rerun of the finished run does nothing and says so (before: one more step each time)
    weights = (run / "final" / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert cli_main(["train", "--method", "iopo", "--config", str(recipe), "--set", "max_steps=2"]) == 0
    assert "nothing to do" in capsys.readouterr().err
    assert not (run / "checkpoint-3").exists()
    assert (run / "final" / "model.safetensors").read_bytes() == weights
    # final/ is readable by others, as files written with open() are
    umask = os.umask(0)
    os.umask(umask)
    for f in (run / "final").iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(run / "final"), device="cpu", batch_size=1)
    assert "<|im_start|>" in lm.apply_chat_template([{"role": "user", "content": "hi"}])
    ((ll, _),) = lm.loglikelihood([Instance("loglikelihood", {}, ("the sea", " is calm"), 0)])
    assert ll < 0


def test_final_is_written_in_the_base_dtype_unless_asked(tmp_path, tokenizer, quads) -> None:
    base = tmp_path / "bf16-model"
    random_model("tiny", vocab_size=len(tokenizer)).to(torch.bfloat16).save_pretrained(base)
    tokenizer.save_pretrained(base)
    recipe = _recipe(tmp_path, base, quads, method="sft", max_steps=1, dtype="float32")
    assert run_main(["--method", "sft", "--config", str(recipe)]) == 0
    final = tmp_path / "run" / "final"
    assert _dtype_of(final) == torch.bfloat16  # trained in float32, saved like the base
    assert json.loads((final / "training_info.json").read_text())["saved_dtype"] == "bfloat16"
    out = tmp_path / "f32"
    assert run_main(["--method", "sft", "--config", str(recipe), "--output-dir", str(out),
                     "--set", "save_dtype=float32"]) == 0  # fmt: skip
    assert _dtype_of(out / "final") == torch.float32


def test_unmerged_adapter_and_its_card(tmp_path, tiny_dir, quads) -> None:
    recipe = _recipe(tmp_path, tiny_dir, quads, method="sft", max_steps=1, merge_lora=False)
    assert run_main(["--method", "sft", "--config", str(recipe)]) == 0
    final = tmp_path / "run" / "final"
    assert (final / "adapter_config.json").is_file()
    assert f"pretrained={tiny_dir},peft=<this folder>" in (final / "README.md").read_text()


@pytest.mark.parametrize(
    ("extra", "overrides", "expected"),
    [
        ({"betaa": 0.1}, [], r"recipe.yaml line \d+: unknown setting 'betaa' \(did you mean 'beta'\?\)"),
        ({}, ["--set", "lerning_rate=1"], r"--set lerning_rate=1: unknown setting 'lerning_rate'"),
        ({}, ["--set", "beta=abc"], r"--set beta=abc: beta='abc': expected a number"),
        ({}, ["--set", "use_lora=maybe"], r"use_lora='maybe': expected true or false"),
        ({}, ["--set", "dtype=float8"], r"dtype must be one of auto, bfloat16, float16, float32"),
        ({}, ["--set", "lr_scheduler_type=wobbly"], r"wobbly"),
        ({}, ["--set", "max_steps"], r"--set expects KEY=VALUE, got 'max_steps'"),
        ({"method": "sft"}, [], r"a 'sft' recipe, but --method is 'dpo'"),
    ],
)
def test_bad_recipes_give_one_message_and_exit_2(
    tmp_path, tiny_dir, quads, capsys, extra, overrides, expected
):
    recipe = _recipe(tmp_path, tiny_dir, quads, **{"method": "dpo", **extra})
    for entry in (cli_main, run_main):
        argv = ["--method", "dpo", "--config", str(recipe), *overrides]
        assert entry(["train", *argv] if entry is cli_main else argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert re.search(expected, err), err
    assert not (tmp_path / "run").exists()


def test_recipe_lookup_errors(tmp_path) -> None:
    assert cli_main(["train", "--method", "sft"]) == 2
    with pytest.raises(FileNotFoundError, match="iopo_qwen2_7b_lora"):
        resolve_recipe("no-such-recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text("beta: [0.1\n")
    with pytest.raises(RecipeError, match="bad.yaml: not valid YAML"):
        load_recipe(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(RecipeError, match="a recipe is a mapping"):
        load_recipe(bad)


@pytest.mark.parametrize("name", ["iopo_qwen2_7b_lora", "dpo_qwen2_7b_lora", "sft_qwen2_7b_lora"])
def test_packaged_recipes_parse_with_paper_settings(name) -> None:
    spec = load_recipe(resolve_recipe(name))
    notes = apply_device_defaults(spec, has_accelerator=False)  # what a CPU-only machine does
    assert any("bf16 mixed precision is off" in n for n in notes)
    model_args, config = parse_recipe(spec.settings["method"], spec)
    assert config.use_cpu and not config.bf16
    assert (config.learning_rate, config.num_train_epochs, config.lr_scheduler_type) == (5e-6, 3, "cosine")
    assert (config.warmup_steps, config.max_length) == (0.1, 6000)
    assert model_args.use_lora and model_args.lora_target_modules == "all-linear"
    if name != "sft_qwen2_7b_lora":
        assert config.beta == 0.1


@pytest.mark.parametrize("name", ["iopo_qwen2_7b_lora", "dpo_qwen2_7b_lora", "sft_qwen2_7b_lora"])
def test_packaged_recipes_run_on_cpu(tmp_path, tiny_dir, quads, caplog, name) -> None:
    """The paper recipes as shipped (bf16, activation checkpointing, lean step, precomputed reference),
    only pointed at a tiny model and two steps: on this CPU-only machine they run, with one line about bf16."""
    data = tmp_path / "quads.jsonl"
    write_quadruples(data, quads(4))
    caplog.set_level("INFO")
    argv = ["train", "--method", name.split("_")[0], "--config", name, "--output-dir", str(tmp_path / "run"),
            "--set", f"model_name_or_path={tiny_dir}", "--set", f"train_file={data}", "--set", "max_steps=2",
            "--set", "disable_tqdm=true"]  # fmt: skip
    if not name.startswith("sft"):
        argv += ["--set", f"ref_cache_dir={tmp_path / 'ref'}"]
    assert cli_main(argv) == 0
    bf16_lines = [r for r in caplog.records if "bf16 mixed precision is off" in r.getMessage()]
    assert len(bf16_lines) == 1
    info = json.loads((tmp_path / "run" / "final" / "training_info.json").read_text())
    assert info["global_step"] == 2 and info["config"]["bf16"] is False
    assert info["saved_dtype"] == "float32"  # the tiny base is float32, although the recipe loads bfloat16


def test_build_rules_command(tmp_path, capsys) -> None:
    out = tmp_path / "q.jsonl"
    assert cli_main(["train", "build-rules", "--n", "5", "--out", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 5


def test_launch_configs_are_valid_and_deepspeed_needs_its_package(tmp_path, tiny_dir, quads, capsys) -> None:
    from importlib.util import find_spec

    from iopo_eval.training.recipe import RECIPES_DIR

    launch = RECIPES_DIR.parent / "launch"
    fsdp = yaml.safe_load((launch / "fsdp.yaml").read_text())
    assert fsdp["distributed_type"] == "FSDP" and fsdp["fsdp_config"]["fsdp_version"] == 2
    for stage in (2, 3):
        ds = json.loads((launch / f"ds_zero{stage}.json").read_text())
        assert ds["zero_optimization"]["stage"] == stage and ds["gradient_accumulation_steps"] == "auto"
    if find_spec("deepspeed") is None:
        recipe = _recipe(tmp_path, tiny_dir, quads, method="iopo")
        argv = [
            "train",
            "--method",
            "iopo",
            "--config",
            str(recipe),
            "--set",
            f"deepspeed={launch / 'ds_zero2.json'}",
        ]
        assert cli_main(argv) == 2
        assert "needs a package that is not installed" in capsys.readouterr().err
