"""lm-eval glue for CFBench: the data loader. Judging (the ``iopo_judge`` filter), per-document scoring
(CSR / ISR / PSR, iopo_eval.scoring.cfbench) and the aggregations are the same for every benchmark
(iopo_eval.lm_eval_glue). Metrics are fractions (0-1); ``iopo-eval`` results show them in percent.
"""

from __future__ import annotations

from typing import Any

import datasets

from iopo_eval.data.cfbench import load_cfbench
from iopo_eval.lm_eval_glue import count, mean_judged, process_results

__all__ = ["count", "loader", "mean_judged", "process_results"]


def loader(**kwargs: Any) -> datasets.DatasetDict:
    """All 1,000 items in idx order as one ``test`` split (easy and hard are reported from it).

    ``data_mirror`` in the task metadata (``--metadata '{"data_mirror": DIR}'``) or
    $IOPO_EVAL_DATA_MIRROR selects a local mirror; otherwise the pinned upstream file is downloaded."""
    items = sorted(load_cfbench(mirror=kwargs.get("data_mirror")), key=lambda item: item.idx)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list([item.to_doc() for item in items])})
