"""Reader of ComplexBench's upstream generation files (``llm_generations/<model>.jsonl``), judged with
``iopo-eval judge --complexbench-generations FILE``.

Each row is ``{main_id, model, instruction, generated}``; rows are matched to the data by ``main_id`` and
must carry the data's Chinese instruction. The responses are judged and scored exactly as a run's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iopo_eval.data.complexbench import (
    Generation,
    Instance,
    complexbench_path,
    load_generations,
    load_instances,
)
from iopo_eval.data.store import DataError
from iopo_eval.scoring.complexbench import item_id


def read_generations(
    path: Path, mirror: str | None = None, limit: int | None = None
) -> tuple[dict[tuple[str, str, str], str], dict[str, Any]]:
    """The file's responses keyed (benchmark, task, item id), and a description of the model."""
    instances = load_instances(complexbench_path(mirror))
    generations = load_generations(path)
    responses = generation_responses(path, instances, limit, generations)
    models = {g.model for g in generations}
    return responses, {"name": ", ".join(sorted(models)) or "unknown", "source": str(path)}


def generation_responses(
    generations: Path,
    instances: Sequence[Instance],
    limit: int | None = None,
    loaded: Sequence[Generation] | None = None,
) -> dict[tuple[str, str, str], str]:
    """Responses keyed as ``iopo-eval judge`` keys them, from an upstream ``llm_generations`` file.

    Without ``limit`` the file must cover exactly the data's main_ids; with it, the first ``limit``
    instances are judged and each must have a generation. The generation's ``instruction`` must be the
    instance's Chinese instruction (upstream's files are aligned by main_id; a mismatch means a different
    data version). ``loaded``: the file's rows when the caller has read them already."""
    rows = {g.main_id: g for g in (loaded if loaded is not None else load_generations(generations))}
    chosen = list(instances[:limit] if limit is not None else instances)
    wanted = {inst.main_id for inst in chosen}
    missing = sorted(wanted - set(rows))
    if missing:
        raise DataError(f"{generations}: no generation for main_id(s) {missing[:10]}")
    if limit is None and set(rows) - wanted:
        extra = sorted(set(rows) - wanted)
        raise DataError(
            f"{generations}: main_id(s) {extra[:10]} are not in the ComplexBench data (use --limit?)"
        )
    out = {}
    for inst in chosen:
        gen = rows[inst.main_id]
        if gen.instruction != inst.instruction:
            raise DataError(
                f"{generations} main_id {inst.main_id}: its instruction differs from the data's (another data version?)"
            )
        out[("complexbench", "complexbench", item_id(inst, "zh"))] = gen.generated
    return out
