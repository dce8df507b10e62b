"""Reference log-probs: which network plays πref, and the on-disk cache of precomputed values.

πref is, in order of preference: an explicit frozen ``ref_model``; the policy itself with its LoRA adapter
disabled (LLaMA-Factory's and TRL's default, so the reference is the starting checkpoint at no memory cost);
for full fine-tuning without either, a frozen copy made before the first step.

Precomputed values are cached under a key that hashes the training data, the tokenisation settings and the
reference weights, so a changed dataset, template, max length or reference never reuses stale numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from iopo_eval.paths import cache_dir


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    with model.disable_adapter():  # type: ignore[operator]
        yield


def weights_fingerprint(model: nn.Module) -> str:
    """sha256 over the names and bytes of the reference weights (LoRA adapter weights excluded)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name:
            continue
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        data = tensor.detach().to("cpu").contiguous()
        digest.update(data.view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


def tokenisation_fingerprint(tokenizer: PreTrainedTokenizerBase, max_length: int | None) -> str:
    blob = json.dumps(
        {
            "name": getattr(tokenizer, "name_or_path", ""),
            "vocab": len(tokenizer),
            "template": getattr(tokenizer, "chat_template", None),
            "eos": tokenizer.eos_token,
            "max_length": max_length,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def cache_key(data_fp: str, tokenisation_fp: str, weights_fp: str, method: str) -> str:
    return hashlib.sha256(f"{method}|{data_fp}|{tokenisation_fp}|{weights_fp}".encode()).hexdigest()[:32]


def default_cache_dir() -> Path:
    path = cache_dir() / "reference-logps"
    path.mkdir(parents=True, exist_ok=True)
    return path


def load_cached(directory: Path, key: str, n_examples: int, n_sequences: int) -> torch.Tensor | None:
    path = directory / f"{key}.pt"
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if tuple(saved.shape) != (n_examples, n_sequences):
        return None  # cannot happen for a matching key; a truncated write leaves nothing usable either
    return saved


def store_cached(directory: Path, key: str, logps: torch.Tensor) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key}.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(logps.cpu(), tmp)
    tmp.replace(path)
    return path
