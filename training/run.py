"""Run a training recipe: ``iopo-eval train --method iopo --config recipe.yaml`` (or ``python -m`` this module).

A recipe is a flat YAML of ``ModelDataArguments`` fields plus the method's config fields (``IOPOConfig``,
``DPOConfig`` or ``SFTConfig``, which extend ``transformers.TrainingArguments``); unknown keys are an error.
Data-parallel runs start one process per device with either launcher, from any folder:

    accelerate launch --multi_gpu --num_processes N -m iopo_eval.training.run --method iopo --config R
    torchrun --nproc_per_node N -m iopo_eval.training.run --method iopo --config R

On a machine without GPUs both run N CPU processes with gloo. FSDP and DeepSpeed: ``--config_file`` with
one of the accelerate configs in ``training/launch/``.

A rerun resumes from the last checkpoint in ``output_dir``; a rerun of a finished run does nothing and says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from iopo_eval.data.store import DataError
from iopo_eval.training.data import source_sha256
from iopo_eval.training.model_args import ModelDataArguments
from iopo_eval.training.recipe import (
    METHODS,
    RECIPES_DIR,
    RecipeError,
    apply_device_defaults,
    load_recipe,
    method_classes,
    parse_recipe,
    resolve_recipe,
)

log = logging.getLogger(__name__)
__all__ = ["METHODS", "RECIPES_DIR", "build_trainer", "main", "method_classes", "train"]

# Settings that change logs, checkpoints or caches but not the trained weights: left out of the run key.
_COSMETIC_PREFIXES = ("logging_", "save_", "hub_", "push_to_hub", "report_to", "run_name", "log_")
_COSMETIC = {
    "output_dir", "disable_tqdm", "ref_cache_dir", "precompute_ref_batch_size", "dataloader_num_workers",
    "overwrite_output_dir", "resume_from_checkpoint", "merge_lora", "save_dtype",
    "local_rank",  # differs between the processes of one run, which must all reach the same verdict
}  # fmt: skip


def _dtype(name: str) -> Any:
    import torch

    return {"auto": "auto", "bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[
        name
    ]


def load_model(name: str, model_args: ModelDataArguments) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": _dtype(model_args.dtype)}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    return AutoModelForCausalLM.from_pretrained(name, **kwargs)


def checkpoint_dtype(name: str) -> Any:
    """The dtype the starting checkpoint is stored in (its config's ``dtype``), or None if it says none."""
    import torch
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(name)
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(value, str):
        value = getattr(torch, value, None)
    return value if isinstance(value, torch.dtype) else None


def build_trainer(
    method: str, model_args: ModelDataArguments, config: Any, callbacks: list[Any] | None = None
) -> Any:
    from transformers import AutoTokenizer

    from iopo_eval.training.data import load_examples

    _, trainer_cls = method_classes(method)
    examples = load_examples(model_args.train_file, model_args.data_format)
    if model_args.max_train_examples:
        examples = examples[: model_args.max_train_examples]
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model(model_args.model_name_or_path, model_args)
    peft_config = None
    if model_args.use_lora:
        from peft import LoraConfig

        targets = model_args.lora_target_modules
        peft_config = LoraConfig(
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
            task_type="CAUSAL_LM",
        )
    kwargs: dict[str, Any] = {}
    if trainer_cls.needs_reference and model_args.ref_model_name_or_path:
        kwargs["ref_model"] = load_model(model_args.ref_model_name_or_path, model_args)
    return trainer_cls(
        model,
        config,
        examples,
        tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        base_dtype=checkpoint_dtype(model_args.model_name_or_path),
        **kwargs,
    )


def run_key(method: str, model_args: ModelDataArguments, config: Any) -> str:
    """Names what a run computes: method, every setting that changes the weights, the training file's
    bytes and the number of processes. Equal keys mean a finished run's final/ is this run's result."""
    settings = {
        k: v
        for k, v in {**vars(model_args), **config.to_dict()}.items()
        if k not in _COSMETIC and not k.startswith(_COSMETIC_PREFIXES)
    }
    blob = json.dumps(
        {
            "method": method,
            "settings": settings,
            "train_file": source_sha256(model_args.train_file),
            "world_size": config.world_size,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def check_launch() -> None:
    """``accelerate launch --cpu --num_processes N`` starts ONE process (accelerate's simple launcher):
    refuse it instead of training on one process while the user asked for N."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() != "true" or "WORLD_SIZE" in os.environ:
        return
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return
    args = [a.decode(errors="replace") for a in parent]
    for i, arg in enumerate(args):
        name, _, value = arg.partition("=")
        if name in ("--num_processes", "--num-processes"):
            value = value or (args[i + 1] if i + 1 < len(args) else "1")
            if value.isdigit() and int(value) > 1:
                raise RecipeError(
                    f"accelerate launch --cpu --num_processes {value} starts a single process; for {value} "
                    f"CPU processes (gloo) launch with --multi_gpu --num_processes {value} and without --cpu "
                    "(on a machine without GPUs that runs on the CPU), or use torchrun --nproc_per_node"
                )


def train(
    method: str,
    recipe: str,
    overrides: list[str] | None = None,
    output_dir: str | None = None,
    resume: str = "auto",
    callbacks: list[Any] | None = None,
) -> Path:
    """Train and write the final checkpoint to ``<output_dir>/final``; returns that folder."""
    from transformers.trainer_utils import get_last_checkpoint

    from iopo_eval.training.checkpoint import read_info

    if method not in METHODS:
        raise RecipeError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    check_launch()
    path = resolve_recipe(recipe)
    spec = load_recipe(path, overrides)
    if output_dir:
        spec.settings["output_dir"] = output_dir
        spec.origins["output_dir"] = f"--output-dir {output_dir}"
    if spec.settings.get("method", method) != method:
        raise RecipeError(
            f"{spec.where('method')}: a {spec.settings['method']!r} recipe, but --method is {method!r}"
        )
    apply_device_defaults(spec)
    model_args, config = parse_recipe(method, spec)
    if not config.output_dir:
        raise RecipeError(f"{path}: set output_dir in the recipe or pass --output-dir")
    final = Path(config.output_dir) / "final"
    key = run_key(method, model_args, config)
    done = read_info(final)
    if resume == "auto" and done is not None and done.get("run_key") == key:
        message = (
            f"nothing to do: {final} already holds this run's result ({done.get('global_step')} optimizer "
            "steps, same settings and data); pass --resume never to train again"
        )
        log.info(message)
        if config.process_index == 0:
            print(message, file=sys.stderr)
        return final
    checkpoint = None
    if resume == "auto":
        checkpoint = get_last_checkpoint(config.output_dir) if Path(config.output_dir).is_dir() else None
    elif resume != "never":
        checkpoint = resume
        if not Path(checkpoint).is_dir():
            raise RecipeError(f"--resume {resume}: no such checkpoint folder")
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    trainer = build_trainer(method, model_args, config, callbacks=callbacks)
    trainer.run_key = key
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_final(
        final,
        merge_lora=model_args.merge_lora,
        save_dtype=model_args.save_dtype,
        extra={"recipe": str(path), "model_args": vars(model_args)},
    )
    log.info("checkpoint written to %s", final)
    return final


def add_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """The flags of a training run; ``required=False`` where the parser also has sub-actions."""
    parser.add_argument("--method", choices=METHODS, required=required, help="training method")
    parser.add_argument(
        "--config",
        required=required,
        help="recipe YAML file, or the name of a packaged recipe (see `recipes`)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a recipe setting"
    )
    parser.add_argument("--output-dir", help="where checkpoints go (overrides the recipe's output_dir)")
    parser.add_argument(
        "--resume",
        default="auto",
        help="auto (default): continue from the last checkpoint in output_dir if any, and do nothing if "
        "output_dir/final already holds this run's result; never; or a checkpoint path",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m iopo_eval.training.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        final = train(args.method, args.config, args.set, args.output_dir, args.resume)
    except (DataError, FileNotFoundError) as exc:
        print(f"iopo-eval train: error: {exc}", file=sys.stderr)
        return 2
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
