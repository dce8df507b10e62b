"""The replication's tables: scores with bootstrap intervals, paired tests, and the power each comparison had.

Every comparison is paired on the same items. Per training seed, a pass/fail metric gets McNemar's exact test
on the discordant items. With several seeds, each method is pooled item by item (an item's value is the
share of seeds that followed it), and IOPO − DPO is tested with an exact (or Monte Carlo) sign-flip
permutation test on the per-item differences, beside a paired bootstrap interval.

Power: from the per-item differences d_i, the minimum detectable difference at two-sided α = 0.05 with 80%
power is (z₀.₉₇₅ + z₀.₈)·sd(d)/√n, and the items needed to detect the observed Δ at that power are
((z₀.₉₇₅ + z₀.₈)·sd(d)/Δ)². A difference below the MDE is one this run could not have told from zero.
"""

from __future__ import annotations

import itertools
import json
import math
from statistics import NormalDist
from typing import Any

import numpy as np

METRICS = (
    ("heldout", "instruction"),
    ("heldout", "constraint"),
    ("ifeval", "instruction"),
    ("ifeval", "constraint"),
)
TESTED = (("heldout", "instruction"), ("ifeval", "instruction"), ("ifeval", "constraint"))
LABELS = {
    "heldout/instruction": "held-out: all constraints",
    "heldout/constraint": "held-out: per constraint",
    "ifeval/instruction": "IFEval prompt strict",
    "ifeval/constraint": "IFEval instruction strict",
}
ALPHA, POWER = 0.05, 0.8
Z = NormalDist().inv_cdf(1 - ALPHA / 2) + NormalDist().inv_cdf(POWER)  # 2.80


def arrays(result: dict[str, Any], subset: str, level: str) -> tuple[np.ndarray, np.ndarray]:
    """(num, den) per item: instruction level 0/1 per item, constraint level (followed, total)."""
    rows = [r for r in result["rows"] if r["set"] == subset]
    if level == "instruction":
        return np.array([float(all(r["followed"])) for r in rows]), np.ones(len(rows))
    nums = np.array([float(sum(r["followed"])) for r in rows])
    return nums, np.array([float(len(r["followed"])) for r in rows])


def power(d: np.ndarray) -> dict[str, float | None]:
    """MDE at α=0.05 two-sided and 80% power, and the items needed for the observed mean difference."""
    n = len(d)
    if n < 2:
        return {"sd": None, "mde": None, "items_needed": None}
    sd = float(np.std(d, ddof=1))
    mean = float(np.mean(d))
    mde = Z * sd / math.sqrt(n) if sd > 0 else None
    needed = math.ceil((Z * sd / mean) ** 2) if sd > 0 and mean != 0 else None
    return {"sd": sd, "mde": mde, "items_needed": needed}


def sign_flip_p(d: np.ndarray, iters: int = 20000, seed: int = 1234) -> float:
    """Two-sided paired permutation p-value of mean(d) = 0: each item's difference keeps or flips its sign
    (exact for up to 16 non-zero differences, Monte Carlo with ``iters`` draws above)."""
    nz = d[d != 0]
    if nz.size == 0:
        return 1.0
    observed = abs(nz.sum()) - 1e-12
    if nz.size <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=nz.size)))
        return float(np.mean(np.abs(signs @ nz) >= observed))
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(iters, nz.size))
    return float((np.sum(np.abs(signs @ nz) >= observed) + 1) / (iters + 1))


def _pool(arrays_by_name: dict[str, dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]]) -> None:
    """Add ``<method>@pooled``: num and den summed over seeds item by item, so the bootstrap and the tests
    resample items, not (seed, item) pairs that share an item."""
    for method in ("dpo", "iopo"):
        seeded = [k for k in arrays_by_name if k.split("@")[0] == method and "@" in k]
        if len(seeded) > 1:
            arrays_by_name[f"{method}@pooled"] = {
                m: (
                    np.sum([arrays_by_name[k][m][0] for k in seeded], axis=0),
                    np.sum([arrays_by_name[k][m][1] for k in seeded], axis=0),
                )
                for m in METRICS
            }


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    out = []
    for base, cand in (("dpo", "iopo"), ("sft", "iopo"), ("sft", "dpo"), ("base", "sft")):
        for b_name in [k for k in names if k.split("@")[0] == base]:
            for c_name in [k for k in names if k.split("@")[0] == cand]:
                b_tag = b_name.split("@")[1] if "@" in b_name else None
                c_tag = c_name.split("@")[1] if "@" in c_name else None
                if b_tag and c_tag and b_tag != c_tag:
                    continue
                if "pooled" in (b_tag, c_tag) and not (b_tag == c_tag == "pooled"):
                    continue
                out.append((b_name, c_name))
    return out


def report(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from iopo_eval.stats import bootstrap_ci, discordant_counts, is_binary, mcnemar, paired_bootstrap, ratio

    by_name = {name: {m: arrays(res, *m) for m in METRICS} for name, res in results.items()}
    _pool(by_name)
    table: dict[str, Any] = {}
    lines = [
        "| model | held-out: all constraints | held-out: per constraint | IFEval: prompt strict | IFEval: instruction strict |",
        "|---|---|---|---|---|",
    ]
    for name, per_metric in by_name.items():
        cells = []
        for subset, level in METRICS:
            nums, dens = per_metric[(subset, level)]
            if not len(nums):
                cells.append("—")
                continue
            value, (lo, hi) = ratio(nums, dens), bootstrap_ci(nums, dens)
            table.setdefault(name, {})[f"{subset}/{level}"] = {
                "value": value,
                "ci95": [lo, hi],
                "n": len(nums),
            }
            cells.append(f"{100 * value:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    comparisons: list[dict[str, Any]] = []
    for b_name, c_name in _pairs(list(by_name)):
        for m in TESTED:
            bn, bd = by_name[b_name][m]
            cn, cd = by_name[c_name][m]
            if not len(bn):
                continue
            pc = paired_bootstrap(bn, bd, cn, cd)
            binary = is_binary(bn, bd) and is_binary(cn, cd)
            b, c = discordant_counts(bn, cn) if binary else (None, None)
            # per-item contributions whose mean is exactly Δ (a ratio of sums: each item weighted by its
            # share of the denominator; for pass/fail items simply candidate − baseline)
            d = cn / cd.mean() - bn / bd.mean()
            pw = power(d)
            comparisons.append({
                "baseline": b_name, "candidate": c_name, "metric": f"{m[0]}/{m[1]}", "n": len(bn),
                "delta": pc.delta, "ci95": [pc.ci_low, pc.ci_high],
                "mcnemar_p": mcnemar(b, c) if b is not None and c is not None else None,
                "discordant": [b, c] if binary else None,
                "sign_flip_p": sign_flip_p(d), **pw,
            })  # fmt: skip
    lines += [
        "",
        "| candidate − baseline | metric | items | Δ (points) | 95% CI | p (McNemar / sign-flip) | MDE (80% power) | items for Δ |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in comparisons:
        lo, hi = row["ci95"]
        p_text = f"{row['mcnemar_p']:.3f} (McNemar {tuple(row['discordant'])})" if row["mcnemar_p"] is not None else (
            f"{row['sign_flip_p']:.3f} (sign-flip)"
        )  # fmt: skip
        mde = f"{100 * row['mde']:.1f}" if row["mde"] is not None else "—"
        need = str(row["items_needed"]) if row["items_needed"] is not None else "—"
        lines.append(
            f"| {row['candidate']} − {row['baseline']} | {LABELS[row['metric']]} | {row['n']} | {100 * row['delta']:+.1f} | "
            f"[{100 * lo:+.1f}, {100 * hi:+.1f}] | {p_text} | {mde} | {need} |"
        )
    seeds_summary = _seed_directions(comparisons)
    if seeds_summary:
        lines += ["", seeds_summary]
    by_family = _by_family(results)
    families = sorted({f for counts in by_family.values() for f in counts})
    if families:
        lines += [
            "",
            "| held-out constraints followed, by family (seeds pooled) | " + " | ".join(families) + " |",
        ]
        lines.append("|---|" + "---|" * len(families))
        for key, counts in by_family.items():
            lines.append(
                f"| {key} | " + " | ".join(f"{counts[f][0]}/{counts[f][1]}" for f in families) + " |"
            )
    head = [
        "# Replication: IOPO vs DPO (rule-built quadruples, CPU)",
        "",
        "Values in % with percentile-bootstrap 95% intervals over items; comparisons are paired on the same items.",
        "`@N` is the training seed of DPO/IOPO; `@pooled` pools the seeds item by item. p: McNemar exact for one",
        "seed's pass/fail items, sign-flip permutation on per-item differences for pooled or per-constraint",
        "metrics. MDE: the smallest difference this comparison could detect (α 0.05 two-sided, 80% power, from",
        "the observed spread of the per-item differences); items for Δ: how many items the observed Δ would need.",
        "",
        "```",
        json.dumps(meta, indent=1),
        "```",
        "",
    ]
    blob = {"meta": meta, "table": table, "comparisons": comparisons, "by_family": by_family}
    return "\n".join(head + lines) + "\n", blob


def _seed_directions(comparisons: list[dict[str, Any]]) -> str:
    """One line per metric: in how many seeds IOPO was above, equal to or below DPO."""
    parts = []
    for m in TESTED:
        deltas = [
            c["delta"]
            for c in comparisons
            if c["metric"] == f"{m[0]}/{m[1]}"
            and c["candidate"].startswith("iopo@")
            and c["baseline"].startswith("dpo@")
            and "pooled" not in c["candidate"]
        ]
        if len(deltas) > 1:
            up, same = sum(d > 0 for d in deltas), sum(d == 0 for d in deltas)
            parts.append(
                f"{LABELS[f'{m[0]}/{m[1]}']}: above in {up}, equal in {same}, below in {len(deltas) - up - same}"
            )
    return ("IOPO vs DPO by seed — " + "; ".join(parts) + ".") if parts else ""


def _by_family(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    families = sorted(
        {
            k.split(":")[0]
            for res in results.values()
            for r in res["rows"]
            if r["set"] == "heldout"
            for k in r["kinds"]
        }
    )
    out: dict[str, dict[str, list[int]]] = {}
    for name, res in results.items():
        counts = out.setdefault(name.split("@")[0], {f: [0, 0] for f in families})
        for r in res["rows"]:
            if r["set"] != "heldout":
                continue
            for kind, ok in zip(r["kinds"], r["followed"], strict=True):
                counts[kind.split(":")[0]][0] += int(ok)
                counts[kind.split(":")[0]][1] += 1
    return out
