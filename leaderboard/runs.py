"""Finding and loading the runs a leaderboard shows."""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from iopo_eval.results import RESULTS_NAME, ResultsError, RunResults, load_results


@dataclass
class LoadedRun:
    results: RunResults
    run_dir: Path
    slug: str  # file-name-safe, unique within the site

    @property
    def name(self) -> str:
        return str(
            self.results.model.get("name") or self.results.model.get("model_args") or self.results.run_id
        )


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Run folders or results.json paths; shell-style globs are expanded here too (for CI on Windows
    shells and quoted patterns). A pattern or path that matches nothing is an error."""
    out: list[Path] = []
    for raw in inputs:
        matches = sorted(glob.glob(raw)) if glob.has_magic(raw) else [raw]
        if not matches:
            raise ResultsError(f"{raw}: no run matches this pattern")
        for m in matches:
            p = Path(m)
            if p.is_dir() and not (p / RESULTS_NAME).is_file():
                nested = sorted(p.glob(f"*/{RESULTS_NAME}"))
                if nested:  # a folder of runs
                    out.extend(n.parent for n in nested)
                    continue
            out.append(p)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = (p.parent if p.name == RESULTS_NAME else p).resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _slugify(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60]
    return slug or "run"


def load_runs(inputs: list[str]) -> list[LoadedRun]:
    runs: list[LoadedRun] = []
    used: set[str] = set()
    for path in expand_inputs(inputs):
        results, run_dir = load_results(path)
        base = _slugify(results.run_id)
        slug, k = base, 2
        while slug.lower() in used:  # case-insensitive file systems
            slug, k = f"{base}-{k}", k + 1
        used.add(slug.lower())
        runs.append(LoadedRun(results, run_dir, slug))
    return runs
