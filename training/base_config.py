"""Settings shared by the IOPO, DPO and SFT configs, on top of ``transformers.TrainingArguments``.

Defaults are the paper's (protocols.md §1.7, ``examples/qwen2_lora_iopo.yaml``): lr 5e-6, 3 epochs, cosine
schedule, warmup 0.1 of the steps, max length 6000. Every field carries ``help`` so the dataclass doubles
as command-line flags through ``HfArgumentParser``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments


@dataclass
class BaseTrainConfig(TrainingArguments):
    learning_rate: float = field(default=5e-6, metadata={"help": "Peak learning rate (paper: 5e-6)."})
    num_train_epochs: float = field(
        default=3.0, metadata={"help": "Epochs over the training data (paper: 3)."}
    )
    lr_scheduler_type: str = field(
        default="cosine", metadata={"help": "Learning-rate schedule (paper: cosine)."}
    )
    warmup_steps: float = field(
        default=0.1,
        metadata={"help": "Warmup: steps, or a float in [0, 1) as a fraction of all steps (paper: 0.1)."},
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every this many optimizer steps."})
    save_steps: float = field(
        default=200, metadata={"help": "Save a resumable checkpoint every this many steps."}
    )
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep at most this many checkpoints."})
    report_to: Any = field(default="none", metadata={"help": "Experiment trackers to report to."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the collator needs the tokenised sequences."}
    )
    max_length: int | None = field(
        default=6000,
        metadata={"help": "Prompt + response tokens per sequence, shared budget (paper's cutoff_len: 6000)."},
    )
    logprob_chunk_size: int = field(
        default=1024,
        metadata={
            "help": "Response tokens per LM-head chunk when computing log-probs (bounds the logits memory)."
        },
    )


@dataclass
class PreferenceConfig(BaseTrainConfig):
    beta: float = field(default=0.1, metadata={"help": "β of the sigmoid preference loss (paper: 0.1)."})
    label_smoothing: float = field(
        default=0.0,
        metadata={"help": "ε of the conservative loss −(1−ε)·log σ(βz) − ε·log σ(−βz); in [0, 0.5)."},
    )
    precompute_ref_log_probs: bool = field(
        default=False,
        metadata={
            "help": "Compute the reference log-probs once before training and cache them by a fingerprint of "
            "the data, the tokenisation and the reference weights; otherwise compute them on the fly."
        },
    )
    precompute_ref_batch_size: int | None = field(
        default=None,
        metadata={"help": "Examples per batch when precomputing (default: per_device_train_batch_size)."},
    )
    ref_cache_dir: str | None = field(
        default=None,
        metadata={"help": "Where precomputed reference log-probs are cached (default: iopo-eval cache)."},
    )
    sequences_per_backward: int | None = field(
        default=None,
        metadata={
            "help": "Sequences whose activations are held at once. None or the method's sequence count: one "
            "forward/backward over all of them. Fewer: a no-grad pass gives the loss weights, then each "
            "group's forward/backward adds its exact share of the gradient (less memory, some more time)."
        },
    )
    lean_strategy: str = field(
        default="auto",
        metadata={
            "help": "How a lean step (sequences_per_backward=1) gets the loss weights. recompute: a batched "
            "no-grad forward first (one extra forward; any batch size, DDP). accumulate: no extra forward — "
            "IOPO/DPO weights are c·(±1) per sequence with one scalar c per example, so each example's signed "
            "gradients are accumulated first and scaled by c once its log-probs are known (costs one buffer "
            "of the trainable parameters' size while gradients accumulate; single process; not with "
            "pref_ftx). auto: accumulate with LoRA-sized trainable parameters (<= 5%), else recompute."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lean_strategy not in ("auto", "recompute", "accumulate"):
            raise ValueError(
                f"lean_strategy must be auto, recompute or accumulate, got {self.lean_strategy!r}"
            )
