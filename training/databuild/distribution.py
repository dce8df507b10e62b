"""How many constraints each instruction gets, and from which dimensions: deterministic per item.

A target distribution is a mapping {number of constraints: weight}. The default is the paper's training
set (protocols.md §1.6, Table 2 of the paper: 119,345 instructions, 1-15 constraints, mean 4.36). An
item's count is the inverse CDF of a uniform number hashed from the build seed and the item id, so it
does not depend on the other items: a shard draws what the whole build would have drawn for its items.
Dimensions are drawn without replacement, weighted by the taxonomy's weights, from the same hash.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from iopo_eval.training.databuild.errors import BuildError
from iopo_eval.training.databuild.taxonomy import Taxonomy

MAX_CONSTRAINTS = 15  # TRACE's range is 1-15
# protocols.md §1.6: the paper's training set, C = 1..15.
PAPER_TRAIN = {
    1: 991, 2: 8003, 3: 26421, 4: 34155, 5: 26327, 6: 13858, 7: 5882, 8: 2185, 9: 999, 10: 464,
    11: 8, 12: 20, 13: 20, 14: 8, 15: 4,
}  # fmt: skip
# protocols.md §1.2: TRACE's evaluation set, C = 1..15.
TRACE_EVAL = {
    1: 200, 2: 101, 3: 100, 4: 100, 5: 100, 6: 101, 7: 101, 8: 98, 9: 99, 10: 10, 11: 11, 12: 9,
    13: 4, 14: 4, 15: 4,
}  # fmt: skip
NAMED = {"paper": PAPER_TRAIN, "eval": TRACE_EVAL}
_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from a hash of ``parts`` (stable across processes and machines)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class CountDistribution:
    name: str  # how the user named it ("paper", "1-3", a file ...)
    weights: dict[int, float]

    def __post_init__(self) -> None:
        if not self.weights or sum(self.weights.values()) <= 0:
            raise BuildError(f"constraint distribution {self.name!r}: no positive weight")
        for k, w in self.weights.items():
            if not 1 <= k <= MAX_CONSTRAINTS or w < 0:
                raise BuildError(
                    f"constraint distribution {self.name!r}: counts must be 1-{MAX_CONSTRAINTS} with weights "
                    f">= 0, got {k}: {w}"
                )

    @property
    def shares(self) -> dict[int, float]:
        total = sum(self.weights.values())
        return {k: self.weights[k] / total for k in sorted(self.weights)}

    @property
    def mean(self) -> float:
        return sum(k * s for k, s in self.shares.items())

    def draw(self, build_seed: int, item_id: str) -> int:
        shares = self.shares
        counts = list(shares)
        cumulative = []
        running = 0.0
        for k in counts:
            running += shares[k]
            cumulative.append(running)
        u = _unit(build_seed, item_id, "count")
        return counts[min(bisect.bisect_right(cumulative, u), len(counts) - 1)]


def parse_distribution(spec: str) -> CountDistribution:
    """``paper`` (default), ``eval``, one count ``3``, a range ``1-3`` (uniform), ``1:5,2:3,...`` or a
    JSON/YAML file holding such a mapping."""
    spec = spec.strip()
    if spec in NAMED:
        return CountDistribution(spec, {k: float(v) for k, v in NAMED[spec].items()})
    if spec.isdigit():
        return CountDistribution(spec, {int(spec): 1.0})
    match = _RANGE.match(spec)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
        if low > high:
            raise BuildError(f"constraint distribution {spec!r}: the range is empty")
        return CountDistribution(spec, {k: 1.0 for k in range(low, high + 1)})
    path = Path(spec)
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise BuildError(f"constraint distribution file {path}: not valid YAML/JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise BuildError(f"constraint distribution file {path}: expected a mapping count -> weight")
        items: list[tuple[Any, Any]] = list(raw.items())
    elif ":" in spec:
        items = [(a, b) for a, _, b in (part.partition(":") for part in spec.split(",") if part.strip())]
    else:
        raise BuildError(
            f"constraint distribution {spec!r}: use paper, eval, a range like 1-3, pairs like 1:5,2:3 or a file"
        )
    weights: dict[int, float] = {}
    for key, value in items:
        try:
            weights[int(str(key).strip())] = float(str(value).strip())
        except ValueError:
            raise BuildError(f"constraint distribution {spec!r}: {key}:{value} is not count:weight") from None
    return CountDistribution(spec, weights)


def draw_dimensions(taxonomy: Taxonomy, n: int, build_seed: int, item_id: str) -> list[str]:
    """``n`` distinct dimension ids, weighted by the taxonomy (fewer if fewer have a positive weight)."""
    rng = random.Random(json.dumps([build_seed, item_id, "dimensions"]))
    pool = {d.id: d.sampling_weight for d in taxonomy.dimensions.values() if d.sampling_weight > 0}
    chosen: list[str] = []
    while pool and len(chosen) < n:
        ids = list(pool)
        pick = rng.choices(ids, weights=[pool[i] for i in ids])[0]
        chosen.append(pick)
        del pool[pick]
    return chosen
