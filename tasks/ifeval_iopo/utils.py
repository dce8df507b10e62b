"""lm-eval glue for ifeval_iopo: the data loader and per-document scoring through
iopo_eval.scoring.ifeval (rule checks, no judge); the micro-average is shared with the other benchmarks
(iopo_eval.lm_eval_glue). Same numbers as `iopo-eval score ifeval`."""

from __future__ import annotations

from typing import Any

import datasets

from iopo_eval.data.ifeval import IFEvalItem, load_ifeval
from iopo_eval.lm_eval_glue import micro_judged
from iopo_eval.punkt import ensure_punkt
from iopo_eval.scoring.ifeval import IFEVAL, score_response

__all__ = ["loader", "micro_judged", "process_results"]

# Before anything imports lm-eval's IFEval checkers (e.g. its own ifeval task in the same run), whose
# import calls nltk.download when no Punkt model is found.
ensure_punkt()


def loader(**kwargs: Any) -> datasets.DatasetDict:
    """The 541 upstream rows as the ``test`` split. ``data_mirror`` in the task metadata
    (``--metadata '{"data_mirror": DIR}'``) or $IOPO_EVAL_DATA_MIRROR selects a local mirror;
    otherwise the pinned upstream file is downloaded."""
    items = load_ifeval(mirror=kwargs.get("data_mirror"))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list([item.to_doc() for item in items])})


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """The raw generation is checked here (no filter: nothing to judge)."""
    return IFEVAL.lm_eval_values(score_response(IFEvalItem.from_doc(doc), results[0]))
