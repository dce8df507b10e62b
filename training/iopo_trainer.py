"""IOPO trainer: four sequences per example, loss −log σ(β·(Π1+Π2)/2) (protocols.md §1.7)."""

from __future__ import annotations

import torch

from iopo_eval.training.base_trainer import SequenceLossTrainer
from iopo_eval.training.data import Example, as_quadruples
from iopo_eval.training.iopo_config import IOPOConfig
from iopo_eval.training.losses import LossOutput, iopo_loss


class IOPOTrainer(SequenceLossTrainer):
    method = "iopo"
    n_sequences = 4
    needs_reference = True
    args: IOPOConfig

    def prepare_examples(self, examples: list[Example]) -> list[Example]:
        return list(as_quadruples(examples))

    def sequence_loss(
        self, policy: torch.Tensor, reference: torch.Tensor | None, counts: torch.Tensor
    ) -> LossOutput:
        assert reference is not None
        return iopo_loss(
            policy,
            reference,
            self.args.beta,
            self.args.label_smoothing,
            counts,
            sft_weight=self.args.pref_ftx,
        )

    def gradient_signs(self) -> torch.Tensor | None:
        # ∂L/∂ℓ = c·(+1, −1, +1, −1) per example, c = −β·[(1−ε)·σ(−βz) − ε·σ(βz)]; the SFT term breaks the form
        return None if self.args.pref_ftx else torch.tensor([1.0, -1.0, 1.0, -1.0])
