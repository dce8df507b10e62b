"""Registry of judged benchmarks: how each turns a document and a response into judge requests.

Each benchmark module registers itself on import; ``BUILTIN`` lists the modules to import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iopo_eval.judges.types import JudgeRequest

BUILTIN = ("iopo_eval.scoring.trace", "iopo_eval.scoring.cfbench")


@dataclass(frozen=True)
class JudgedBenchmark:
    name: str
    default_judge: str  # bundled judge config name
    requests: Callable[[dict[str, Any], str], list[JudgeRequest]]  # (lm-eval doc, response) -> requests


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
