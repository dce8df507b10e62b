"""The trainer's output: a plain HF folder (weights, config, tokenizer with chat template) and a model card.

LoRA adapters are merged into the base weights by default, so ``lm_eval --model hf --model_args
pretrained=DIR`` and vLLM load the folder as it is; with ``merge_lora: false`` the folder holds the PEFT
adapter (``pretrained=BASE,peft=DIR``). Merged weights are written in the starting checkpoint's dtype (a
bf16 base trained in float32 is saved in bf16, not at twice the size) unless ``save_dtype`` says otherwise.
Files get the ordinary permissions of the user's umask (safetensors writes 0600).

One process writes: under DDP every rank holds the whole model and rank 0 saves it; under FSDP or DeepSpeed
the weights are sharded, so the Trainer gathers them into a temporary folder first and rank 0 rebuilds and
merges the model from there on the CPU.

The card (README.md) records the method, the optimizer steps and ``max_steps``, the seeds, the process count
and global batch, the data fingerprint and the reference log-prob cache key; ``training_info.json`` holds
the same as JSON, plus the run key that lets a rerun of a finished run recognise it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from iopo_eval import __version__

if TYPE_CHECKING:
    from iopo_eval.training.base_trainer import SequenceLossTrainer

INFO_FILE = "training_info.json"
_LOSSES = {
    "iopo": "−log σ(β·(Π1+Π2)/2) with Π1 = 2·r(x1,y1) − r(x1,y2) − r(x2,y1), Π2 = 2·r(x2,y2) − r(x2,y1) − r(x1,y2)",
    "dpo": "−log σ(β·[r(x,y_chosen) − r(x,y_rejected)]); quadruples give (x1; y1≻y2) and (x2; y2≻y1)",
    "sft": "token-mean negative log-likelihood of the response",
}
_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def _config_dict(trainer: SequenceLossTrainer) -> dict[str, Any]:
    cfg = trainer.args.to_dict()
    return {k: v for k, v in cfg.items() if "token" not in k.lower() or k in ("max_length",)}


def _target_dtype(trainer: SequenceLossTrainer, save_dtype: str) -> torch.dtype | None:
    if save_dtype == "base":
        return trainer.base_dtype
    return _DTYPES[save_dtype]


def readable(folder: Path) -> None:
    """Give every file the mode a plain ``open()`` would (0666 minus the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)


def _sharded(trainer: SequenceLossTrainer) -> bool:
    return bool(trainer.is_fsdp_enabled or trainer.is_deepspeed_enabled)


def _gathered_model(trainer: SequenceLossTrainer, tmp: Path, merge_lora: bool) -> Any:
    """Rank 0's full CPU model rebuilt from the Trainer's gathered save of a sharded one (None elsewhere)."""
    from transformers import AutoModelForCausalLM

    from iopo_eval.training.reference import is_peft

    trainer.save_model(str(tmp))  # collective: gathers FSDP / ZeRO-3 shards, rank 0 writes
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return None
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    if not is_peft(unwrapped):
        return AutoModelForCausalLM.from_pretrained(tmp, dtype=trainer.base_dtype)
    from peft import PeftModel

    base_path = unwrapped.peft_config["default"].base_model_name_or_path
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, tmp)
    return model.merge_and_unload() if merge_lora else model


def save_checkpoint(
    trainer: SequenceLossTrainer,
    output_dir: Path,
    merge_lora: bool = True,
    save_dtype: str = "base",
    extra: dict[str, Any] | None = None,
) -> Path:
    from iopo_eval.training.reference import is_peft

    output_dir.mkdir(parents=True, exist_ok=True)
    unwrapped = trainer.accelerator.unwrap_model(trainer.model)
    lora = is_peft(unwrapped)
    tmp = output_dir.parent / f".{output_dir.name}.gather"
    model = _gathered_model(trainer, tmp, merge_lora) if _sharded(trainer) else unwrapped
    if model is not None and lora and merge_lora and is_peft(model):
        model = model.merge_and_unload()
    dtype = _target_dtype(trainer, save_dtype)
    merged = bool(lora and merge_lora)
    if model is not None and dtype is not None and (merged or not lora):
        model = model.to(dtype)
    if trainer.is_world_process_zero():
        model.save_pretrained(output_dir, safe_serialization=True)
        trainer.processing_class.save_pretrained(output_dir)
        plan = trainer.step_plan()
        info = {
            "iopo_eval_version": __version__,
            "method": trainer.method,
            "loss": _LOSSES[trainer.method],
            "base_model": getattr(model.config, "_name_or_path", "")
            if not lora or merge_lora
            else unwrapped.peft_config["default"].base_model_name_or_path,
            "lora": lora,
            "lora_merged": merged,
            "saved_dtype": str(dtype).removeprefix("torch.")
            if dtype is not None and (merged or not lora)
            else None,
            "data_fingerprint": trainer.data_fingerprint,
            "train_examples": trainer.n_examples,
            "reference_cache_key": getattr(trainer, "reference_cache_key", None),
            "reference_examples_computed": trainer.reference_seen,
            "global_step": trainer.state.global_step,
            "max_steps": trainer.args.max_steps,
            "planned_steps": plan.total_steps,
            "seed": trainer.args.seed,
            "data_seed": trainer.data_seed,
            "world_size": plan.world_size,
            "global_batch": plan.global_batch,
            "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
            "run_key": trainer.run_key,
            "log_history": trainer.state.log_history[-50:],
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": _config_dict(trainer),
            **(extra or {}),
        }
        (output_dir / INFO_FILE).write_text(json.dumps(info, indent=2, default=str, ensure_ascii=False))
        (output_dir / "README.md").write_text(_card(info), encoding="utf-8")
        readable(output_dir)
        shutil.rmtree(tmp, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()
    return output_dir


def read_info(final: Path) -> dict[str, Any] | None:
    path = final / INFO_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _card(info: dict[str, Any]) -> str:
    cfg = info["config"]
    keys = (
        "learning_rate", "num_train_epochs", "max_steps", "lr_scheduler_type", "warmup_steps",
        "per_device_train_batch_size", "gradient_accumulation_steps", "max_length", "beta", "label_smoothing",
        "pref_ftx", "sequences_per_backward", "precompute_ref_log_probs", "bf16", "activation_checkpointing",
        "seed", "data_seed",
    )  # fmt: skip
    rows = "\n".join(f"| {k} | {cfg[k]} |" for k in keys if k in cfg)
    base = info["base_model"] or "unknown"
    if info["lora"] and not info["lora_merged"]:
        weights = "a PEFT adapter (not merged); load it on top of the base model"
        how = f"lm_eval --model hf --model_args pretrained={base},peft=<this folder> --apply_chat_template"
    else:
        weights = f"full weights in {info['saved_dtype']}"
        how = "lm_eval --model hf --model_args pretrained=<this folder> --apply_chat_template"
    return f"""---
library_name: transformers
base_model: {base}
tags: [iopo-eval, {info["method"]}]
---
# {info["method"].upper()} checkpoint trained with iopo-eval {info["iopo_eval_version"]}

- Base model: `{base}`; LoRA: {info["lora"]} (merged into the weights: {info["lora_merged"]}); this folder holds {weights}
- Loss: {info["loss"]}
- Training data fingerprint (sha256 of the normalised examples): `{info["data_fingerprint"]}`
  ({info["train_examples"]} training examples after conversion for this method)
- Reference log-prob cache key: `{info["reference_cache_key"]}` ({info["reference_examples_computed"]} examples precomputed)
- Optimizer steps: {info["global_step"]} of {info["planned_steps"]} planned (max_steps {info["max_steps"]}); seed {info["seed"]}, data seed {info["data_seed"]}
- Processes: {info["world_size"]} ({info["distributed_type"]}); global batch {info["global_batch"]}; saved {info["saved_at"]}

| setting | value |
|---|---|
{rows}

The complete configuration and the last log entries are in `training_info.json`. Evaluate with
`{how} --tasks ...`.
"""
