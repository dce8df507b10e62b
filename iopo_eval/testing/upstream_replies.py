"""Scripted judges for tests that answer upstream's prompts (the benchmarks' default judges) in upstream's
reply formats: what the prompt asks about is read back out of the rendered prompt, and the answer is
written the way upstream's judges write it. For loopback servers (``iopo_eval.testing.openai_server``).

Each reader takes the text of the last user message and finds the fields after the *last* marker of its
section, so a worked example earlier in upstream's prompt is never mistaken for the item's own fields.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

# ---------------------------------------------------------------- TRACE


@dataclass(frozen=True)
class TracePrompt:
    query: str
    constraints: str  # the row's constraint block, as upstream's prompt shows it
    response: str


_TRACE_INPUT = re.compile(
    r"/ \*Input \* /\n—INPUT—\n< query >:\n(.*?)\n< constraints >:\n(.*?)\n< response >:\n(.*)\n\n—OUTPUT—$",
    re.S,
)


def is_trace_upstream(prompt: str) -> bool:
    return "/ *Input * /" in prompt and prompt.endswith("—OUTPUT—")


def read_trace_prompt(prompt: str) -> TracePrompt:
    tail = prompt[prompt.rindex("/ *Input * /") :]
    match = _TRACE_INPUT.search(tail)
    if match is None:
        raise ValueError("not upstream's TRACE judge prompt")
    return TracePrompt(*match.groups())


@functools.cache
def _splits_by_block() -> dict[str, list[str]]:
    from iopo_eval.data.trace import load_trace

    return {item.constraints: list(item.constraints_splits) for item in load_trace()}


def trace_constraints(block: str) -> list[str]:
    """The gold constraint list of the TRACE row whose constraint block the prompt shows (the 1,039
    distinct blocks of the data each have one list)."""
    return _splits_by_block()[block]


def trace_reply(constraints: Sequence[str], scores: Sequence[float], overall: float | None = None) -> str:
    """A reply in upstream's TRACE format: an explanation per constraint, the ``Fine Grained Score`` JSON
    keyed by the constraints, and ``Constraints Overall Score: [[x]]`` (the minimum unless given)."""
    lines = ["Explanation:"]
    lines += [f"{i}. {c}: scored {s:g}." for i, (c, s) in enumerate(zip(constraints, scores, strict=True), 1)]
    fine = json.dumps([{c: s for c, s in zip(constraints, scores, strict=True)}], ensure_ascii=False)
    total = min(scores) if overall is None else overall
    lines += [f"Fine Grained Score: {fine}", f"Constraints Overall Score: [[{total:g}]]"]
    return "\n".join(lines)


# ---------------------------------------------------------------- CFBench


@dataclass(frozen=True)
class CFBenchPrompt:
    response: str
    criteria: list[str]


def is_cfbench_upstream(prompt: str) -> bool:
    return prompt.endswith("[你的评估]: \n") and "[评估标准]: " in prompt


def read_cfbench_prompt(prompt: str) -> CFBenchPrompt:
    """The response and the checkpoint texts (upstream joins them with a blank line, which no checkpoint
    of the data contains)."""
    criteria_at = prompt.rindex("\n\n[评估标准]: ")
    response_at = prompt.rindex("\n\n[模型答案]: ", 0, criteria_at)
    criteria = prompt[criteria_at + len("\n\n[评估标准]: ") : prompt.rindex("\n\n[你的评估]: \n")]
    response = prompt[response_at + len("\n\n[模型答案]: ") : criteria_at]
    return CFBenchPrompt(response=response, criteria=criteria.split("\n\n"))


def cfbench_reply(criteria: Sequence[str], scores: Sequence[int]) -> str:
    """Upstream's format: ``checkpoint<TAB>score`` per checkpoint, separated by a blank line."""
    return "\n\n".join(f"{c}\t{s}" for c, s in zip(criteria, scores, strict=True))


# ---------------------------------------------------------------- ComplexBench


def complexbench_question(prompt: str) -> tuple[str, str]:
    """(kind, question) of upstream's ComplexBench prompt: kind ``yesno``, ``extract`` or ``extract_each``."""
    if "【评分问题开始】\n" in prompt:
        kind, start, end = "extract_each", "【评分问题开始】\n", "\n\n\n【解释】"
    elif "【模型回复中评分问题的评测对象】" in prompt:
        kind, start, end = "extract", "【评分问题】\n", "\n\n\n【解释】"
    elif "**问题**\n" in prompt:
        kind, start, end = "yesno", "**问题**\n", "\n\n请进行分析回答**模型回复**是否满足**问题**："
    else:
        raise ValueError("not one of upstream's ComplexBench judge prompts")
    at = prompt.rindex(start) + len(start)
    return kind, prompt[at : prompt.rindex(end)]


def complexbench_reply(scripted: str) -> str:
    """A scripted reply in upstream's format: a hardened JSON answer (``{"answer": ...}`` or
    ``{"scope": ..., "segments": [...]}``, bare or in a code fence) becomes the text upstream's judge
    writes; text stays as it is."""
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", scripted, re.S)
    try:
        obj = json.loads(fenced.group(1) if fenced else scripted)
    except json.JSONDecodeError:
        return scripted
    if not isinstance(obj, dict):
        return scripted
    if "answer" in obj:
        answer = obj["answer"] in (True, "是")
        return f"分析：{obj.get('analysis', '')}\n答案：{'是' if answer else '否'}"
    if "scope" in obj:
        scope = obj["scope"]
        target = "all" if scope == "all" else "None" if scope == "none" else "||".join(obj["segments"])
        return f"【模型回复中评分问题的评测对象】\n评分对象：{target}"
    return scripted
