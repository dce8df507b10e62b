"""IOPO settings (protocols.md §1.7)."""

from __future__ import annotations

from dataclasses import dataclass, field

from iopo_eval.training.base_config import PreferenceConfig


@dataclass
class IOPOConfig(PreferenceConfig):
    pref_ftx: float = field(
        default=0.0,
        metadata={
            "help": "Weight of the SFT term −mean-token log π(y1|x1) − mean-token log π(y2|x2) "
            "(LLaMA-Factory's pref_ftx; paper: 0)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sequences_per_backward not in (None, 1, 2, 4):
            raise ValueError(
                f"sequences_per_backward must be 1, 2 or 4 for IOPO, got {self.sequences_per_backward}"
            )
