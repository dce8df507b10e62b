"""DPO settings. Quadruples become two pairs each: (x1; y1 ≻ y2) and (x2; y2 ≻ y1)."""

from __future__ import annotations

from dataclasses import dataclass

from iopo_eval.training.base_config import PreferenceConfig


@dataclass
class DPOConfig(PreferenceConfig):
    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sequences_per_backward not in (None, 1, 2):
            raise ValueError(
                f"sequences_per_backward must be 1 or 2 for DPO, got {self.sequences_per_backward}"
            )
