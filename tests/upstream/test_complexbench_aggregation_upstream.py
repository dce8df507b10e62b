"""ComplexBench's breakdowns and coherent test equal upstream's ``aggregation.py`` (run from the data mirror
by ``upstream_oracles``): on the fixture's instances, on variants with repeated composition types and
dimensions, and on many random verdicts (True, False, and 2 for a rule upstream does not know)."""

from __future__ import annotations

import copy
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
import upstream_oracles as oracle

from iopo_eval.aggregate import build_result
from iopo_eval.data.complexbench import load_instances
from iopo_eval.results import ItemRecord
from iopo_eval.scoring import complexbench as cb
from iopo_eval.scoring.complexbench_aggregation import item_values, judge_rely

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "complexbench" / "data_final.json"


def variant_rows() -> list[dict[str, Any]]:
    """The fixture plus copies that repeat composition types and dimensions (upstream counts every entry)
    and put a non-Selection instance first in a Selection group."""
    rows = json.loads(FIXTURE.read_text(encoding="utf-8"))
    extra = []
    for base, change in (
        (3, {"composition_types": ["And", "Selection", "And"], "group": "g4"}),
        (3, {"composition_types": ["And", "And", "Selection"], "group": "g4"}),
        (4, {"group": "g5"}),
        (0, {"group": "g5"}),  # g5's first instance (lowest main_id) is this one: no Selection question
    ):
        row = copy.deepcopy(rows[base]) | change
        extra.append(row)
    extra[0]["scoring_questions"][1]["constraint_dimensions"] = ["Length", "Length", "Start with"]
    extra[1]["scoring_questions"][0]["composition_types"] = ["Selection", "Selection"]
    out = rows + extra
    # g5's first instance must have the lowest main_id: give it a smaller one by reordering.
    out[-2], out[-1] = out[-1], out[-2]
    for i, row in enumerate(out):
        row["main_id"] = i
    return out


def records_for(instances: list[Any], verdicts: list[dict[int, Any]]) -> list[ItemRecord]:
    records = []
    for inst, judge in zip(instances, verdicts, strict=True):
        rely = judge_rely(inst, judge)
        records.append(
            ItemRecord(
                benchmark="complexbench",
                task="complexbench",
                item_id=str(inst.main_id),
                status="ok",
                values=item_values(inst, rely),
                groups=cb.record_groups(inst),
                response="r",
                extra={"rely": [rely[q.point_id] for q in inst.scoring_questions]},
            )
        )
    return records


def upstream_statistics(rows: list[dict[str, Any]], records: list[ItemRecord]) -> dict[str, Any]:
    entries = [row | {"point_judges_rely": rec.extra["rely"]} for row, rec in zip(rows, records, strict=True)]
    return oracle.complexbench_aggregation(entries)


def ours_as_upstream(metrics: dict[str, Any]) -> dict[str, Any]:
    """Our metrics under upstream's statistics keys (fractions)."""

    def table(prefix: str, rename: dict[str, str] | None = None) -> dict[str, float]:
        rename = rename or {}
        return {
            rename.get(name[len(prefix) :], name[len(prefix) :]): m.value / 100
            for name, m in metrics.items()
            if name.startswith(prefix)
        }

    compositions = table("composition/")
    coherent = {
        f"{side}_{kind}": metrics[f"coherent/{depth}/{kind}"].value / 100
        for side, depth in (("single", "depth_1"), ("multiple", "depth_2plus"))
        for kind in ("origin", "coherent")
    }
    return {
        "overall_drfr": metrics["drfr"].value / 100,
        "categorized_drfr": table("category/"),
        "categorized_avg_drfr": table("category_family/"),
        "task_types_drfr": table("task_type/"),
        "nested_methods_drfr": table("nested/", {"Single": ""}),
        "constraint_types_and_composition_types_acc": table("group/", {"Utility": "Utillity"}) | compositions,
        "each_constraint_dimensions_and_composition_types_acc": table("dimension/") | compositions,
        "single_origin_test": coherent["single_origin"],
        "single_coherent_test": coherent["single_coherent"],
        "multiple_origin_test": coherent["multiple_origin"],
        "multiple_coherent_test": coherent["multiple_coherent"],
    }


@pytest.mark.parametrize("seed", range(40))
def test_breakdowns_and_coherent_test_equal_upstreams_aggregation(seed: int, tmp_path: Path) -> None:
    rows = variant_rows()
    path = tmp_path / "data_final.json"
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    instances = load_instances(path)
    rng = random.Random(seed)
    choices = [True, True, False, 2] if seed % 2 else [True, True, False]
    while True:
        verdicts = [{q.point_id: rng.choice(choices) for q in inst.scoring_questions} for inst in instances]
        records = records_for(instances, verdicts)
        try:
            theirs = upstream_statistics(rows, records)
        except ZeroDivisionError:
            continue  # upstream divides by an origin of 0 (no instance of a depth passes): draw again
        break
    result = build_result(cb.COMPLEXBENCH, records, task_versions={"complexbench": 3.0}, bootstrap_iters=1)
    ours = ours_as_upstream(result.metrics)
    for key, value in ours.items():
        if isinstance(value, dict):
            assert value.keys() == theirs[key].keys(), key
            for name, v in value.items():
                assert v == pytest.approx(theirs[key][name]), (key, name)
        else:
            expected = theirs[key]
            assert (math.isnan(value) and expected is None) or value == pytest.approx(expected), key
    # The variants reach the cases that differed before: a repeated composition type in the nesting label,
    # a dimension listed twice, and a group whose first instance has no Selection question.
    assert "And_And_Selection" in theirs["nested_methods_drfr"]
    assert any(rec.groups["group"] == "g5" for rec in records)
