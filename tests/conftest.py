"""Shared fixtures. Tests run offline against the local data mirror (../shared/data in CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("IOPO_EVAL_DATA_MIRROR", str(DEFAULT_MIRROR))
# A relative mirror (as a user may export it) names a folder relative to where pytest started.
os.environ["IOPO_EVAL_DATA_MIRROR"] = os.path.abspath(os.environ["IOPO_EVAL_DATA_MIRROR"])
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Subprocesses started from the repository root (`python -m iopo_eval.cli`, `python -c ...`) must import
# the installed package, not the source folder iopo_eval/ that holds only part of the namespace.
os.environ["PYTHONSAFEPATH"] = "1"


@pytest.fixture
def mirror() -> Path:
    path = Path(os.environ["IOPO_EVAL_DATA_MIRROR"])
    if not path.is_dir():
        pytest.fail(f"data mirror {path} is missing: set IOPO_EVAL_DATA_MIRROR to the shared data folder")
    return path


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh iopo-eval cache dir (data cache, judge cache) for one test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("IOPO_EVAL_CACHE", str(cache))
    monkeypatch.delenv("IOPO_EVAL_JUDGE_CACHE", raising=False)
    return cache
