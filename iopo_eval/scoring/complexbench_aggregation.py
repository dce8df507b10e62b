"""ComplexBench aggregation (protocols.md §4.3 steps 3-4): dependencies, DRFR contributions, coherent test.

- ``judge_rely[q] = judge[q] and judge[d] for every d in dep[q]``: the *raw* judgements of the direct
  dependencies only. A failed dependency of a dependency does not reach ``q`` unless ``q`` names it.
- An instance contributes ``[questions with judge_rely, questions]`` to every micro-ratio it belongs to.
- A verdict of 2 (a rule upstream does not know) is counted as upstream's aggregation counts it: it never
  fails a dependant (only a dependency that is False does), it is not a pass for DRFR and the category,
  task-type and nesting breakdowns (which test ``== True``), and it is a pass for the dimension, group
  and composition breakdowns and the coherent test (which test truthiness, or ``== False``).
- Breakdowns count as upstream's ``aggregation.py`` counts: a question once per listed dimension in
  ``dimension/`` *and* ``group/`` (two Structure dimensions: twice in ``group/Structure``), once per
  listed composition type in ``composition/``, repeats included; the nesting label keeps repeated
  composition types (``nested/And_And_Selection``).
- The coherent test is group-level, so it is computed from the item records rather than per item, with
  upstream's grouping: every instance by its ``group`` value (instances without one form one group too),
  and a group's depth is the number of Selection questions of its first instance (lowest ``main_id``):
  depth 1, depth 2 or more, or (0) not in the test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from iopo_eval.data.complexbench import DIMENSION_GROUPS, Instance
from iopo_eval.results import ItemRecord, Metric
from iopo_eval.scoring.complexbench_rules import Verdict
from iopo_eval.stats import as_pair


def judge_rely(instance: Instance, judge: Mapping[int, Verdict]) -> dict[int, Verdict]:
    """Dependency-aware verdict of every question, keyed by point_id (direct dependencies only): False
    when a dependency's raw verdict is False, else the question's own verdict (which may be 2)."""
    missing = [q.point_id for q in instance.scoring_questions if q.point_id not in judge]
    if missing:
        raise KeyError(f"ComplexBench main_id {instance.main_id}: no judgement for point_id(s) {missing}")
    return {
        q.point_id: False if any(judge[d] is False for d in q.dep) else judge[q.point_id]
        for q in instance.scoring_questions
    }


def _add(table: dict[str, list[float]], key: str, ok: bool) -> None:
    num_den = table.setdefault(key, [0.0, 0.0])
    num_den[0] += float(ok)
    num_den[1] += 1.0


def item_values(instance: Instance, rely: Mapping[int, Verdict]) -> dict[str, Any]:
    """Metric contributions of one judged instance: ``[num, den]`` pairs for the micro-ratios, plus
    ``all_pass`` (1 when no question fails: the instance-level figure the coherent test uses)."""
    table: dict[str, list[float]] = {}
    for q in instance.scoring_questions:
        verdict = rely[q.point_id]
        ok, truthy = verdict is True, bool(verdict)  # differ only for 2
        _add(table, "drfr", ok)
        _add(table, f"category/{instance.category}", ok)
        _add(table, f"category_family/{instance.category_family}", ok)
        for task_type in instance.task_types:
            _add(table, f"task_type/{task_type}", ok)
        _add(table, f"nested/{instance.nested}", ok)
        for dim in q.constraint_dimensions:
            _add(table, f"dimension/{dim}", truthy)
            _add(table, f"group/{DIMENSION_GROUPS[dim]}", truthy)
        for comp in q.composition_types:
            _add(table, f"composition/{comp}", truthy)
    values: dict[str, Any] = dict(table)
    values["all_pass"] = float(all(v is not False for v in rely.values()))
    return values


# ---------------------------------------------------------------- coherent test

DEPTHS = (("depth_1", lambda d: d == 1), ("depth_2plus", lambda d: d >= 2), ("all", lambda d: d >= 1))


def _metric(value: float, n: int, label: str) -> Metric:
    # Group-level figures have no per-item bootstrap here: the interval is left empty (null in JSON).
    return Metric(value=value * 100.0, ci_low=math.nan, ci_high=math.nan, n=n, label=label)


def coherent_metrics(records: Iterable[ItemRecord]) -> dict[str, Metric]:
    """The coherent test for depth 1, depth >= 2 and all depths, grouped as upstream groups (module
    docstring): records by their ``group`` value, each group's depth taken from its first instance.

    origin = share of instances (in complete groups) whose questions all pass; coherent = share of
    groups whose instances all pass; relative_drop = (origin - coherent) / origin. A group with an
    instance without values (not judged, not run, a rule upstream's checker fails on) is left out of both,
    so origin and coherent always cover the same instances; ``n`` says how many instances / groups were
    counted. Instances whose failed judgements were counted upstream's way are in, as upstream's are."""
    groups: dict[str, list[ItemRecord]] = {}
    for rec in records:
        if "selection_questions" not in rec.groups:
            continue  # not a ComplexBench instance record
        groups.setdefault(json.dumps(rec.groups.get("group")), []).append(rec)
    depth_of = {
        key: int(min(recs, key=lambda r: int(r.groups["main_id"])).groups["selection_questions"])
        for key, recs in groups.items()
    }
    complete = {g: recs for g, recs in groups.items() if all("all_pass" in r.values for r in recs)}
    out: dict[str, Metric] = {}
    for name, wanted in DEPTHS:
        chosen = [recs for g, recs in complete.items() if wanted(depth_of[g])]
        instances = [as_pair(r.values["all_pass"])[0] for recs in chosen for r in recs]
        origin = sum(instances) / len(instances) if instances else math.nan
        coherent = (
            sum(all(r.values["all_pass"] == 1.0 for r in recs) for recs in chosen) / len(chosen)
            if chosen
            else math.nan
        )
        drop = (origin - coherent) / origin if instances and origin > 0 else math.nan
        label = name.replace("_", " ").replace("2plus", ">=2")
        out[f"coherent/{name}/origin"] = _metric(origin, len(instances), f"Coherent test {label}: origin")
        out[f"coherent/{name}/coherent"] = _metric(coherent, len(chosen), f"Coherent test {label}: coherent")
        out[f"coherent/{name}/relative_drop"] = _metric(
            drop, len(chosen), f"Coherent test {label}: relative drop"
        )
    return out
