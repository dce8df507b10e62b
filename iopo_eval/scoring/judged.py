"""Registry of judged benchmarks: how each turns a document and a response into judge requests.

Each benchmark module registers itself on import; ``BUILTIN`` lists the modules to import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from iopo_eval.judges.types import JudgeOutcome, JudgeRequest

BUILTIN = ("iopo_eval.scoring.trace", "iopo_eval.scoring.cfbench", "iopo_eval.scoring.complexbench")


@dataclass(frozen=True)
class JudgedBenchmark:
    name: str
    default_judge: str  # bundled judge config name
    requests: Callable[[dict[str, Any], str], list[JudgeRequest]]  # (lm-eval doc, response) -> requests
    # A benchmark that asks a second kind of question (ComplexBench's segment extraction) sends those
    # requests to a judge of their own: ``route(request)`` names a key of ``extra_judges`` (None: the
    # default judge). Each extra judge is configured under its key, e.g. --judge complexbench_extract=CFG.
    extra_judges: Mapping[str, str] = field(default_factory=dict)  # judge name -> bundled default config
    route: Callable[[JudgeRequest], str | None] | None = None


_BENCHMARKS: dict[str, JudgedBenchmark] = {}


def register_benchmark(spec: JudgedBenchmark) -> None:
    _BENCHMARKS[spec.name] = spec


def get_benchmark(name: str) -> JudgedBenchmark:
    for module in BUILTIN:
        importlib.import_module(module)
    try:
        return _BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"no judged benchmark {name!r}; known: {', '.join(sorted(_BENCHMARKS))}") from None


def effective_scores(outcome: JudgeOutcome, n_expected: int) -> list[float] | None:
    """The scores an item is rated on, or None when it has no rating (a judge failure, not judged).

    An empty model response is a failure of the model, not of the judge: the engine does not ask the
    judge, and the item scores 0 on every constraint here (recorded as ``empty_response``), so a model
    cannot raise its rates by answering nothing.
    """
    if outcome.status == "ok" and outcome.scores is not None:
        return list(outcome.scores)
    if outcome.error_kind == "empty_response":
        return [0.0] * n_expected
    return None
