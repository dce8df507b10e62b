"""The replication's statistics against hand-computed answers, and the whole command on a tiny random model
(training, generation through lm-eval's hf backend, scoring, report) with two seeds."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest

from iopo_eval.training.replication_report import Z, power, sign_flip_p


def test_sign_flip_p_exact_by_enumeration() -> None:
    d = np.array([1.0, 1.0, 1.0, 0.0, -1.0])
    # non-zero differences 1, 1, 1, -1: of the 16 sign patterns, |sum| >= 2 for those with sum +-2 or +-4
    sums = [abs(sum(s * x for s, x in zip(signs, (1, 1, 1, -1), strict=True)))
            for signs in itertools.product((1, -1), repeat=4)]  # fmt: skip
    assert sign_flip_p(d) == pytest.approx(sum(v >= 2 for v in sums) / 16) == pytest.approx(10 / 16)
    assert sign_flip_p(np.zeros(5)) == 1.0
    assert sign_flip_p(np.ones(8)) == pytest.approx(2 / 256)
    many = np.array([1.0] * 30 + [-1.0] * 5)
    assert sign_flip_p(many) < 0.001  # Monte Carlo branch


def test_power_is_the_normal_approximation() -> None:
    d = np.array([1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 1.0, 0.0])
    sd = float(np.std(d, ddof=1))
    out = power(d)
    assert pytest.approx(1.959964 + 0.841621, abs=1e-5) == Z
    assert out["mde"] == pytest.approx(Z * sd / math.sqrt(8))
    assert out["items_needed"] == math.ceil((Z * sd / d.mean()) ** 2)
    assert power(np.zeros(10))["mde"] is None


@pytest.mark.slow
def test_replicate_end_to_end_on_a_tiny_model(tmp_path, tokenizer) -> None:
    from iopo_eval.training.replicate import main
    from iopo_eval.training.toy_models import random_model

    model = tmp_path / "tiny"
    random_model("tiny", vocab_size=len(tokenizer)).save_pretrained(model)
    tokenizer.save_pretrained(model)
    out = tmp_path / "rep"
    argv = ["--out", str(out), "--model", str(model), "--n-train", "3", "--n-heldout", "4", "--n-ifeval", "3",
            "--seeds", "0,1", "--max-new-tokens", "4", "--gen-batch", "4", "--jobs", "2", "--skip-base"]  # fmt: skip
    assert main(argv) == 0
    blob = json.loads((out / "results.json").read_text())
    assert set(blob["table"]) == {"sft", "dpo@0", "iopo@0", "dpo@1", "iopo@1", "dpo@pooled", "iopo@pooled"}
    assert blob["table"]["sft"]["ifeval/instruction"]["n"] == 3
    generations = json.loads((out / "generations" / "iopo-seed1.json").read_text())
    assert generations["backend"] == "hf (lm-eval)" and generations["generation"]["max_gen_toks"] == 4
    assert len(generations["rows"]) == 7
    pooled = [
        c for c in blob["comparisons"] if c["candidate"] == "iopo@pooled" and c["baseline"] == "dpo@pooled"
    ]
    assert {c["metric"] for c in pooled} == {"heldout/instruction", "ifeval/instruction", "ifeval/constraint"}
    info = json.loads((out / "iopo-seed1" / "final" / "training_info.json").read_text())
    assert info["seed"] == 1 and info["method"] == "iopo"
    # a rerun reuses every stage
    first = (out / "results.md").read_text()
    assert main(argv) == 0
    assert (out / "results.md").read_text().split("```")[2] == first.split("```")[2]


def test_per_item_differences_average_to_the_reported_delta() -> None:
    from iopo_eval.training.replication_report import report

    def result(followed: list[list[bool]]) -> dict:
        return {"rows": [{"set": "ifeval", "followed": f, "kinds": ["x"] * len(f)} for f in followed]}

    # constraint level is a ratio of sums: 3/6 -> 4/6, Δ = +1/6, and the MDE's differences average to it
    base = result([[True, False, False], [True], [True, False]])
    cand = result([[True, True, False], [True], [True, False]])
    _, blob = report({"dpo@0": base, "iopo@0": cand}, {})
    (c,) = [c for c in blob["comparisons"] if c["metric"] == "ifeval/constraint"]
    assert c["delta"] == pytest.approx(1 / 6)
    d = np.array([1.0, 0.0, 0.0]) / 2.0  # contributions: (cand - base) / mean constraints per item
    assert d.mean() == pytest.approx(c["delta"])
    assert c["items_needed"] == math.ceil((Z * np.std(d, ddof=1) / d.mean()) ** 2)
