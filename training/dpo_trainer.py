"""DPO trainer on the same machinery as IOPO: two sequences (chosen, rejected) per pair.

Quadruples become the pairs (x1; y1 ≻ y2) and (x2; y2 ≻ y1): DPO then trains on exactly the sequences IOPO
sees, and the two methods differ only in how the four log-ratios are combined.
"""

from __future__ import annotations

import torch

from iopo_eval.training.base_trainer import SequenceLossTrainer
from iopo_eval.training.data import Example, as_pairs
from iopo_eval.training.dpo_config import DPOConfig
from iopo_eval.training.losses import LossOutput, dpo_loss


class DPOTrainer(SequenceLossTrainer):
    method = "dpo"
    n_sequences = 2
    needs_reference = True
    args: DPOConfig

    def prepare_examples(self, examples: list[Example]) -> list[Example]:
        return list(as_pairs(examples))

    def sequence_loss(
        self, policy: torch.Tensor, reference: torch.Tensor | None, counts: torch.Tensor
    ) -> LossOutput:
        assert reference is not None
        return dpo_loss(policy, reference, self.args.beta, self.args.label_smoothing)

    def gradient_signs(self) -> torch.Tensor | None:
        return torch.tensor([1.0, -1.0])  # ∂L/∂ℓ = c·(+1, −1) per pair
