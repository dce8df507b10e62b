"""The bridge into lm-eval: a filter that judges all of a task's responses at once.

lm-eval calls a task's filters once with every response and document, before per-document scoring.
That is where judged benchmarks send their whole batch to the judge (concurrently, through the cache).
Each filtered response becomes a JSON-able dict that the task's ``process_results`` scores and that
``--log_samples`` keeps, so ``iopo-eval`` can rebuild item records from lm-eval's samples.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.judging import JudgeSession, active_session
from iopo_eval.results import json_line
from iopo_eval.scoring.judged import JudgedBenchmark, get_benchmark
from iopo_eval.text import strip_reasoning

log = logging.getLogger(__name__)


def judge_responses(
    benchmark: str, docs: list[dict[str, Any]], responses: list[str], session: JudgeSession | None = None
) -> list[dict[str, Any]]:
    """Judge one response per document; returns the filtered value of each document.

    ``session`` defaults to the active one (``iopo-eval run`` sets it; plain ``lm_eval`` builds it from
    the environment)."""
    spec = get_benchmark(benchmark)
    session = session or active_session()
    if session.generations_dir is not None:
        save_generations(session.generations_dir / f"{benchmark}.generations.jsonl", docs, responses)
    cleaned = [strip_reasoning(r) for r in responses]
    per_doc = [spec.requests(doc, text) for doc, text in zip(docs, cleaned, strict=True)]
    flat = [req for reqs in per_doc for req in reqs]
    outcomes = _judge_routed(spec, session, flat)
    out, pos = [], 0
    for raw, text, reqs in zip(responses, cleaned, per_doc, strict=True):
        judged = outcomes[pos : pos + len(reqs)]
        pos += len(reqs)
        entry = {
            "response": text,
            "raw_response": raw,
            "judgements": [o.to_json() for o in judged],
            "judge": session.describe(benchmark, spec.default_judge),
        }
        if spec.extra_judges:
            entry["extra_judges"] = {
                name: session.describe(name, cfg) for name, cfg in spec.extra_judges.items()
            }
        out.append(entry)
    return out


def _judge_routed(
    spec: JudgedBenchmark, session: JudgeSession, flat: list[JudgeRequest]
) -> list[JudgeOutcome]:
    """Outcomes in request order; requests routed to an extra judge go to that judge in one batch."""
    if not flat:
        return []
    if spec.route is None:
        return session.judge(spec.name, flat, spec.default_judge)
    by_judge: dict[str | None, list[int]] = {}
    for index, request in enumerate(flat):
        by_judge.setdefault(spec.route(request), []).append(index)
    outcomes: list[JudgeOutcome | None] = [None] * len(flat)
    for name, indices in by_judge.items():
        judge_name, config = (
            (spec.name, spec.default_judge) if name is None else (name, spec.extra_judges[name])
        )
        judged = session.judge(judge_name, [flat[i] for i in indices], config)
        for index, outcome in zip(indices, judged, strict=True):
            outcomes[index] = outcome
    return [o for o in outcomes if o is not None]


def save_generations(path: Path, docs: list[dict[str, Any]], responses: list[str]) -> None:
    """Append the responses to a JSONL file before judging, so a crash in the judge loses no generation."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        for doc, response in zip(docs, responses, strict=True):
            doc_id = doc.get("id", doc.get("key", doc.get("idx", doc.get("main_id"))))
            fh.write(json_line({"id": doc_id, "response": response}))


@register_filter("iopo_judge")
class JudgeFilter(Filter):
    """``filter: [{function: iopo_judge, benchmark: trace}]`` in a task's filter_list."""

    def __init__(self, benchmark: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.benchmark = benchmark

    def apply(self, resps: Any, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        responses = []
        for r in resps:
            first = r[0] if isinstance(r, (list, tuple)) and r else r
            responses.append(first if isinstance(first, str) else "")
        return judge_responses(self.benchmark, list(docs), responses)
