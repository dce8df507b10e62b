"""LLM-based quadruple builder over any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, ...).

Input: instructions in TRACE's row format (``description``, ``constraints_splits`` or ``constraints``,
optional ``input``), JSONL. Per row:

1. x1 = the instruction as TRACE renders it (task, numbered constraints, ``# Inputs:``);
2. the generator rewrites the constraints (changes values or directions, or drops some) -> x2, so that a
   response to one should fail the other (the paper's Figure 1; the released sample changes all three);
3. the generator answers x1 -> y1 and x2 -> y2;
4. optional judge filter: keep the quadruple only if the judge gives every constraint 10/10 for (x1, y1)
   and (x2, y2), and not for the crossed pairs (x1, y2) and (x2, y1): the strict all-10 rule of §1.5,
   asked of the TRACE judge (its template and reply parser).

Every call goes through the judge engine, like every LLM call of iopo-eval: its client, SQLite cache (a
rerun pays for nothing twice), retries, budget and cost accounting. The prompts are template files
(``judges/templates/builder_rewrite_v1.txt``, ``builder_respond_v1.txt``) named by judge configs
(``builder-rewrite-gpt4o``, ``builder-respond-gpt4o``; the filter uses ``trace-gpt4o-hardened``); the endpoint
and model of each come from :class:`EndpointSettings`. Each stage is one batch of calls.

The API key comes from the environment variable named by ``api_key_env`` (never written anywhere).
Evaluation data is refused: the input file's sha256 against the registry, and every instruction against
the TRACE and IFEval prompts (eval_guard.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from iopo_eval.judges.config import JudgeConfig, load_judge_config
from iopo_eval.judges.types import JudgeOutcome, JudgeRequest
from iopo_eval.judging import JudgeSession
from iopo_eval.scoring.trace import request_fields
from iopo_eval.training.data import Quadruple, TrainingDataError, read_rows, write_quadruples
from iopo_eval.training.eval_guard import refuse_evaluation_file, refuse_evaluation_prompts

log = logging.getLogger(__name__)

REWRITE_CONFIG = "builder-rewrite-gpt4o"
RESPOND_CONFIG = "builder-respond-gpt4o"
JUDGE_CONFIG = "trace-gpt4o-hardened"
_NUMBER = re.compile(r"^\s*\d+\s*[.、)]\s*")


@dataclass
class EndpointSettings:
    """Where one kind of call goes: endpoint, model and key variable, plus sampling overrides (None: the
    bundled config's value)."""

    base_url: str | None = None  # None: the OpenAI API
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float | None = None
    max_tokens: int | None = None
    timeout_s: float | None = None
    max_retries: int | None = None

    def apply(self, config: JudgeConfig) -> JudgeConfig:
        return config.with_overrides(
            base_url=self.base_url,
            model=self.model,
            api_key_env=self.api_key_env,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            timeout_s=self.timeout_s,
            max_retries=self.max_retries,
        )


@dataclass
class TraceInstruction:
    id: str
    description: str
    constraints: list[str]
    input: str | None = None

    def render(self, constraints: list[str] | None = None) -> str:
        items = constraints if constraints is not None else self.constraints
        text = (
            self.description.strip()
            + "\n"
            + "\n".join(f"{i}. {c}" for i, c in enumerate(items, start=1))
            + "\n"
        )
        if self.input:
            text += f"# Inputs:\n{self.input}\n"
        return text


@dataclass
class BuildReport:
    rows: int = 0
    built: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    usd: float = 0.0  # paid by this build (cache hits cost nothing)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def parse_trace_rows(path: Path) -> list[TraceInstruction]:
    out = []
    for where, row in read_rows(path):
        desc = row.get("description")
        cons = row.get("constraints_splits")
        if cons is None and isinstance(row.get("constraints"), str):
            cons = [c for c in row["constraints"].splitlines() if c.strip()]
        if not isinstance(desc, str) or not desc.strip():
            raise TrainingDataError(f"{where}: description must be a non-empty string")
        if not isinstance(cons, list) or not cons or not all(isinstance(c, str) and c.strip() for c in cons):
            raise TrainingDataError(f"{where}: constraints_splits must be a non-empty list of strings")
        inp = row.get("input")
        inp = inp if isinstance(inp, str) and inp.strip() and inp.strip() != "NULL" else None
        out.append(
            TraceInstruction(str(row.get("id", where)), desc, [_NUMBER.sub("", c).strip() for c in cons], inp)
        )
    return out


def _text(outcome: JudgeOutcome) -> str | None:
    return outcome.reasons[0] if outcome.status == "ok" and outcome.reasons else None


def _all_ten(outcome: JudgeOutcome) -> bool | None:
    if outcome.status != "ok" or outcome.scores is None:
        return None
    return all(s == 10 for s in outcome.scores)


def _verdict_request(item: TraceInstruction, constraints: list[str], response: str, key: str) -> JudgeRequest:
    fields = request_fields(
        description=item.description,
        task_input=item.input or None,
        constraints="\n".join(constraints),
        constraints_splits=constraints,
        user_prompt=item.render(constraints),
        response=response,
    )
    return JudgeRequest(key=key, fields=fields, n_expected=len(constraints), judge="judge")


def _rewrites(items: list[TraceInstruction], outcomes: list[JudgeOutcome]) -> dict[str, list[str] | str]:
    """Item id -> the new constraint list, or the reason the row is skipped."""
    out: dict[str, list[str] | str] = {}
    for item, outcome in zip(items, outcomes, strict=True):
        if outcome.status != "ok" or not outcome.reasons:
            out[item.id] = f"constraint rewrite failed ({outcome.error_kind})"
            continue
        new = [_NUMBER.sub("", c).strip() for c in outcome.reasons]
        out[item.id] = "rewrite identical to the original" if new == item.constraints else new
    return out


def build_from_trace_rows(
    input_path: str | Path,
    output_path: str | Path,
    generator: EndpointSettings,
    judge: EndpointSettings | None = None,
    limit: int | None = None,
    concurrency: int = 4,
    *,
    cache_path: Path | None = None,
    budget_usd: float | None = None,
    progress: bool = False,
) -> BuildReport:
    input_path = Path(input_path)
    refuse_evaluation_file(input_path)
    items = parse_trace_rows(input_path)[:limit]
    refuse_evaluation_prompts(
        (f"{input_path} row id {i.id}", t) for i in items for t in (i.description, i.render())
    )
    configs = {
        "rewrite": generator.apply(load_judge_config(REWRITE_CONFIG)),
        "respond": generator.apply(load_judge_config(RESPOND_CONFIG)),
    }
    if judge is not None:
        configs["judge"] = judge.apply(load_judge_config(JUDGE_CONFIG))
    report = BuildReport(rows=len(items))
    session = JudgeSession(
        cache_path=cache_path,
        concurrency=concurrency,
        budget_usd=budget_usd,
        progress=progress,
        allow_embedded=False,
    )
    with session:
        quads = _build(items, configs, session, report)
        report.usd = session.spent_usd
    report.built = write_quadruples(output_path, quads)
    return report


def _build(
    items: list[TraceInstruction], configs: dict[str, JudgeConfig], session: JudgeSession, report: BuildReport
) -> list[Quadruple]:
    """The three stages, each one batch through the session: rewrites, answers, verdicts."""
    rewrite = [
        JudgeRequest(
            key=item.id,
            fields={"description": item.description, "constraints": item.constraints},
            n_expected=1,
            judge="rewrite",
        )
        for item in items
    ]
    rewrites = _rewrites(items, session.judge_with(configs, rewrite))
    kept = [(item, new) for item in items if isinstance(new := rewrites[item.id], list)]
    for item in items:
        if isinstance(rewrites[item.id], str):
            _skip(report, item, str(rewrites[item.id]))

    asks = [
        JudgeRequest(key=f"{item.id}/{side}", fields={"instruction": x}, n_expected=1, judge="respond")
        for item, new in kept
        for side, x in (("x1", item.render()), ("x2", item.render(new)))
    ]
    answers = [_text(o) for o in session.judge_with(configs, asks)]
    pairs: list[tuple[TraceInstruction, list[str], str, str]] = []
    for (item, new), y1, y2 in zip(kept, answers[0::2], answers[1::2], strict=True):
        if not y1 or not y2 or y1 == y2:
            _skip(report, item, "empty or identical responses")
        else:
            pairs.append((item, new, y1, y2))

    if "judge" in configs:
        checks = [
            _verdict_request(item, cons, y, f"{item.id}/{name}")
            for item, new, y1, y2 in pairs
            for name, cons, y in (
                ("x1y1", item.constraints, y1),
                ("x2y2", new, y2),
                ("x1y2", item.constraints, y2),
                ("x2y1", new, y1),
            )
        ]
        verdicts = [_all_ten(o) for o in session.judge_with(configs, checks)]
        passed = []
        for k, pair in enumerate(pairs):
            own1, own2, cross1, cross2 = verdicts[4 * k : 4 * k + 4]
            if None in (own1, own2, cross1, cross2):
                _skip(report, pair[0], "judge failed on a pair")
            elif not (own1 and own2):
                _skip(report, pair[0], "judge: a response misses its own instruction")
            elif cross1 or cross2:
                _skip(report, pair[0], "judge: a response also follows the other instruction")
            else:
                passed.append(pair)
        pairs = passed
    return [
        Quadruple(
            [{"role": "user", "content": item.render()}],
            [{"role": "user", "content": item.render(new)}],
            y1,
            y2,
            item.id,
        )
        for item, new, y1, y2 in pairs
    ]


def _skip(report: BuildReport, item: TraceInstruction, reason: str) -> None:
    log.info("row %s skipped: %s", item.id, reason)
    report.skip(reason)
