"""lm-eval glue for TRACE: the data loader. Judging (the ``iopo_judge`` filter), per-document scoring and
the aggregations are the same for every benchmark (iopo_eval.lm_eval_glue). Metrics are fractions (0-1),
as lm-eval reports accuracy; ``iopo-eval`` results report the same numbers in percent.
"""

from __future__ import annotations

from typing import Any

import datasets

from iopo_eval.data.trace import load_trace
from iopo_eval.lm_eval_glue import count, mean_judged, process_results
from iopo_eval.scoring.trace import lm_eval_doc

__all__ = ["count", "loader", "mean_judged", "process_results"]


def loader(**kwargs: Any) -> datasets.DatasetDict:
    """Both splits of the TRACE evaluation file: ``single`` (IF-S, 200) and ``multi`` (IF-M, 842).

    ``data_mirror`` in the task metadata (``--metadata '{"data_mirror": DIR}'``) or
    $IOPO_EVAL_DATA_MIRROR selects a local mirror; otherwise the pinned upstream file is downloaded.
    """
    splits: dict[str, list[dict[str, Any]]] = {"single": [], "multi": []}
    for item in load_trace(mirror=kwargs.get("data_mirror")):
        splits[item.subset].append(lm_eval_doc(item))
    return datasets.DatasetDict({name: datasets.Dataset.from_list(rows) for name, rows in splits.items()})
