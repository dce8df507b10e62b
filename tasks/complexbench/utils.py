"""lm-eval glue for ComplexBench: data loaders, per-document scoring and aggregations.

Judging happens once per task in the ``iopo_judge`` filter (iopo_eval.lm_eval_filter); here each
document's judgements become its DRFR contribution. Metrics are fractions (0-1), as lm-eval reports
accuracy; ``iopo-eval`` results report the same numbers in percent, with every breakdown.
"""

from __future__ import annotations

import math
from typing import Any

import datasets

import iopo_eval.lm_eval_filter  # noqa: F401  (registers the iopo_judge filter)
from iopo_eval.judges.types import JudgeOutcome
from iopo_eval.scoring.complexbench import docs_for, instance_from_doc, item_record


def _loader(language: str, kwargs: dict[str, Any]) -> datasets.DatasetDict:
    """Every instance as one ``test`` document. ``data_file`` in the task metadata (or
    $IOPO_EVAL_COMPLEXBENCH_DATA) names a data file; else ``data_mirror`` / $IOPO_EVAL_DATA_MIRROR, else
    the registry download."""
    docs = docs_for(language, kwargs.get("data_mirror"), kwargs.get("data_file"))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def loader_zh(**kwargs: Any) -> datasets.DatasetDict:
    return _loader("zh", kwargs)


def loader_en(**kwargs: Any) -> datasets.DatasetDict:
    return _loader("en", kwargs)


def process_results(doc: dict[str, Any], results: list[Any]) -> dict[str, Any]:
    judged = results[0]
    if not isinstance(judged, dict) or "judgements" not in judged:
        raise TypeError("ComplexBench documents must pass through the iopo_judge filter before scoring")
    instance = instance_from_doc(doc)
    task = "complexbench" if doc["language"] == "zh" else "complexbench_en"
    outcomes = [JudgeOutcome.from_json(o) for o in judged["judgements"]]
    record = item_record(instance, doc["language"], task, judged["response"], outcomes)
    # A failed judgement is counted as upstream counts it (the record has values) and also counted here.
    return {
        "drfr": record.values.get("drfr"),
        "all_pass": record.values.get("all_pass"),
        "judge_failures": int(record.status != "ok"),
    }


def micro_judged(values: list[list[float] | None]) -> float:
    """Questions passed over questions asked, over judged documents (DRFR is a micro-average)."""
    pairs = [v for v in values if v is not None]
    den = sum(p[1] for p in pairs)
    return sum(p[0] for p in pairs) / den if den else math.nan


def mean_judged(values: list[float | None]) -> float:
    judged = [v for v in values if v is not None]
    return sum(judged) / len(judged) if judged else math.nan


def count(values: list[int]) -> int:
    return int(sum(values))
