"""Model and data settings of a training run (the part of a recipe that is not the method's config)."""

from __future__ import annotations

from dataclasses import dataclass, field

DTYPES = ("auto", "bfloat16", "float16", "float32")
SAVE_DTYPES = ("base", "bfloat16", "float16", "float32")


@dataclass
class ModelDataArguments:
    model_name_or_path: str = field(
        default="",
        metadata={"help": "HF folder or hub id of the starting model (the paper starts from its SFT model)."},
    )
    train_file: str = field(
        default="",
        metadata={
            "help": "Training data (formats: data.py): .json/.jsonl, .parquet or a save_to_disk folder."
        },
    )
    data_format: str = field(
        default="auto",
        metadata={"help": "auto, iopo-upstream, quadruple, pairs or sft (auto: from each row's keys)."},
    )
    max_train_examples: int | None = field(default=None, metadata={"help": "Use only the first N examples."})
    ref_model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "A separate frozen reference model. Default: the policy with LoRA disabled (the start)."
        },
    )
    dtype: str = field(
        default="auto", metadata={"help": "Weights dtype when loading: auto, bfloat16, float16, float32."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "eager, sdpa, flash_attention_2, ..."}
    )
    use_lora: bool = field(
        default=True, metadata={"help": "Train a LoRA adapter (paper: yes) instead of all weights."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank (LLaMA-Factory default 8)."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha (LLaMA-Factory default 2·rank)."})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout."})
    lora_target_modules: str = field(
        default="all-linear",
        metadata={"help": "Comma-separated module names, or all-linear (paper: all linear)."},
    )
    merge_lora: bool = field(
        default=True,
        metadata={
            "help": "Merge the adapter into the final checkpoint so any HF loader reads it (false: final/ "
            "holds the PEFT adapter; evaluate it with pretrained=BASE,peft=final)."
        },
    )
    save_dtype: str = field(
        default="base",
        metadata={
            "help": "dtype of the merged weights in final/: base (the starting checkpoint's own dtype, "
            "whatever dtype it was trained in), bfloat16, float16 or float32."
        },
    )

    def __post_init__(self) -> None:
        from iopo_eval.training.data import FORMATS

        for name, value, allowed in (
            ("dtype", self.dtype, DTYPES),
            ("save_dtype", self.save_dtype, SAVE_DTYPES),
            ("data_format", self.data_format, FORMATS),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
        if self.use_lora and (self.lora_r < 1 or not self.lora_target_modules.strip()):
            raise ValueError("LoRA needs lora_r >= 1 and lora_target_modules (all-linear or module names)")
