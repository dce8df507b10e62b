"""Random-weight models built from a config, for tests and benchmarks (no download, no hub).

``tiny`` builds in milliseconds; ``qwen2-0.5b`` is the Qwen2-0.5B shape (random weights) used by the GPU
benchmark. The tokenizer is a byte-level BPE trained on a few sentences with a ChatML template, so every
string (Chinese too) encodes.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

SHAPES: dict[str, dict[str, int | float | bool]] = {
    "tiny": dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "small": dict(
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=4,
        num_attention_heads=8,
        num_key_value_heads=2,
    ),
    "qwen2-0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        tie_word_embeddings=True,
        rope_theta=1000000.0,
    ),
}


def tiny_tokenizer(vocab_size: int = 320) -> PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    corpus = [
        "Write a short poem about the sea.",
        "the quick brown fox jumps over the lazy dog",
        "标题 高考 大学入学",
    ]
    tok.train_from_iterator(corpus * 4, trainer)
    out = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    out.chat_template = CHATML
    return out


def random_model(
    shape: str = "tiny",
    vocab_size: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    **overrides: object,
) -> Qwen2ForCausalLM:
    """A Qwen2 of the named shape with random weights, initialised on ``device`` (default: the CPU)."""
    if shape not in SHAPES:
        raise KeyError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    kwargs: dict[str, Any] = dict(SHAPES[shape])
    if vocab_size is not None:
        kwargs["vocab_size"] = vocab_size
    kwargs.update(overrides)
    torch.manual_seed(seed)
    config = Qwen2Config(**kwargs)
    config._attn_implementation = "eager" if shape == "tiny" else "sdpa"
    with torch.device(device or "cpu"):
        return Qwen2ForCausalLM(config)
