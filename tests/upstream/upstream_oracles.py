"""Test-only oracles: upstream's own functions, run inside the tests from the read-only data mirror.

Each oracle reads an upstream file from ``$IOPO_EVAL_DATA_MIRROR/<bench>/upstream/`` at test time and
executes the part of it that builds a judge prompt or reads a judge reply, so that the product's renderer
and parsers (which never execute upstream files) can be compared with what upstream's code does. These
files are data to the tests, never shipped with the package and never copied into the repository; where
upstream's module imports packages that are not installed (or not released), only the needed source
segments are executed, with stand-ins for the unreleased names, and each oracle says which.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def mirror() -> Path:
    return Path(os.environ["IOPO_EVAL_DATA_MIRROR"])


def _source(rel: str) -> tuple[str, ast.Module]:
    text = (mirror() / rel).read_text(encoding="utf-8")
    return text, ast.parse(text)


def _segment(text: str, tree: ast.Module, name: str) -> str:
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return ast.get_source_segment(text, node) or ""
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.get_source_segment(text, node) or ""
    raise LookupError(f"{name} not found")


# ---------------------------------------------------------------- TRACE


@cache
def trace_template() -> Any:
    """``TraceTemplate`` of trace/upstream/template.py (the module imports only json: run it whole)."""
    namespace: dict[str, Any] = {}
    exec(
        compile((mirror() / "trace/upstream/template.py").read_text(encoding="utf-8"), "template.py", "exec"),
        namespace,
    )
    return namespace["TraceTemplate"]


@cache
def _trace_score() -> Callable[..., Any]:
    """``trace_score`` of trace/upstream/trace.py. Its imports (``src.*``) were never released: only the
    function is run, with upstream's own TraceTemplate and stand-ins for the type names."""
    text, tree = _source("trace/upstream/trace.py")
    namespace: dict[str, Any] = {
        "re": re,
        "TraceTemplate": trace_template(),
        "QAPrediction": object,
        "BaseLLM": object,
    }
    exec(compile(_segment(text, tree, "trace_score"), "trace.py", "exec"), namespace)
    return namespace["trace_score"]


def trace_prompt(question: str, description: str, constraints: str, response: str) -> str:
    """The prompt upstream's trace_score sends to its judge for a prediction with these fields."""
    sent: list[str] = []

    def judge(prompt: str) -> SimpleNamespace:
        sent.append(prompt)
        return SimpleNamespace(generated="Constraints Overall Score: [[10]]")

    pred = SimpleNamespace(
        answer=None, question=question, generated=response, constraints=constraints, description=description
    )
    _trace_score()(pred, judge)
    return sent[0]


def trace_overall(reply: str) -> float | None:
    """What upstream's trace_score stores as ``matched`` for a judge reply."""
    pred = SimpleNamespace(answer=None, question="NULL", generated="r", constraints="c", description="d")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints on a failed parse
        _trace_score()(pred, lambda _prompt: SimpleNamespace(generated=reply))
    return pred.matched


# ---------------------------------------------------------------- CFBench


@cache
def _cfbench_namespace() -> dict[str, Any]:
    """``gpt_judge_for_cfbench`` and the ``Evaluation`` class of cfbench/upstream/evalaute.py. The module
    imports numpy, pandas, arrow and a ``models`` package that is not installed: only the lambda and the
    class definition are run (defining the class runs none of its methods)."""
    text, tree = _source("cfbench/upstream/evalaute.py")
    namespace: dict[str, Any] = {}
    for name in ("gpt_judge_for_cfbench", "Evaluation"):
        exec(compile(_segment(text, tree, name), "evalaute.py", "exec"), namespace)
    return namespace


def cfbench_evaluation() -> Any:
    """An ``Evaluation`` made without its constructor (which loads a model), whose judge model records the
    prompt it is sent and answers ``reply``."""
    cls = _cfbench_namespace()["Evaluation"]
    evaluation = cls.__new__(cls)
    evaluation.sent = []
    evaluation.reply = "x"

    def model(prompt: str) -> str:
        evaluation.sent.append(prompt)
        return evaluation.reply

    evaluation.eval_model = model
    return evaluation


def cfbench_prompt(row: dict[str, Any], response: str) -> str:
    """The prompt upstream's ``_judge_one`` sends for a data row and a response."""
    evaluation = cfbench_evaluation()
    evaluation._judge_one({**row, "response": response})
    return evaluation.sent[0]


def cfbench_strict(reply: str, criteria: list[str]) -> list[str] | None:
    task = {"judge_response": reply, "criteria": [[c, "主需", "", ""] for c in criteria]}
    return cfbench_evaluation()._get_judge_scores(task)


def cfbench_fallback(reply: str) -> list[str]:
    """Upstream's fallback; raises ValueError where upstream's run stops (a tab line with no number)."""
    return cfbench_evaluation()._get_judge_scores_guaranteed({"judge_response": reply})


# ---------------------------------------------------------------- ComplexBench


@cache
def _complexbench_prompts() -> dict[str, str]:
    """The prompt strings of complexbench/upstream/evaluation/prompts/*.py (modules of assignments only)."""
    namespace: dict[str, Any] = {}
    for name in ("RAL_evaluator.py", "RAL_extractor.py"):
        path = mirror() / "complexbench/upstream/evaluation/prompts" / name
        exec(compile(path.read_text(encoding="utf-8"), name, "exec"), namespace)
    return {k: v for k, v in namespace.items() if isinstance(v, str) and k.isupper()}


@cache
def _complexbench_functions(script: str) -> dict[str, Any]:
    """``get_payload`` and ``get_answer`` of an llm_based_*.py script, with the prompt globals its
    ``__main__`` block sets, ``save_jsonl`` replaced by a recorder and ``openai`` by a scripted stand-in
    (no network here)."""
    text, tree = _source(f"complexbench/upstream/evaluation/{script}")
    prompts = _complexbench_prompts()
    namespace: dict[str, Any] = {
        "re": re,
        "json": json,
        "time": SimpleNamespace(sleep=lambda _s: None),
        "traceback": SimpleNamespace(format_exc=lambda: ""),
        "SYS_MSG": prompts["EVALUATION_PROMPT"] if "evaluation" in script else prompts["EXTRACTION_PROMPT"],
        "SYS_MSG_EACH": prompts["EXTRACTION_PROMPT_EACH"],
    }
    for name in ("get_payload", "get_answer"):
        exec(compile(_segment(text, tree, name), script, "exec"), namespace)
    return namespace


def complexbench_messages(kind: str, line: dict[str, Any]) -> list[dict[str, str]]:
    """The messages upstream's ``get_payload`` builds (kind: "evaluation" or "extraction")."""
    return _complexbench_functions(f"llm_based_{kind}.py")["get_payload"](line)["messages"]


def complexbench_verdict(reply: str) -> bool:
    """``point_judge`` as upstream's evaluation ``get_answer`` sets it for a judge reply."""
    functions = _complexbench_functions("llm_based_evaluation.py")
    saved: list[dict[str, Any]] = []
    choice = SimpleNamespace(message=SimpleNamespace(content=reply))
    functions["openai"] = SimpleNamespace(
        ChatCompletion=SimpleNamespace(create=lambda **_kw: SimpleNamespace(choices=[choice]))
    )
    functions["save_jsonl"] = lambda entry, _path: saved.append(dict(entry))
    entry = {"instruction": "i", "question": "q", "output": "o"}
    with contextlib.redirect_stdout(io.StringIO()):
        functions["get_answer"]({"data": entry, "save_path": "unused"})
    return saved[-1]["point_judge"]


@cache
def _complexbench_aggregation() -> Callable[..., Any]:
    """``aggregation`` of complexbench/upstream/evaluation/aggregation.py. The module imports only the
    standard library and guards its script part with ``__main__``: it is run whole, under another name."""
    text = (mirror() / "complexbench/upstream/evaluation/aggregation.py").read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "upstream_aggregation"}
    exec(compile(text, "aggregation.py", "exec"), namespace)
    return namespace["aggregation"]


def complexbench_aggregation(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """Upstream's statistics for data rows carrying ``point_judges_rely`` (one verdict per question)."""
    with contextlib.redirect_stdout(io.StringIO()):  # it prints every And_And_Selection entry
        return _complexbench_aggregation()(json.loads(json.dumps(entries)))
