"""SFT settings: token-mean negative log-likelihood of the response tokens."""

from __future__ import annotations

from dataclasses import dataclass

from iopo_eval.training.base_config import BaseTrainConfig


@dataclass
class SFTConfig(BaseTrainConfig):
    pass
