"""Run a training recipe: ``iopo-eval train --method iopo --config recipe.yaml`` (or ``python -m`` this module).

A recipe is a flat YAML of ``ModelDataArguments`` fields plus the method's config fields (``IOPOConfig``,
``DPOConfig`` or ``SFTConfig``, which extend ``transformers.TrainingArguments``); unknown keys are an error.
``accelerate launch -m iopo_eval.training.run --method iopo --config recipe.yaml`` runs the same on several
GPUs, with DeepSpeed or FSDP as configured by ``accelerate config``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from iopo_eval.training.model_args import ModelDataArguments

log = logging.getLogger(__name__)
RECIPES_DIR = Path(__file__).parent / "recipes"
METHODS = ("iopo", "dpo", "sft")


def method_classes(method: str) -> tuple[type, type]:
    if method == "iopo":
        from iopo_eval.training.iopo_config import IOPOConfig
        from iopo_eval.training.iopo_trainer import IOPOTrainer

        return IOPOConfig, IOPOTrainer
    if method == "dpo":
        from iopo_eval.training.dpo_config import DPOConfig
        from iopo_eval.training.dpo_trainer import DPOTrainer

        return DPOConfig, DPOTrainer
    if method == "sft":
        from iopo_eval.training.sft_config import SFTConfig
        from iopo_eval.training.sft_trainer import SFTTrainer

        return SFTConfig, SFTTrainer
    raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def resolve_recipe(path_or_name: str) -> Path:
    """A path, or the name of a packaged recipe (``iopo_qwen2_7b_lora``)."""
    path = Path(path_or_name)
    if path.is_file():
        return path
    packaged = RECIPES_DIR / (path_or_name if path_or_name.endswith(".yaml") else f"{path_or_name}.yaml")
    if packaged.is_file():
        return packaged
    known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"no recipe file {path_or_name!r}; packaged recipes: {known}")


def _coerce(text: str) -> Any:
    return yaml.safe_load(text)


def load_recipe(path: Path, overrides: list[str] | None = None) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a mapping of settings, got {type(data).__name__}")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        data[key.strip()] = _coerce(value)
    return data


def parse_recipe(method: str, settings: dict[str, Any]) -> tuple[ModelDataArguments, Any]:
    from transformers import HfArgumentParser

    config_cls, _ = method_classes(method)
    settings = {k: v for k, v in settings.items() if k != "method"}
    parser = HfArgumentParser((ModelDataArguments, config_cls))
    model_args, config = parser.parse_dict(settings, allow_extra_keys=False)
    if not model_args.model_name_or_path or not model_args.train_file:
        raise ValueError("a recipe needs model_name_or_path and train_file")
    return model_args, config


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
        model, config, examples, tokenizer, peft_config=peft_config, callbacks=callbacks, **kwargs
    )


def train(
    method: str,
    recipe: str,
    overrides: list[str] | None = None,
    output_dir: str | None = None,
    resume: str = "auto",
) -> Path:
    """Train and write the final checkpoint to ``<output_dir>/final``; returns that folder."""
    from transformers.trainer_utils import get_last_checkpoint

    path = resolve_recipe(recipe)
    settings = load_recipe(path, overrides)
    if output_dir:
        settings["output_dir"] = output_dir
    if settings.get("method", method) != method:
        raise ValueError(f"{path} is a {settings['method']!r} recipe, but --method is {method!r}")
    model_args, config = parse_recipe(method, settings)
    if not config.output_dir:
        raise ValueError("set output_dir in the recipe or pass --output-dir")
    checkpoint = None
    if resume == "auto":
        checkpoint = get_last_checkpoint(config.output_dir) if Path(config.output_dir).is_dir() else None
    elif resume != "never":
        checkpoint = resume
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    trainer = build_trainer(method, model_args, config)
    trainer.train(resume_from_checkpoint=checkpoint)
    final = Path(config.output_dir) / "final"
    trainer.save_final(
        final, merge_lora=model_args.merge_lora, extra={"recipe": str(path), "model_args": vars(model_args)}
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
        help="auto (default): continue from the last checkpoint in output_dir if any; never; or a checkpoint path",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iopo_eval.training.run", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    train(args.method, args.config, args.set, args.output_dir, args.resume)
    return 0


if __name__ == "__main__":
    sys.exit(main())
