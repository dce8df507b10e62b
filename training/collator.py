"""Tokenisation and batching: examples -> (prompt ids, response ids) per sequence -> padded batches.

A tokenised example holds ``n`` sequences (IOPO 4, DPO 2, SFT 1) as ``(prompt_ids, response_ids)``. All
sequences of one example share one truncation budget (LLaMA-Factory's ``infer_seqlen`` intent: the longest
prompt and the longest response decide how much of each survives, so the four IOPO sequences are cut alike).
Prompts lose tokens from the start (the generation header and the constraints at the end survive);
responses lose tokens from the end.

A batch is sequence-major, as in the upstream collator: rows ``[seq0 × B, seq1 × B, ...]``, so the
sequences of index ``k`` of all examples are the rows ``k·B … (k+1)·B − 1``. Labels are the input ids on
response tokens and -100 on prompt and padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import PreTrainedTokenizerBase

from iopo_eval.training.data import Messages, PreferencePair, Quadruple, SFTExample
from iopo_eval.training.logprobs import IGNORE_INDEX

Sequence = tuple[list[int], list[int]]


def encode(tokenizer: PreTrainedTokenizerBase, prompt: Messages, response: str) -> Sequence:
    """(prompt ids, response ids) using the tokenizer's chat template; the response carries the end of turn."""
    if getattr(tokenizer, "chat_template", None):
        # tokenize=False renders one conversation as one string (the stub returns the union of all modes)
        prompt_text = cast(
            str, tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        )
        full_text = cast(
            str,
            tokenizer.apply_chat_template(
                [*prompt, {"role": "assistant", "content": response}], tokenize=False
            ),
        )
        if not full_text.startswith(prompt_text):
            raise ValueError("the chat template renders the prompt differently once a response follows it")
        response_text = full_text[len(prompt_text) :]
    else:  # a base model: plain concatenation, the response closed by EOS
        prompt_text = "\n\n".join(m["content"] for m in prompt) + "\n\n"
        response_text = response + (tokenizer.eos_token or "")
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response_text, add_special_tokens=False)["input_ids"]
    return list(prompt_ids), list(response_ids)


def shared_budget(prompt_len: int, response_len: int, max_length: int) -> tuple[int, int]:
    """How many prompt and response tokens to keep so that prompt + response <= max_length.

    Short responses are kept whole; otherwise short prompts are; otherwise both shrink in proportion.
    """
    if prompt_len + response_len <= max_length:
        return prompt_len, response_len
    if 2 * response_len < max_length:
        keep_response = response_len
    elif 2 * prompt_len < max_length:
        keep_response = max_length - prompt_len
    else:
        keep_response = int(max_length * response_len / (prompt_len + response_len))
    keep_response = min(keep_response, response_len)
    keep_prompt = min(prompt_len, max(max_length - keep_response, 0))
    return keep_prompt, keep_response


def truncate(sequences: list[Sequence], max_length: int | None) -> list[Sequence]:
    if max_length is None:
        return sequences
    p_len = max(len(p) for p, _ in sequences)
    r_len = max(len(r) for _, r in sequences)
    keep_p, keep_r = shared_budget(p_len, r_len, max_length)
    out = []
    for p, r in sequences:
        p = p[len(p) - keep_p :] if len(p) > keep_p else p
        out.append((p, r[:keep_r]))
    return out


def tokenize_example(
    example: Quadruple | PreferencePair | SFTExample,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int | None,
) -> dict[str, Any]:
    """Encode one example into its sequences, in the order the loss expects (see losses.py)."""
    if isinstance(example, Quadruple):
        parts = [
            (example.x1, example.y1),
            (example.x1, example.y2),
            (example.x2, example.y2),
            (example.x2, example.y1),
        ]
    elif isinstance(example, PreferencePair):
        parts = [(example.prompt, example.chosen), (example.prompt, example.rejected)]
    else:
        parts = [(example.prompt, example.response)]
    cache: dict[tuple[int, str], Sequence] = {}
    seqs = []
    for prompt, response in parts:
        key = (id(prompt), response)
        if key not in cache:
            cache[key] = encode(tokenizer, prompt, response)
        seqs.append(cache[key])
    seqs = truncate(seqs, max_length)
    for i, (_, r) in enumerate(seqs):
        if not r:
            raise ValueError(
                f"example {example.id or '?'} sequence {i}: no response token left after truncation"
            )
    return {"sequences": seqs, "id": example.id}


@dataclass
class SequenceCollator:
    """Pads tokenised examples into one sequence-major batch (see the module docstring)."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = len(examples[0]["sequences"])
        if any(len(e["sequences"]) != n for e in examples):
            raise ValueError("all examples of a batch must hold the same number of sequences")
        rows = [e["sequences"][k] for k in range(n) for e in examples]
        longest = max(len(p) + len(r) for p, r in rows)
        if self.pad_to_multiple_of:
            longest = -(-longest // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(rows), longest), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), longest), dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
        for i, (p, r) in enumerate(rows):
            ids = p + r
            input_ids[i, : len(ids)] = torch.tensor(ids)
            attention[i, : len(ids)] = 1
            labels[i, len(p) : len(ids)] = torch.tensor(r)
        batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
        if "ref_logps" in examples[0]:
            batch["ref_logps"] = torch.tensor([e["ref_logps"] for e in examples], dtype=torch.float32)
        return batch


def select_sequences(
    batch: dict[str, torch.Tensor], start: int, stop: int, n_examples: int
) -> dict[str, torch.Tensor]:
    """Rows of sequences ``start … stop−1`` of every example, with padding columns that all of them share cut."""
    rows = slice(start * n_examples, stop * n_examples)
    mask = batch["attention_mask"][rows]
    width = int(mask.sum(dim=1).max().item())
    return {k: batch[k][rows, :width] for k in ("input_ids", "attention_mask", "labels")}


def select_rows(batch: dict[str, torch.Tensor], rows: list[int]) -> dict[str, torch.Tensor]:
    """The given rows, with padding columns that all of them share cut."""
    index = torch.tensor(rows, device=batch["input_ids"].device)
    width = int(batch["attention_mask"][index].sum(dim=1).max().item())
    return {k: batch[k][index, :width] for k in ("input_ids", "attention_mask", "labels")}
