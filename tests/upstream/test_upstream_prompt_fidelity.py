"""The upstream prompts as iopo-eval renders them (read with ``ast``, never executed) equal, byte for byte,
what upstream's own code builds for the same row and response: every TRACE row (each reading of its
unreleased ``question``), every CFBench row, and ComplexBench's yes/no and extraction prompts on the
fixture's questions and on the 1,150 instructions and responses of the GPT-4-1106 generation file.

The oracles (``upstream_oracles``) run upstream's functions from the read-only data mirror inside these
tests only; upstream's files are data here, never shipped and never copied into the repository.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import upstream_oracles as oracle
from awkward_text import AWKWARD

from iopo_eval.judges.upstream_prompt import messages, n_expected, render_upstream


def response_for(i: int) -> str:
    return AWKWARD[i % len(AWKWARD)] + ("" if i % 3 else f" #{i}")


def trace_rows(mirror: Path) -> list[dict[str, Any]]:
    path = mirror / "trace/202409_trace_evaluation.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def trace_fields(row: dict[str, Any], response: str) -> dict[str, Any]:
    return {
        "description": row["description"],
        "row_input": row["input"],
        "row_constraints": row["constraints"],
        "constraints_splits": row["constraints_splits"],
        "prompt": row["messages"][-1]["content"],
        "response": response,
    }


def trace_ref(question: str) -> dict[str, Any]:
    return {"upstream": "trace/upstream-template", "spec": "trace", "options": {"question": question}}


def test_every_trace_row_renders_as_upstreams_code_builds_it(mirror: Path) -> None:
    rows = trace_rows(mirror)
    assert len(rows) == 1042
    for i, row in enumerate(rows):
        response = response_for(i)
        fields = trace_fields(row, response)
        ours = messages(trace_ref("input"), fields)
        # upstream's trace_score with question = the row's input (the documented default reading)
        theirs = oracle.trace_prompt(row["input"], row["description"], row["constraints"], response)
        assert ours == [{"role": "user", "content": theirs}], row["id"]
        assert n_expected(trace_ref("input"), fields) == row["constraints_num"]


@pytest.mark.parametrize("question", ["prompt", "none", "description+input"])
def test_the_other_readings_of_traces_question_render_as_upstream_would(mirror: Path, question: str) -> None:
    template = oracle.trace_template()
    for i, row in enumerate(trace_rows(mirror)):
        response = response_for(i)
        ours = render_upstream(trace_ref(question), trace_fields(row, response)).text
        description = row["description"]
        if question == "prompt":
            asked = row["messages"][-1]["content"]
        elif question == "none":
            asked = "NULL"
        else:  # the commented-out line: description + "\n" + question, for a question without NULL
            asked = "NULL"
            if "NULL" not in row["input"]:
                description = description + "\n" + row["input"]
        theirs = template.generate_verdicts(
            question=asked,
            gold_answer=None,
            pred_answer=response,
            constraints=row["constraints"],
            description=description,
        )
        assert ours == theirs, (question, row["id"])


def test_every_cfbench_row_renders_as_upstreams_code_builds_it(mirror: Path) -> None:
    rows = json.loads((mirror / "cfbench/cfbench_data.json").read_text(encoding="utf-8"))
    assert len(rows) == 1000
    ref = {"upstream": "cfbench/upstream-evaluate", "spec": "cfbench"}
    for i, row in enumerate(rows):
        response = response_for(i)
        fields = {
            "prompt": row["prompt"],
            "gold": row["gold"],
            "criteria": [c[0] for c in row["criteria"]],
            "response": response,
        }
        theirs = oracle.cfbench_prompt(row, response)  # Evaluation._judge_one -> gpt_judge_for_cfbench
        assert messages(ref, fields) == [{"role": "user", "content": theirs}], row["idx"]
        assert n_expected(ref, fields) == len(row["criteria"])


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "complexbench" / "data_final.json"


def complexbench_lines() -> list[dict[str, Any]]:
    """Upstream's per-question lines: the fixture's questions with their instructions and synthetic
    responses, and the 1,150 real instructions and GPT-4-1106 responses with a synthetic question."""
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    lines = []
    for i, item in enumerate(data):
        for j, question in enumerate(item["scoring_questions"]):
            lines.append(
                {
                    "instruction": item["instruction"],
                    "question": question["question"],
                    "rule": question["rule"] or "model_length:[1,10]",
                    "output": response_for(i * 7 + j),
                }
            )
    generations = oracle.mirror() / "complexbench/llm_generations/gpt4_1106.jsonl"
    for k, text in enumerate(generations.read_text(encoding="utf-8").splitlines()):
        row = json.loads(text)
        lines.append(
            {
                "instruction": row["instruction"],
                "question": f"模型回复是否满足第{k}个要求？{response_for(k)[:20]}",
                "rule": ["model_keyword:[春天]", "model_length_each:[1,50]", "model_endswith_each:[。]"][
                    k % 3
                ],
                "output": None if k % 97 == 0 else row["generated"],
            }
        )
    return lines


@pytest.mark.parametrize(
    ("kind", "spec"),
    [("evaluation", "complexbench-evaluation"), ("extraction", "complexbench-extraction")],
)
def test_complexbench_prompts_render_as_upstreams_get_payload_builds_them(kind: str, spec: str) -> None:
    key = {
        "evaluation": "complexbench/upstream-ral-evaluator",
        "extraction": "complexbench/upstream-ral-extractor",
    }
    ref = {"upstream": key[kind], "spec": spec}
    lines = complexbench_lines()
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert len(lines) == sum(len(item["scoring_questions"]) for item in fixture) + 1150
    cut = 0
    for line in lines:
        fields = {
            "instruction": line["instruction"],
            "question": line["question"],
            "response": line["output"],
            "rule": line["rule"],
        }
        theirs = oracle.complexbench_messages(kind, line)
        assert messages(ref, fields) == theirs, line["question"]
        rendered = render_upstream(ref, fields)
        cut += bool(rendered.truncated)
        for name, original in rendered.truncated.items():
            assert original > {"input": 6000, "instruction": 6000, "output": 4000, "response": 4000}[name]
    assert cut > 0  # the long instructions and responses were cut, as upstream cuts them
