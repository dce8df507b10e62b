"""Merging the shards of a build (``--shard i/n`` on several machines) into one folder.

Each shard folder holds its items (``items.jsonl``), its run ledgers, its manifest and a copy of the
taxonomy. The merge checks that the shards come from the same settings and cover 0..n-1 exactly once,
then writes the union's outputs and report as a build would. It makes no call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from iopo_eval.training.databuild.distribution import CountDistribution
from iopo_eval.training.databuild.errors import BuildError
from iopo_eval.training.databuild.items import BuildItem
from iopo_eval.training.databuild.outputs import write_outputs
from iopo_eval.training.databuild.report import build_report, write_report
from iopo_eval.training.databuild.state import check_manifest, exit_code
from iopo_eval.training.databuild.steps import Ctx
from iopo_eval.training.databuild.taxonomy import taxonomy_from_snapshot, taxonomy_to_yaml


def _read(path: Path) -> Any:
    if not path.is_file():
        raise BuildError(f"{path.parent} is not a finished build folder: {path.name} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BuildError(f"{path}: not valid JSON ({exc})") from exc


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise BuildError(f"{path.parent} is not a finished build folder: {path.name} is missing")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def merge_shards(shard_dirs: list[Path], out: Path) -> tuple[int, dict[str, Any]]:
    if not shard_dirs:
        raise BuildError("merge-data needs at least one shard folder")
    manifests = [_read(d / "manifest.json") for d in shard_dirs]
    first = manifests[0]
    count = (first.get("shard") or [0, 1])[1]
    seen: dict[int, Path] = {}
    for folder, manifest in zip(shard_dirs, manifests, strict=True):
        if manifest.get("shard") is None:
            raise BuildError(f"{folder} was not built with --shard i/n")
        index, n = manifest["shard"]
        if n != count:
            raise BuildError(f"{folder} is shard {index}/{n}, but {shard_dirs[0]} is one of {count}")
        if index in seen:
            raise BuildError(f"{folder} and {seen[index]} are both shard {index}/{n}")
        seen[index] = folder
        other = {k: v for k, v in manifest.items() if k != "shard"}
        base = {k: v for k, v in first.items() if k != "shard"}
        diff = sorted(k for k in set(other) | set(base) if other.get(k) != base.get(k))
        if diff:
            raise BuildError(f"{folder} was built with other settings than {shard_dirs[0]} ({diff[0]})")
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise BuildError(f"shard {missing[0]}/{count} is missing (got {sorted(seen)})")
    taxonomy = taxonomy_from_snapshot(shard_dirs[0] / "taxonomy.yaml")
    if taxonomy.fingerprint() != first["taxonomy"]["fingerprint"]:
        raise BuildError(
            f"{shard_dirs[0] / 'taxonomy.yaml'} does not match the taxonomy recorded in its manifest"
        )
    items: list[BuildItem] = []
    trails: dict[str, dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []
    in_build = 0
    for folder in shard_dirs:
        rows = _lines(folder / "items.jsonl")
        for row in rows:
            item = BuildItem.from_json(row)
            if item.id in trails:
                raise BuildError(f"{folder}: item {item.id!r} is also in another shard")
            items.append(item)
            trails[item.id] = row.get("trail", {})
        runs.extend(_lines(folder / "runs.jsonl"))
        in_build += len(rows)
    reports = [_read(d / "report.json") for d in shard_dirs]
    manifest = {**first, "shard": None, "merged_from": count}
    out.mkdir(parents=True, exist_ok=True)
    check_manifest(out / "manifest.json", manifest)
    (out / "taxonomy.yaml").write_text(taxonomy_to_yaml(taxonomy), encoding="utf-8")
    ctx = Ctx(taxonomy=taxonomy, parsers={}, pass_score=first["pass_score"])
    smoke = bool(first["generator"].get("smoke_test") or first["judge"].get("smoke_test"))
    counts = write_outputs(out, items, trails, taxonomy, ctx, smoke)
    with (out / "runs.jsonl").open("w", encoding="utf-8") as fh:
        for run in runs:
            fh.write(json.dumps(run) + "\n")
    weights = {int(k): v for k, v in first["distribution"]["weights"].items()}
    decon = {k: v for k, v in reports[0]["decontamination"].items() if k != "dropped"}
    report = build_report(
        manifest=manifest,
        items=items,
        trails=trails,
        runs=runs,
        taxonomy=taxonomy,
        distribution=CountDistribution(first["distribution"]["name"], weights),
        outputs=counts,
        seeds={
            "rows": reports[0]["seeds"]["rows"],
            "duplicates": reports[0]["seeds"]["duplicates"],
            "other_shards": 0,
            "in_build": in_build,
        },
        decontamination=decon,
    )
    write_report(out, report, taxonomy)
    return exit_code(trails), report
