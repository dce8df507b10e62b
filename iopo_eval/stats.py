"""Statistics over per-item values: ratio estimates, bootstrap intervals, paired tests.

Every metric in iopo-eval is a ratio of sums over items: an item contributes ``(num, den)``
(a 0/1 outcome is ``(x, 1)``; a micro-average such as IFEval's instruction-level accuracy is
``(passed, total)``). One estimator and one bootstrap then serve every benchmark and breakdown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_BOOTSTRAP = 1000
DEFAULT_SEED = 1234


def as_pair(value: float | Sequence[float]) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), 1.0
    num, den = value
    return float(num), float(den)


def ratio(nums: np.ndarray, dens: np.ndarray) -> float:
    total = float(dens.sum())
    return float(nums.sum()) / total if total > 0 else math.nan


def bootstrap_ci(
    nums: np.ndarray,
    dens: np.ndarray,
    iters: int = DEFAULT_BOOTSTRAP,
    alpha: float = 0.05,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of sum(num)/sum(den), resampling items with replacement."""
    n = len(nums)
    if n == 0 or iters <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(iters, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        stats = nums[idx].sum(axis=1) / dens[idx].sum(axis=1)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedComparison:
    n: int
    baseline: float
    candidate: float
    delta: float  # candidate - baseline
    ci_low: float
    ci_high: float
    p_value: float  # one-sided: probability of a delta this low or lower under no change (bootstrap)


def paired_bootstrap(
    base_num: np.ndarray,
    base_den: np.ndarray,
    cand_num: np.ndarray,
    cand_den: np.ndarray,
    iters: int = 2000,
    alpha: float = 0.05,
    seed: int = DEFAULT_SEED,
) -> PairedComparison:
    """Paired bootstrap of the difference of two ratio metrics on the same items.

    The p-value is one-sided for a drop: the share of resampled deltas that are >= 0, i.e. how
    often the resampled candidate does not do worse than the baseline.
    """
    n = len(base_num)
    base, cand = ratio(base_num, base_den), ratio(cand_num, cand_den)
    if n == 0:
        return PairedComparison(0, math.nan, math.nan, math.nan, math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(iters, n))
    with np.errstate(invalid="ignore", divide="ignore"):
        deltas = cand_num[idx].sum(1) / cand_den[idx].sum(1) - base_num[idx].sum(1) / base_den[idx].sum(1)
    deltas = deltas[np.isfinite(deltas)]
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    p_value = float((np.sum(deltas >= 0) + 1) / (deltas.size + 1))
    return PairedComparison(n, base, cand, cand - base, float(lo), float(hi), p_value)


def mcnemar(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from discordant counts.

    b = items the baseline passed and the candidate failed; c = the reverse. Under no change each
    discordant item is a fair coin, so the p-value is scipy's exact two-sided binomial test of b among
    b+c (for p = 1/2 this equals twice the smaller tail, capped at 1).
    """
    from scipy.stats import binomtest  # imported here: scipy.stats takes a second to import

    n = b + c
    if n == 0:
        return 1.0
    return float(binomtest(b, n, 0.5, alternative="two-sided").pvalue)


def is_binary(nums: np.ndarray, dens: np.ndarray) -> bool:
    """True when every item contributes a plain pass/fail outcome: ``(0, 1)`` or ``(1, 1)``."""
    return bool(nums.size) and bool(np.all(dens == 1.0)) and bool(np.all((nums == 0.0) | (nums == 1.0)))


def discordant_counts(base: np.ndarray, cand: np.ndarray) -> tuple[int, int]:
    """McNemar's discordant cells for paired 0/1 outcomes: (baseline pass & candidate fail,
    baseline fail & candidate pass)."""
    base_ok, cand_ok = base.astype(bool), cand.astype(bool)
    return int(np.sum(base_ok & ~cand_ok)), int(np.sum(~base_ok & cand_ok))
