"""Pure losses of IOPO, DPO and SFT: functions of per-sequence log-prob tensors and beta, nothing else.

Sequence order inside one IOPO example (protocols.md §1.7, LLaMA-Factory's pairwise encoder):

    0: (x1, y1)  chosen_v1      1: (x1, y2)  rejected_v1
    2: (x2, y2)  chosen_v2      3: (x2, y1)  rejected_v2

With r_ij = log πθ(y_j|x_i) − log πref(y_j|x_i) the IOPO logit is
0.5·(Π1 + Π2) with Π1 = 2·r11 − r12 − r21 and Π2 = 2·r22 − r21 − r12, which simplifies to
r11 + r22 − r12 − r21: each of r12 and r21 appears once in Π1 and once in Π2, halved to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

IOPO_SEQUENCES = ("x1_y1", "x1_y2", "x2_y2", "x2_y1")
DPO_SEQUENCES = ("chosen", "rejected")


@dataclass
class LossOutput:
    """Per-example losses (shape [B]) and detached per-example metrics for logging."""

    losses: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


def _sigmoid_loss(beta_logits: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """−(1−ε)·log σ(z) − ε·log σ(−z): the conservative (label-smoothed) sigmoid loss of DPO and IOPO."""
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must lie in [0, 0.5), got {label_smoothing}")
    return -(1.0 - label_smoothing) * F.logsigmoid(beta_logits) - label_smoothing * F.logsigmoid(-beta_logits)


def _check(policy: torch.Tensor, reference: torch.Tensor, n: int, name: str) -> None:
    if policy.ndim != 2 or policy.shape[1] != n:
        raise ValueError(f"{name}: policy log-probs must have shape [batch, {n}], got {tuple(policy.shape)}")
    if reference.shape != policy.shape:
        raise ValueError(
            f"{name}: reference log-probs shape {tuple(reference.shape)} != policy {tuple(policy.shape)}"
        )


def iopo_loss(
    policy_logps: torch.Tensor,
    reference_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
    token_counts: torch.Tensor | None = None,
    sft_weight: float = 0.0,
) -> LossOutput:
    """IOPO loss per example: −log σ(β·(Π1+Π2)/2), optionally label-smoothed, plus an optional SFT term.

    ``policy_logps`` and ``reference_logps`` hold summed response log-probs, shape [B, 4], in the order of
    ``IOPO_SEQUENCES``. The SFT term (LLaMA-Factory's ``pref_ftx``) adds
    ``sft_weight·(−mean-token log π(y1|x1) − mean-token log π(y2|x2))`` and needs ``token_counts`` [B, 4].
    """
    _check(policy_logps, reference_logps, 4, "iopo_loss")
    r = policy_logps - reference_logps
    r11, r12, r22, r21 = r.unbind(dim=1)
    pi1 = 2 * r11 - r12 - r21  # output preference y1≻y2 | x1, plus input preference x1≻x2 | y1
    pi2 = 2 * r22 - r21 - r12  # output preference y2≻y1 | x2, plus input preference x2≻x1 | y2
    logits = 0.5 * (pi1 + pi2)
    losses = _sigmoid_loss(beta * logits, label_smoothing)
    if sft_weight:
        if token_counts is None:
            raise ValueError("iopo_loss: the SFT term (sft_weight > 0) needs token_counts")
        counts = token_counts.clamp(min=1).to(policy_logps.dtype)
        mean_11 = policy_logps[:, 0] / counts[:, 0]
        mean_22 = policy_logps[:, 2] / counts[:, 2]
        losses = losses + sft_weight * (-mean_11 - mean_22)
    with torch.no_grad():
        rewards = beta * r.detach()
        metrics = {
            "rewards/chosen_v1": rewards[:, 0],
            "rewards/rejected_v1": rewards[:, 1],
            "rewards/chosen_v2": rewards[:, 2],
            "rewards/rejected_v2": rewards[:, 3],
            "rewards/accuracies_v1": (r11 > r12).float().detach(),
            "rewards/accuracies_v2": (r22 > r21).float().detach(),
            "logits": logits.detach(),
        }
    return LossOutput(losses, metrics)


def dpo_loss(
    policy_logps: torch.Tensor,
    reference_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> LossOutput:
    """DPO sigmoid loss per pair: −log σ(β·[(log πθ(yc)−log πref(yc)) − (log πθ(yr)−log πref(yr))]).

    Shapes [B, 2], columns (chosen, rejected), summed response log-probs; the same definition as TRL's
    ``loss_type="sigmoid"`` with ``f_divergence_type="reverse_kl"``.
    """
    _check(policy_logps, reference_logps, 2, "dpo_loss")
    r = policy_logps - reference_logps
    margin = r[:, 0] - r[:, 1]
    losses = _sigmoid_loss(beta * margin, label_smoothing)
    with torch.no_grad():
        metrics = {
            "rewards/chosen": beta * r[:, 0].detach(),
            "rewards/rejected": beta * r[:, 1].detach(),
            "rewards/accuracies": (margin > 0).float().detach(),
            "rewards/margins": beta * margin.detach(),
        }
    return LossOutput(losses, metrics)


def sft_loss(policy_logps: torch.Tensor, token_counts: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood over the whole batch (every response token weighs the same)."""
    total = token_counts.sum().clamp(min=1).to(policy_logps.dtype)
    return -policy_logps.sum() / total
