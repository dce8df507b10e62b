"""Summed response log-probs without materialising a float32 log-softmax over the whole vocabulary.

A causal LM's forward builds logits for every position (``[tokens, vocab]``, 151,936 columns for Qwen2) and
the usual ``log_softmax(...).gather(...)`` copies them to float32 once more. Here only the positions whose next
token is a response token go through the LM head, in chunks of ``chunk_size`` tokens, and each chunk reduces
to ``logit[label] − logsumexp(logits)`` at once. Under autograd each chunk is checkpointed, so the chunk's
logits are rebuilt in the backward pass instead of being kept: extra memory is one chunk of logits, not
``tokens × vocab``.

The computation is installed on the model as an extra mode of its ``forward`` (``install_logprob_forward``):
calling the model itself keeps DDP/FSDP/DeepSpeed/PEFT wrappers in the path, which an ``accelerate launch``
run needs for its gradient hooks.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint
from transformers import PreTrainedModel

IGNORE_INDEX = -100
_MARK = "_iopo_logprob_forward"
_ORIGINAL = "_iopo_original_forward"


def _label_logps(hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
    logits = lm_head(hidden)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 -> fp32, fp64 stays
    picked = logits.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def selected_token_logps(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module, chunk_size: int = 1024
) -> torch.Tensor:
    """log p(label) for each row of ``hidden`` [T, H] given ``labels`` [T], ``chunk_size`` rows at a time."""
    if hidden.shape[0] == 0:
        return hidden.new_zeros(0, dtype=torch.promote_types(hidden.dtype, torch.float32))
    pieces = []
    for start in range(0, hidden.shape[0], chunk_size):
        h, y = hidden[start : start + chunk_size], labels[start : start + chunk_size]
        if torch.is_grad_enabled() and h.requires_grad:
            pieces.append(checkpoint(_label_logps, h, y, lm_head, use_reentrant=False))
        else:
            pieces.append(_label_logps(h, y, lm_head))
    return torch.cat(pieces)


def _causal_lm(model: nn.Module) -> PreTrainedModel:
    """The innermost ``PreTrainedModel`` (under PEFT, DDP and similar wrappers)."""
    inner = model
    for _ in range(8):
        if isinstance(inner, PreTrainedModel):
            if inner.get_output_embeddings() is None:
                break
            return inner
        if (get_base_model := getattr(inner, "get_base_model", None)) is not None:  # PEFT
            inner = get_base_model()
        elif isinstance(wrapped := getattr(inner, "module", None), nn.Module):
            inner = wrapped
        else:
            break
    raise TypeError(f"{type(model).__name__}: found no causal LM with an output embedding inside")


def _check_plain_head(lm: PreTrainedModel) -> None:
    config = lm.config.get_text_config() if hasattr(lm.config, "get_text_config") else lm.config
    for attr in ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier"):
        value = getattr(config, attr, None)
        if value not in (None, 1, 1.0):
            raise NotImplementedError(
                f"{type(lm).__name__}: config.{attr}={value}; the chunked log-prob head handles only plain "
                "lm_head(hidden) logits (Llama, Qwen2, Mistral, SmolLM2, ...)"
            )


def install_logprob_forward(model: nn.Module, chunk_size: int = 1024) -> nn.Module:
    """Give the causal LM inside ``model`` a ``forward(..., logprob_labels=L)`` mode.

    In that mode the forward returns ``{"logps": [S], "token_counts": [S]}``: per sequence, the summed
    log-prob of the tokens where ``L`` (same shape as ``input_ids``; ``-100`` elsewhere) is set, each token
    predicted from the positions before it. Without ``logprob_labels`` the original forward runs (generation
    is unchanged). Install before or after wrapping with PEFT; idempotent.
    """
    lm = _causal_lm(model)
    _check_plain_head(lm)
    if getattr(lm, _MARK, None) is not None:
        setattr(lm, _MARK, chunk_size)
        return model
    # Kept on the instance (not in a closure) so that copy.deepcopy rebinds it to the copy.
    setattr(lm, _ORIGINAL, lm.forward)
    setattr(lm, _MARK, chunk_size)

    def forward(
        self: PreTrainedModel, *args: Any, logprob_labels: torch.Tensor | None = None, **kwargs: Any
    ) -> Any:
        if logprob_labels is None:
            return getattr(self, _ORIGINAL)(*args, **kwargs)
        for unused in ("labels", "return_dict", "output_attentions", "output_hidden_states"):
            kwargs.pop(unused, None)
        kwargs["use_cache"] = False
        backbone = getattr(self, self.base_model_prefix)
        hidden = backbone(*args, **kwargs).last_hidden_state[:, :-1]
        targets = logprob_labels[:, 1:].to(hidden.device)
        mask = targets != IGNORE_INDEX
        token_logps = selected_token_logps(
            hidden[mask], targets[mask], self.get_output_embeddings(), getattr(self, _MARK)
        )
        rows = torch.arange(mask.shape[0], device=hidden.device).unsqueeze(1).expand_as(mask)[mask]
        sums = torch.zeros(mask.shape[0], dtype=token_logps.dtype, device=hidden.device)
        sums = sums.index_add(0, rows, token_logps)
        return {"logps": sums, "token_counts": mask.sum(dim=1)}

    lm.forward = types.MethodType(forward, lm)
    return model


def sequence_logps(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed response log-probs [S], response token counts [S]) through ``model``'s installed head."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, logprob_labels=labels)
    return out["logps"], out["token_counts"]


def reference_logps_full_softmax(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """The textbook computation (full logits, float32 log-softmax); used only to check the chunked one."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logp * mask).sum(dim=1)
