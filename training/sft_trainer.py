"""SFT trainer: the paper's reference model is an SFT checkpoint, so the comparison starts here."""

from __future__ import annotations

import torch

from iopo_eval.training.base_trainer import SequenceLossTrainer
from iopo_eval.training.data import Example, as_sft
from iopo_eval.training.losses import LossOutput, sft_loss
from iopo_eval.training.sft_config import SFTConfig


class SFTTrainer(SequenceLossTrainer):
    method = "sft"
    n_sequences = 1
    needs_reference = False
    args: SFTConfig

    def prepare_examples(self, examples: list[Example]) -> list[Example]:
        return list(as_sft(examples))

    def sequence_loss(
        self, policy: torch.Tensor, reference: torch.Tensor | None, counts: torch.Tensor
    ) -> LossOutput:
        return LossOutput(sft_loss(policy, counts).reshape(1))
