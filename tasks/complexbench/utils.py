"""lm-eval glue for ComplexBench: the data loaders. Judging (the ``iopo_judge`` filter, both judges),
per-document scoring (DRFR, iopo_eval.scoring.complexbench) and the aggregations are the same for every
benchmark (iopo_eval.lm_eval_glue). Metrics are fractions (0-1), as lm-eval reports accuracy;
``iopo-eval`` results report the same numbers in percent, with every breakdown.
"""

from __future__ import annotations

from typing import Any

import datasets

from iopo_eval.lm_eval_glue import count, mean_judged, micro_judged, process_results
from iopo_eval.scoring.complexbench import docs_for

__all__ = ["count", "loader_en", "loader_zh", "mean_judged", "micro_judged", "process_results"]


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
