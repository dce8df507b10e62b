"""The order in which training examples are visited, and which of them a run will visit at all.

The trainer owns its sampler instead of taking accelerate's replacement of ``RandomSampler``: the order of
epoch ``e`` is a permutation drawn from ``seed + e`` alone, identical on every rank (accelerate then hands
rank ``r`` the batches ``r, r + W, r + 2W, ...``), after a resume and in a fresh process. Because the order is
a pure function, a run can say beforehand which examples it will see: a ``max_steps`` run shorter than one
epoch sees only the first ``steps × global batch`` examples of epoch 0's order, and only those need
reference log-probs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(n, generator=generator).tolist()


class EpochShuffleSampler(Sampler[int]):
    """Shuffled indices; epoch ``e``'s order depends only on ``seed + e`` (``set_epoch`` picks ``e``)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        yield from epoch_order(self.n, self.seed, self.epoch)

    def __len__(self) -> int:
        return self.n


@dataclass(frozen=True)
class StepPlan:
    """How many optimizer steps a run makes, computed the way ``transformers.Trainer`` does."""

    n_examples: int
    per_device_batch: int
    world_size: int
    grad_accum: int
    max_steps: int  # <= 0: use epochs
    epochs: float

    @property
    def global_batch(self) -> int:
        return self.per_device_batch * self.world_size * self.grad_accum

    @property
    def steps_per_epoch(self) -> int:
        batches = math.ceil(self.n_examples / self.per_device_batch)
        per_rank = math.ceil(batches / self.world_size)  # accelerate evens the batches out across ranks
        return max(math.ceil(per_rank / self.grad_accum), 1)

    @property
    def total_steps(self) -> int:
        if self.max_steps > 0:
            return self.max_steps
        return math.ceil(self.epochs * self.steps_per_epoch)

    def seen_indices(self, seed: int) -> list[int]:
        """Indices of the examples the run visits (sorted). Shorter than an epoch: a prefix of epoch 0."""
        if self.total_steps >= self.steps_per_epoch:
            return list(range(self.n_examples))
        count = min(self.n_examples, self.total_steps * self.global_batch)
        return sorted(epoch_order(self.n_examples, seed, 0)[:count])
