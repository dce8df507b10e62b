"""LLM-based quadruple builder over any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp, ...).

Input: instructions in TRACE's row format (``description``, ``constraints_splits`` or ``constraints``,
optional ``input``), JSONL. Per row:

1. x1 = the instruction as TRACE renders it (task, numbered constraints, ``# Inputs:``);
2. the generator rewrites the constraints (changes values or directions, or drops some) -> x2, so that a
   response to one should fail the other (the paper's Figure 1; the released sample changes all three);
3. the generator answers x1 -> y1 and x2 -> y2;
4. optional judge filter: keep the quadruple only if the judge gives every constraint 10/10 for (x1, y1)
   and (x2, y2), and not for the crossed pairs (x1, y2) and (x2, y1) — the strict all-10 rule of §1.5.

The API key comes from the environment variable named by ``api_key_env`` (never written anywhere).
Evaluation data is refused: the input file's sha256 against the registry, and every instruction against
the TRACE and IFEval prompts (eval_guard.py).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iopo_eval.training.data import Quadruple, TrainingDataError, read_rows, write_quadruples
from iopo_eval.training.eval_guard import refuse_evaluation_file, refuse_evaluation_prompts

log = logging.getLogger(__name__)

MODIFY_PROMPT = """You write training data for instruction following.
Below is a task with numbered constraints. Write a second version of the constraints for the SAME task so that a
response that satisfies the original constraints clearly violates the new ones, and the other way round.
Change the value or the direction of one or more constraints (a length range, a required keyword, a tone, a
format, ...) or drop one constraint and change another. Keep the task itself unchanged.
Reply with JSON only: {{"constraints": ["first constraint", "second constraint", ...]}}

Task: {description}
Constraints:
{constraints}"""

JUDGE_PROMPT = """Score how well the response follows each numbered constraint of the instruction, from 0 to 10
(10 = fully followed). Reply with JSON only: {{"scores": [score for constraint 1, score for constraint 2, ...]}}

[Instruction]
{instruction}

[Response]
{response}"""

_NUMBER = re.compile(r"^\s*\d+\s*[.、)]\s*")


@dataclass
class EndpointSettings:
    base_url: str | None = None  # None: the OpenAI API
    model: str = "gpt-4o"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.7
    max_tokens: int = 1024
    timeout_s: float = 120.0
    max_retries: int = 3

    def client(self) -> Any:
        from openai import OpenAI

        key = os.environ.get(self.api_key_env)
        if not key and not self.base_url:
            raise RuntimeError(
                f"the OpenAI API needs a key in ${self.api_key_env} (or set base_url for a local server)"
            )
        return OpenAI(
            base_url=self.base_url,
            api_key=key or "unused",
            timeout=self.timeout_s,
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


def _json_object(text: str) -> dict[str, Any] | None:
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    match = re.search(r"\{.*\}", text, flags=re.DOTALL)
    if not match:
        return None
    try:
        obj = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


Chat = Callable[[str, float | None], str]


def _chat_fn(settings: EndpointSettings) -> Chat:
    client = settings.client()

    def chat(prompt: str, temperature: float | None = None) -> str:
        response = client.chat.completions.create(
            model=settings.model,
            messages=[{"role": "user", "content": prompt}],
            temperature=settings.temperature if temperature is None else temperature,
            max_tokens=settings.max_tokens,
        )
        return response.choices[0].message.content or ""

    return chat


def _all_ten(judge: Chat, instruction: str, response: str, n: int) -> bool | None:
    obj = _json_object(judge(JUDGE_PROMPT.format(instruction=instruction, response=response), 0.0))
    scores = obj.get("scores") if obj else None
    if not isinstance(scores, list) or len(scores) != n:
        return None
    try:
        return all(float(s) == 10 for s in scores)
    except (TypeError, ValueError):
        return None


def build_one(item: TraceInstruction, generator: Chat, judge: Chat | None) -> tuple[Quadruple | None, str]:
    """(quadruple, "") or (None, reason it was skipped)."""
    obj = _json_object(
        generator(MODIFY_PROMPT.format(description=item.description, constraints=item.render()), None)
    )
    new = obj.get("constraints") if obj else None
    if not isinstance(new, list) or not new or not all(isinstance(c, str) and c.strip() for c in new):
        return None, "unparseable constraint rewrite"
    new = [_NUMBER.sub("", c).strip() for c in new]
    if new == item.constraints:
        return None, "rewrite identical to the original"
    x1, x2 = item.render(), item.render(new)
    y1, y2 = generator(x1, None).strip(), generator(x2, None).strip()
    if not y1 or not y2 or y1 == y2:
        return None, "empty or identical responses"
    if judge is not None:
        verdicts = (
            _all_ten(judge, x1, y1, len(item.constraints)),
            _all_ten(judge, x2, y2, len(new)),
            _all_ten(judge, x1, y2, len(item.constraints)),
            _all_ten(judge, x2, y1, len(new)),
        )
        if None in verdicts:
            return None, "unparseable judge verdict"
        if not (verdicts[0] and verdicts[1]):
            return None, "judge: a response misses its own instruction"
        if verdicts[2] or verdicts[3]:
            return None, "judge: a response also follows the other instruction"
    q = Quadruple([{"role": "user", "content": x1}], [{"role": "user", "content": x2}], y1, y2, item.id)
    return q, ""


def build_from_trace_rows(
    input_path: str | Path,
    output_path: str | Path,
    generator: EndpointSettings,
    judge: EndpointSettings | None = None,
    limit: int | None = None,
    concurrency: int = 4,
) -> BuildReport:
    input_path = Path(input_path)
    refuse_evaluation_file(input_path)
    items = parse_trace_rows(input_path)[:limit]
    refuse_evaluation_prompts(
        (f"{input_path} row id {i.id}", t) for i in items for t in (i.description, i.render())
    )
    gen_chat = _chat_fn(generator)
    judge_chat = _chat_fn(judge) if judge is not None else None
    report = BuildReport(rows=len(items))
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        results = list(pool.map(lambda it: build_one(it, gen_chat, judge_chat), items))
    quads = []
    for item, (q, reason) in zip(items, results, strict=True):
        if q is None:
            log.info("row %s skipped: %s", item.id, reason)
            report.skip(reason)
        else:
            quads.append(q)
    report.built = write_quadruples(output_path, quads)
    return report
