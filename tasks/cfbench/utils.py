"""lm-eval glue for CFBench: data loader, per-document scoring and aggregations.

The judging happens once per task in the ``iopo_judge`` filter (iopo_eval.lm_eval_filter); here each
document's judgement becomes its CSR / ISR / PSR (iopo_eval.scoring.cfbench). Metrics are fractions
(0-1) as lm-eval reports them; ``iopo-eval`` results show the same numbers in percent.
"""

from __future__ import annotations

import math
from typing import Any

import datasets

import iopo_eval.lm_eval_filter  # noqa: F401  (registers the iopo_judge filter)
from iopo_eval.data.cfbench import SPLITS, load_cfbench, parse_row
from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.scoring.cfbench import item_values

RATES = ("csr", "isr", "psr")


def loader(**kwargs: Any) -> datasets.DatasetDict:
    """All 1,000 items in idx order as one ``test`` split (easy and hard are reported from it).

    ``data_mirror`` in the task metadata (``--metadata '{"data_mirror": DIR}'``) or
    $IOPO_EVAL_DATA_MIRROR selects a local mirror; otherwise the pinned upstream file is downloaded."""
    items = sorted(load_cfbench(mirror=kwargs.get("data_mirror")), key=lambda item: item.idx)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list([item.to_doc() for item in items])})


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    judged = results[0]
    if not isinstance(judged, dict) or "judgements" not in judged:
        raise TypeError("CFBench documents must pass through the iopo_judge filter before scoring")
    item = parse_row(doc, f"cfbench doc {doc.get('idx')!r}")
    outcome = JudgeOutcome.from_json(judged["judgements"][0])
    failed = outcome.status != "ok" or outcome.scores is None
    values = {} if failed else item_values(item, outcome.scores or [])
    out: dict[str, Any] = {name: values.get(name) for name in RATES}
    for split in SPLITS:
        for name in RATES:
            out[f"{split}_{name}"] = values.get(f"{split}/{name}")
    out["judge_failures"] = int(failed)
    return out


def mean_judged(values: list[float | None]) -> float:
    """Mean over judged documents of the split; failed judgements are counted in judge_failures."""
    judged = [v for v in values if v is not None]
    return sum(judged) / len(judged) if judged else math.nan


def count(values: list[int]) -> int:
    return int(sum(values))
