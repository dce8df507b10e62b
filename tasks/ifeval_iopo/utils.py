"""lm-eval glue for ifeval_iopo: data loader, per-document scoring through iopo_eval.scoring.ifeval,
and the micro-average of instruction-level outcomes. Same numbers as `iopo-eval score ifeval`."""

from __future__ import annotations

from typing import Any

import datasets

from iopo_eval.punkt import ensure_punkt
from iopo_eval.scoring.ifeval import IFEvalItem, load_ifeval, score_response

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
    values = score_response(IFEvalItem.from_doc(doc), results[0]).values
    return {name: values[name] for name in ("prompt_strict", "prompt_loose", "inst_strict", "inst_loose")}


def micro_average(pairs: list[list[float]]) -> float:
    """Passed instructions over all instructions: each document contributes [passed, total]."""
    passed = sum(p[0] for p in pairs)
    total = sum(p[1] for p in pairs)
    return passed / total if total else float("nan")
