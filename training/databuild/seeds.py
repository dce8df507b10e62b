"""Seed instructions: any JSONL whose rows hold the instruction in one field (``instruction`` by default).

A row's ``id`` is used when present; otherwise the id is a hash of the instruction text, so it stays the
same when the file is reordered or extended. Rows repeating an earlier instruction (after whitespace and
case folding) are dropped and counted. ``--shard i/n`` keeps the seeds whose id hashes to shard i.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iopo_eval.training.databuild.errors import BuildError
from iopo_eval.training.eval_guard import norm_text

PACKAGED_SEEDS = Path(__file__).parent / "seeds" / "seeds_v1.jsonl"


@dataclass
class Seed:
    id: str
    instruction: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class SeedFile:
    seeds: list[Seed]
    duplicates: int  # rows dropped as repeats of an earlier instruction
    rows: int


def text_id(text: str) -> str:
    return "s" + hashlib.sha256(norm_text(text).encode("utf-8")).hexdigest()[:12]


def read_seeds(path: str | Path, field_name: str = "instruction") -> SeedFile:
    path = Path(path)
    if not path.is_file():
        raise BuildError(f"seeds file {path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BuildError(f"seeds file {path}: not UTF-8 ({exc})") from exc
    seeds: list[Seed] = []
    seen_ids: dict[str, int] = {}
    seen_texts: set[str] = set()
    duplicates = rows = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        rows += 1
        where = f"{path} line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise BuildError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise BuildError(f"{where}: expected a JSON object, got {type(row).__name__}")
        if field_name not in row:
            raise BuildError(
                f"{where}: no {field_name!r} field (keys: {sorted(row)}); choose the field with --field"
            )
        instruction = row[field_name]
        if not isinstance(instruction, str) or not instruction.strip():
            raise BuildError(f"{where}: {field_name!r} must be a non-empty string")
        raw_id = row.get("id")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            raise BuildError(f"{where}: 'id' must be a string or an integer")
        sid = str(raw_id) if raw_id is not None else text_id(instruction)
        if not sid.strip() or "#" in sid:
            raise BuildError(f"{where}: 'id' must be non-empty and must not contain '#'")
        if norm_text(instruction) in seen_texts:
            duplicates += 1
            continue
        if sid in seen_ids:
            raise BuildError(f"{where}: id {sid!r} was already used on line {seen_ids[sid]}")
        seen_ids[sid] = lineno
        seen_texts.add(norm_text(instruction))
        extra = {k: v for k, v in row.items() if k not in (field_name, "id")}
        seeds.append(Seed(sid, instruction.strip(), extra))
    if not seeds:
        raise BuildError(f"seeds file {path}: no seed instructions")
    return SeedFile(seeds, duplicates, rows)


def parse_shard(spec: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
    if not match or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise BuildError(f"--shard {spec!r}: expected i/n with 0 <= i < n, e.g. 0/4")
    return int(match.group(1)), int(match.group(2))


def in_shard(seed_id: str, shard: tuple[int, int]) -> bool:
    index, count = shard
    digest = hashlib.sha256(seed_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count == index
