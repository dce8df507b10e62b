"""lm-eval glue for TRACE: data loader, per-document scoring and aggregations.

The judging itself happens once per task in the ``iopo_judge`` filter (iopo_eval.lm_eval_filter);
here each document's judged result is turned into its metric values. Metrics are fractions (0-1),
as lm-eval reports accuracy; ``iopo-eval`` results report the same numbers in percent.
"""

from __future__ import annotations

import math
from typing import Any

import datasets

import iopo_eval.lm_eval_filter  # noqa: F401  (registers the iopo_judge filter)
from iopo_eval.data.trace import load_trace, parse_row
from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.scoring.trace import item_record, lm_eval_doc


def loader(**kwargs: Any) -> datasets.DatasetDict:
    """Both splits of the TRACE evaluation file: ``single`` (IF-S, 200) and ``multi`` (IF-M, 842).

    ``data_mirror`` in the task metadata (``--metadata '{"data_mirror": DIR}'``) or
    $IOPO_EVAL_DATA_MIRROR selects a local mirror; otherwise the pinned upstream file is downloaded.
    """
    splits: dict[str, list[dict[str, Any]]] = {"single": [], "multi": []}
    for item in load_trace(mirror=kwargs.get("data_mirror")):
        splits[item.subset].append(lm_eval_doc(item))
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    judged = results[0]
    if not isinstance(judged, dict) or "judgements" not in judged:
        raise TypeError("TRACE documents must pass through the iopo_judge filter before scoring")
    item = parse_row(doc, f"trace doc {doc.get('id')!r}")
    record = item_record(item, judged["response"], JudgeOutcome.from_json(judged["judgements"][0]))
    failed = record.status != "ok"
    values = record.values
    rate_key = "if_s" if item.subset == "single" else "if_m"
    mean_score = values.get("mean_score")
    return {
        rate_key: values.get(rate_key),
        "mean_score": None if mean_score is None else mean_score[0] / mean_score[1],
        "judge_failures": int(failed),
    }


def mean_judged(values: list[float | None]) -> float:
    """Mean over judged documents; failed judgements are counted in judge_failures instead."""
    judged = [v for v in values if v is not None]
    return sum(judged) / len(judged) if judged else math.nan


def count(values: list[int]) -> int:
    return int(sum(values))
