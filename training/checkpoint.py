"""The trainer's output: a plain HF folder (weights, config, tokenizer with chat template) and a model card.

LoRA adapters are merged into the base weights by default, so ``lm_eval --model hf --model_args
pretrained=DIR`` and vLLM load the folder as it is. The card (README.md) records the method, the full
training config, the data fingerprint and the reference log-prob cache key; ``training_info.json`` holds the
same as JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from iopo_eval import __version__

if TYPE_CHECKING:
    from iopo_eval.training.base_trainer import SequenceLossTrainer

_LOSSES = {
    "iopo": "−log σ(β·(Π1+Π2)/2) with Π1 = 2·r(x1,y1) − r(x1,y2) − r(x2,y1), Π2 = 2·r(x2,y2) − r(x2,y1) − r(x1,y2)",
    "dpo": "−log σ(β·[r(x,y_chosen) − r(x,y_rejected)]); quadruples give (x1; y1≻y2) and (x2; y2≻y1)",
    "sft": "token-mean negative log-likelihood of the response",
}


def _config_dict(trainer: SequenceLossTrainer) -> dict[str, Any]:
    cfg = trainer.args.to_dict()
    return {k: v for k, v in cfg.items() if "token" not in k.lower() or k in ("max_length",)}


def save_checkpoint(
    trainer: SequenceLossTrainer,
    output_dir: Path,
    merge_lora: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    from iopo_eval.training.reference import is_peft

    output_dir.mkdir(parents=True, exist_ok=True)
    model = trainer.accelerator.unwrap_model(trainer.model)
    lora = is_peft(model)
    if lora and merge_lora:
        model = model.merge_and_unload()
    if trainer.is_world_process_zero():
        model.save_pretrained(output_dir, safe_serialization=True)
        trainer.processing_class.save_pretrained(output_dir)
        info = {
            "iopo_eval_version": __version__,
            "method": trainer.method,
            "loss": _LOSSES[trainer.method],
            "base_model": getattr(model.config, "_name_or_path", ""),
            "lora": lora,
            "lora_merged": bool(lora and merge_lora),
            "data_fingerprint": trainer.data_fingerprint,
            "train_examples": trainer.n_examples,
            "reference_cache_key": getattr(trainer, "reference_cache_key", None),
            "global_step": trainer.state.global_step,
            "log_history": trainer.state.log_history[-5:],
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "config": _config_dict(trainer),
            **(extra or {}),
        }
        (output_dir / "training_info.json").write_text(
            json.dumps(info, indent=2, default=str, ensure_ascii=False)
        )
        (output_dir / "README.md").write_text(_card(info), encoding="utf-8")
    return output_dir


def _card(info: dict[str, Any]) -> str:
    cfg = info["config"]
    keys = (
        "learning_rate", "num_train_epochs", "lr_scheduler_type", "warmup_steps", "per_device_train_batch_size",
        "gradient_accumulation_steps", "max_length", "beta", "label_smoothing", "pref_ftx",
        "sequences_per_backward", "precompute_ref_log_probs", "bf16", "activation_checkpointing", "seed",
    )  # fmt: skip
    rows = "\n".join(f"| {k} | {cfg[k]} |" for k in keys if k in cfg)
    base = info["base_model"] or "unknown"
    return f"""---
library_name: transformers
base_model: {base}
tags: [iopo-eval, {info["method"]}]
---
# {info["method"].upper()} checkpoint trained with iopo-eval {info["iopo_eval_version"]}

- Base model: `{base}`; LoRA: {info["lora"]} (merged into the weights: {info["lora_merged"]})
- Loss: {info["loss"]}
- Training data fingerprint (sha256 of the normalised examples): `{info["data_fingerprint"]}`
  ({info["train_examples"]} training examples after conversion for this method)
- Reference log-prob cache key: `{info["reference_cache_key"]}`
- Optimizer steps: {info["global_step"]}; saved {info["saved_at"]}

| setting | value |
|---|---|
{rows}

The complete configuration and the last log entries are in `training_info.json`. Evaluate with
`lm_eval --model hf --model_args pretrained=<this folder> --apply_chat_template --tasks ...`.
"""
