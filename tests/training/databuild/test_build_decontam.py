"""Decontamination against the four evaluation sets (the data mirror), and the refusal of evaluation files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from iopo_eval.data.cfbench import load_cfbench
from iopo_eval.data.complexbench import load_generations
from iopo_eval.data.store import data_path
from iopo_eval.data.trace import load_trace
from iopo_eval.scoring.ifeval import load_ifeval
from iopo_eval.testing.build_replies import block
from iopo_eval.training.databuild.decontam import build_index, units
from iopo_eval.training.databuild.errors import BuildError
from iopo_eval.training.databuild.seeds import PACKAGED_SEEDS, read_seeds
from tests.training.databuild.conftest import build, phase


def test_units_and_index() -> None:
    assert units("Hello, World! 你好。") == ["hello", "world", "你", "好"]
    index = build_index()
    assert set(index.ngrams) == {"trace", "ifeval", "cfbench", "complexbench"}
    trace = load_trace()
    assert index.check(trace[7].user_prompt) == "exact TRACE prompt"
    assert index.check("  " + trace[7].description.upper() + " ") == "exact TRACE prompt"
    cf = load_cfbench()[3].prompt
    assert index.check("请看这段话：" + cf[10:40] + "，然后总结。") == "13-gram overlap with CFBench"
    assert index.check(cf[10:22]) is None  # 12 characters: shorter than one n-gram
    words = load_ifeval()[2].prompt.split()
    assert index.check("Please do this: " + " ".join(words[:14])) == "13-gram overlap with IFEval"
    cb = load_generations(data_path("complexbench/gpt4_1106"))[4].instruction
    assert index.check("x " + cb[:30]) == "13-gram overlap with ComplexBench"
    # the shipped seeds are clean
    assert [s.id for s in read_seeds(PACKAGED_SEEDS).seeds if index.check(s.instruction)] == []
    with pytest.raises(BuildError, match="unknown evaluation set 'mmlu'"):
        build_index(skip=["mmlu"])
    assert "ifeval" not in build_index(skip=["ifeval"]).ngrams


def test_contaminated_seeds_and_instructions_are_dropped_and_counted(tmp_path, server, scripted) -> None:
    trace = load_trace()
    leak = trace[20].user_prompt  # copied into one expanded instruction by the generator
    seeds = [
        {"id": "exact", "instruction": trace[7].user_prompt},
        {"id": "description", "instruction": trace[9].description},
        {"id": "cfbench", "instruction": "改写：" + load_cfbench()[3].prompt[:60]},
        {"id": "ifeval", "instruction": load_ifeval()[2].prompt},
        {"id": "clean", "instruction": "Describe a walk through a quiet park in spring."},
        {"id": "leaky", "instruction": "Write a note to a friend about a new bakery."},
    ]
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(s, ensure_ascii=False) + "\n" for s in seeds), encoding="utf-8")

    def expand(request: dict[str, Any]) -> str | None:
        if "new bakery" in block(request["messages"][-1]["content"], "seed"):
            added = [{"dimension": "inclusion", "constraint": "Mention bread."}]
            scripted_text = leak + "\nRequirements:\n- [inclusion] Mention bread."
            return json.dumps({"usable": True, "reason": "", "instruction": scripted_text, "added": added})
        return None

    scripted.overrides["expand"] = expand
    code, report = build(server, tmp_path / "out", seeds=path, distribution="1")
    assert code == 0
    assert phase(report, "seeds")["dropped"] == {
        "decontamination: seed exact TRACE prompt": 2,
        "decontamination: seed 13-gram overlap with CFBench": 1,
        "decontamination: seed exact IFEval prompt": 1,
    }
    assert phase(report, "decontaminate")["dropped"] == {
        "decontamination: instruction 13-gram overlap with TRACE": 1
    }
    assert sum(report["decontamination"]["dropped"].values()) == 5
    assert report["outputs"]["instructions"] == 1
    # nothing is paid for a contaminated seed
    assert report["cost"]["all_runs"]["by_step"]["expand"]["requests"] == 2


def test_an_evaluation_file_is_refused_as_seeds(tmp_path, server, mirror) -> None:
    with pytest.raises(BuildError, match="is the evaluation file 'trace/eval'"):
        build(
            server,
            tmp_path / "out",
            seeds=mirror / "trace" / "202409_trace_evaluation.jsonl",
            field="description",
        )
    assert server.calls == 0
