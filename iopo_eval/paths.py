"""Where iopo-eval keeps its caches. Every location can be moved with an environment variable."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of all caches (data files, converted models, judge cache). ``IOPO_EVAL_CACHE`` moves it."""
    root = os.environ.get("IOPO_EVAL_CACHE")
    if root:
        path = Path(root)
    else:
        import platformdirs  # imported here: a bare GPU machine may lack it and set IOPO_EVAL_CACHE instead

        path = Path(platformdirs.user_cache_dir("iopo-eval"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_cache_dir() -> Path:
    path = cache_dir() / "data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = cache_dir() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def judge_cache_path() -> Path:
    """The default SQLite judge cache. ``IOPO_EVAL_JUDGE_CACHE`` points it elsewhere."""
    explicit = os.environ.get("IOPO_EVAL_JUDGE_CACHE")
    return Path(explicit) if explicit else cache_dir() / "judge-cache.sqlite"
