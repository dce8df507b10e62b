"""The files a build writes, from its items (whatever step each one reached):

| file | rows | read by |
|---|---|---|
| ``instructions.jsonl`` | built instructions in TRACE's row schema (+ ``dimensions``, ``seed``) | ``iopo_eval.data.trace.parse_row``, ``train build-llm`` |
| ``sft.jsonl`` | ``{"id", "messages": [user, assistant]}``: every response that followed every constraint | ``iopo-eval train --method sft`` |
| ``dpo_pairs.jsonl`` | TRL's conversational ``{"id", "prompt", "chosen", "rejected"}`` on the same instruction | ``iopo-eval train --method dpo``, TRL |
| ``quadruples.jsonl`` | this project's ``{"id", "x1", "x2", "y1", "y2"}`` | ``iopo-eval train --method iopo`` (and dpo/sft) |
| ``iopo_train.json`` | the upstream IOPO format (``conversations`` x1, x2; ``chosen`` y1; ``rejected`` y2) | LLaMA-Factory's IOPO fork, ``iopo-eval train`` |
| ``hf/{sft,dpo,iopo}.parquet`` + ``hf/README.md`` | the same three sets as a Hugging Face dataset | ``datasets.load_dataset("parquet", data_files=...)``, the Hub |
| ``items.jsonl`` | every item with its fields and per-step trail | ``train merge-data``, inspection |

Training prompts carry no system prompt (as the upstream IOPO sample); chat templates add their default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iopo_eval.training.data import Quadruple, write_quadruples
from iopo_eval.training.databuild.items import BuildItem, Candidate, trace_row
from iopo_eval.training.databuild.state import write_json
from iopo_eval.training.databuild.steps import Ctx
from iopo_eval.training.databuild.taxonomy import Taxonomy


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _passing(candidates: list[dict[str, Any]], pass_score: float) -> list[tuple[int, str]]:
    return [
        (k, c["text"])
        for k, c in enumerate(candidates)
        if Candidate(c["text"], c.get("scores")).passed(pass_score)
    ]


def reached(trail: dict[str, Any], step: str) -> bool:
    return trail.get(step, {}).get("status") == "kept"


def collect(
    items: list[BuildItem], trails: dict[str, dict[str, Any]], taxonomy: Taxonomy, ctx: Ctx
) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {"instructions": [], "sft": [], "dpo": [], "quadruples": []}
    for item in items:
        trail = trails.get(item.id, {})
        if reached(trail, "decontaminate"):
            rows["instructions"].append(trace_row(item, taxonomy))
        if "judge" in trail and trail["judge"].get("status") in ("kept", "dropped"):
            for k, text in _passing(item.candidates, ctx.pass_score):
                rows["sft"].append(
                    {"id": f"{item.id}/x1/{k}", "messages": _user(item.prompt()) + _assistant(text)}
                )
        if "judge_x2" in trail and trail["judge_x2"].get("status") in ("kept", "dropped"):
            for k, text in _passing(item.candidates2, ctx.pass_score):
                rows["sft"].append(
                    {"id": f"{item.id}/x2/{k}", "messages": _user(item.prompt("x2")) + _assistant(text)}
                )
        if reached(trail, "judge") and item.chosen is not None and item.rejected is not None:
            rows["dpo"].append(
                {
                    "id": item.id,
                    "prompt": _user(item.prompt()),
                    "chosen": _assistant(item.y1()),
                    "rejected": _assistant(str(item.candidates[item.rejected]["text"])),
                }
            )
        if reached(trail, "cross_y2"):
            rows["quadruples"].append(
                Quadruple(_user(item.prompt()), _user(item.prompt("x2")), item.y1(), item.y2(), item.id)
            )
    return rows


def upstream_row(q: Quadruple) -> dict[str, Any]:
    return {
        "conversations": [
            {"from": "human", "value": q.x1[-1]["content"]},
            {"from": "human", "value": q.x2[-1]["content"]},
        ],
        "chosen": {"from": "gpt", "value": q.y1},
        "rejected": {"from": "gpt", "value": q.y2},
    }


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _card(manifest_smoke: bool, counts: dict[str, int]) -> str:
    label = (
        "**SMOKE TEST**: made offline by the embedded SmolLM2-135M model and judge. The data only shows that the "
        "pipeline runs; it is not useful for training.\n\n"
        if manifest_smoke
        else ""
    )
    return (
        "---\nconfigs:\n"
        "- config_name: iopo\n  data_files: iopo.parquet\n"
        "- config_name: dpo\n  data_files: dpo.parquet\n"
        "- config_name: sft\n  data_files: sft.parquet\n"
        "---\n\n# TRACE-style training data built by iopo-eval\n\n"
        f"{label}Rows: {counts['quadruples']} IOPO quadruples, {counts['dpo_pairs']} DPO pairs, {counts['sft']} SFT rows. "
        "See report.html in the build folder for how they were made.\n\n"
        'Load a set locally with `datasets.load_dataset("parquet", data_files={"train": "hf/iopo.parquet"})`: '
        '`load_dataset("hf", "iopo")` caches a local folder by its name and config, so it can return the rows '
        "of an earlier build.\n"
    )


def write_outputs(
    out: Path,
    items: list[BuildItem],
    trails: dict[str, dict[str, Any]],
    taxonomy: Taxonomy,
    ctx: Ctx,
    smoke_test: bool = False,
) -> dict[str, int]:
    rows = collect(items, trails, taxonomy, ctx)
    _jsonl(out / "instructions.jsonl", rows["instructions"])
    _jsonl(out / "sft.jsonl", rows["sft"])
    _jsonl(out / "dpo_pairs.jsonl", rows["dpo"])
    tmp = out / "quadruples.jsonl.tmp"
    write_quadruples(tmp, rows["quadruples"])
    tmp.replace(out / "quadruples.jsonl")
    write_json(out / "iopo_train.json", [upstream_row(q) for q in rows["quadruples"]])
    _jsonl(out / "items.jsonl", [{**item.to_json(), "trail": trails.get(item.id, {})} for item in items])
    counts = {
        "instructions": len(rows["instructions"]),
        "sft": len(rows["sft"]),
        "dpo_pairs": len(rows["dpo"]),
        "quadruples": len(rows["quadruples"]),
    }
    _write_hf(out / "hf", rows, counts, smoke_test)
    return counts


def _write_hf(folder: Path, rows: dict[str, list[Any]], counts: dict[str, int], smoke_test: bool) -> None:
    """Parquet files, one per set, with a dataset card naming them as configs (``load_dataset(folder, "iopo")``)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    message = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    tables = {
        "iopo": pa.table(
            {
                "id": [q.id for q in rows["quadruples"]],
                "x1": [q.x1 for q in rows["quadruples"]],
                "x2": [q.x2 for q in rows["quadruples"]],
                "y1": [q.y1 for q in rows["quadruples"]],
                "y2": [q.y2 for q in rows["quadruples"]],
            },
            schema=pa.schema(
                [
                    ("id", pa.string()),
                    ("x1", message),
                    ("x2", message),
                    ("y1", pa.string()),
                    ("y2", pa.string()),
                ]
            ),
        ),
        "dpo": pa.table(
            {k: [r[k] for r in rows["dpo"]] for k in ("id", "prompt", "chosen", "rejected")},
            schema=pa.schema(
                [("id", pa.string()), ("prompt", message), ("chosen", message), ("rejected", message)]
            ),
        ),
        "sft": pa.table(
            {k: [r[k] for r in rows["sft"]] for k in ("id", "messages")},
            schema=pa.schema([("id", pa.string()), ("messages", message)]),
        ),
    }
    for name, table in tables.items():
        tmp = folder / f"{name}.parquet.tmp"
        pq.write_table(table, tmp)
        tmp.replace(folder / f"{name}.parquet")
    (folder / "README.md").write_text(_card(smoke_test, counts), encoding="utf-8")
