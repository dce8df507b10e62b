"""IFEval scoring: rule checks per instruction -> prompt/instruction accuracy, strict and loose (protocols.md §2).

The 25 checkers are lm-eval's port of Google's ``instructions.py`` (built by ``data.ifeval``); the
evaluation loop around them follows Google's ``evaluation_lib.py`` rather than lm-eval's ``utils.py``:

- kwargs are passed to ``build_description`` exactly as the data row gives them (lm-eval drops falsy
  values; on the 541 upstream rows no value is falsy, so outcomes are the same, but a row that relied on
  a falsy value would differ);
- each row is validated so that no checker parameter is left to a random draw, with one documented
  exception: ``keywords:letter_frequency`` with a ``letter`` that is not an ASCII letter (keys 1122
  ``#`` and 1129 ``!``), where upstream draws a random letter. Here the literal character is counted;
- ``langdetect`` (``language:response_language``) is seeded, since it samples at random otherwise;
- reasoning blocks (``<think>…</think>``) are removed before checking; the raw text stays in the record.

Checkers are built once per prompt and shared by the strict and loose passes (upstream builds them twice,
which only matters for the random draws removed above).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from iopo_eval.benchmark import Benchmark, ChartGroup, Doc, Judged, LeaderboardColumn
from iopo_eval.data.ifeval import (
    DATA_KEY,
    LANGDETECT_SEED,
    IFEvalItem,
    build_checker,
    load_ifeval,
)
from iopo_eval.data.registry import get_file
from iopo_eval.punkt import PUNKT_PACKAGE
from iopo_eval.results import ItemRecord, MetricSpec

BENCHMARK = "ifeval"
TASK = "ifeval_iopo"
# Keep equal to metadata.version in tasks/ifeval_iopo/ifeval_iopo.yaml (a test checks it).
TASK_VERSION = 1.0
SCORING_VERSION = "ifeval-scoring-1"

METRICS = (
    MetricSpec("prompt_strict", "S-Acc (prompt-level strict)", headline=True),
    MetricSpec("prompt_loose", "L-Acc (prompt-level loose)", headline=True),
    MetricSpec("inst_strict", "Instruction-level strict"),
    MetricSpec("inst_loose", "Instruction-level loose"),
)
BREAKDOWN_PREFIXES = ("type/",)


# ---------------------------------------------------------------- checking


def strip_thinking(text: str) -> str:
    """The answer part of a response. Text without think tags is returned unchanged (whitespace matters
    to some checks); otherwise the reasoning block is removed and the answer's surrounding whitespace
    with it (see iopo_eval.text.strip_reasoning for the rules on unpaired tags)."""
    if "<think>" not in text.lower() and "</think>" not in text.lower():
        return text
    from iopo_eval.text import strip_reasoning

    return strip_reasoning(text)


def loose_variants(response: str) -> list[str]:
    """The 8 texts of the loose check, in upstream's order: the response, without ``*``, without its
    first line, last line, both, and those three without ``*``."""
    lines = response.split("\n")
    remove_first = "\n".join(lines[1:]).strip()
    remove_last = "\n".join(lines[:-1]).strip()
    remove_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        remove_first,
        remove_last,
        remove_both,
        remove_first.replace("*", ""),
        remove_last.replace("*", ""),
        remove_both.replace("*", ""),
    ]


@dataclass(frozen=True)
class Outcome:
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]


def check_response(item: IFEvalItem, response: str) -> Outcome:
    """Strict and loose outcome of every instruction of the item for an (already stripped) response."""
    variants = loose_variants(response)
    strict: list[bool] = []
    loose: list[bool] = []
    for instruction_id, params in zip(item.instruction_id_list, item.kwargs, strict=True):
        checker = build_checker(instruction_id, params, item.prompt)
        strict.append(bool(response.strip() and checker.check_following(response)))
        loose.append(any(v.strip() and checker.check_following(v) for v in variants))
    return Outcome(strict=tuple(strict), loose=tuple(loose))


def item_values(item: IFEvalItem, outcome: Outcome) -> dict[str, Any]:
    n = float(len(outcome.strict))
    values: dict[str, Any] = {
        "prompt_strict": float(all(outcome.strict)),
        "prompt_loose": float(all(outcome.loose)),
        "inst_strict": [float(sum(outcome.strict)), n],
        "inst_loose": [float(sum(outcome.loose)), n],
    }
    for instruction_id, ok in zip(item.instruction_id_list, outcome.strict, strict=True):
        num_den = values.setdefault(f"type/{instruction_id}", [0.0, 0.0])
        num_den[0] += float(ok)
        num_den[1] += 1.0
    return values


def score_response(item: IFEvalItem, raw_response: str) -> ItemRecord:
    """The per-item record: metric values, per-instruction outcomes, the raw text if it was stripped."""
    response = strip_thinking(raw_response)
    outcome = check_response(item, response)
    extra: dict[str, Any] = {
        "key": item.key,
        "instructions": [
            {"id": i, "kwargs": k, "strict": s, "loose": lo}
            for i, k, s, lo in zip(
                item.instruction_id_list, item.kwargs, outcome.strict, outcome.loose, strict=True
            )
        ],
    }
    if response != raw_response:
        extra["raw_response"] = raw_response
    return ItemRecord(
        benchmark=BENCHMARK,
        task=TASK,
        item_id=str(item.key),
        status="ok",
        values=item_values(item, outcome),
        groups={"instruction_ids": sorted(set(item.instruction_id_list)), "n_instructions": len(item.kwargs)},
        response=response,
        extra=extra,
    )


# ---------------------------------------------------------------- the benchmark


class IFEval(Benchmark[IFEvalItem]):
    """IFEval: S-Acc and L-Acc (prompt-level strict and loose), checked by rules; no judge."""

    name = BENCHMARK
    title = "IFEval"
    tasks = (TASK,)
    metrics = METRICS
    scoring_version = SCORING_VERSION
    breakdown_prefixes = BREAKDOWN_PREFIXES
    columns = (LeaderboardColumn("prompt_strict", "S-Acc"), LeaderboardColumn("prompt_loose", "L-Acc"))
    charts = (ChartGroup("Strict pass rate by instruction type", ("type/",), True),)
    lm_eval_metrics = tuple(spec.name for spec in METRICS)
    in_paper = True

    def documents(self, mirror: str | None = None) -> dict[str, tuple[str, Doc]]:
        return {str(item.key): (TASK, item.to_doc()) for item in load_ifeval(mirror=mirror)}

    def parse(self, doc: Doc) -> IFEvalItem:
        return IFEvalItem.from_doc(doc)

    def record(self, item: IFEvalItem, judged: Judged) -> ItemRecord:
        """Checked on the raw response: reasoning blocks are removed here, by IFEval's own rule."""
        return score_response(item, judged.raw_response)

    def protocol(self, records: Sequence[ItemRecord], docs: Sequence[Doc]) -> dict[str, Any]:
        return {
            "data_sha256": get_file(DATA_KEY).sha256,
            "checkers": f"lm-eval=={importlib.metadata.version('lm-eval')} lm_eval.tasks.ifeval",
            "punkt": f"{PUNKT_PACKAGE}=={importlib.metadata.version(PUNKT_PACKAGE)} english",
            "letter_frequency_non_letter": "literal character",
            "langdetect_seed": LANGDETECT_SEED,
            "reasoning": "<think> blocks removed",
        }


IFEVAL = IFEval()
