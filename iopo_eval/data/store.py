"""Resolve a registry entry to a verified local file: mirror folder, then cache, then download."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from iopo_eval.data.registry import DataFile, get_file
from iopo_eval.paths import data_cache_dir

MIRROR_ENV = "IOPO_EVAL_DATA_MIRROR"
OFFLINE_ENV = "IOPO_EVAL_OFFLINE"


class DataError(Exception):
    """A data file is missing, corrupt or malformed. The message names the file (and row)."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_blob_id(path: Path) -> str:
    """What `git hash-object` prints for the file: the sha1 of ``b"blob <size>\\0"`` followed by its bytes."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def mirror_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    value = explicit if explicit is not None else os.environ.get(MIRROR_ENV)
    return Path(value).expanduser().absolute() if value else None


def _check_hash(entry: DataFile, path: Path) -> None:
    """The sha256 when pinned, else the git blob id when known, else nothing (verified by schema only)."""
    if entry.sha256 is not None:
        kind, actual, expected = "sha256", sha256_of(path), entry.sha256
    elif entry.git_blob is not None:
        kind, actual, expected = "git blob id", git_blob_id(path), entry.git_blob
    else:
        return
    if actual != expected:
        raise DataError(
            f"{entry.key}: {path} has {kind} {actual}, expected {expected} "
            f"({entry.repo}@{entry.commit[:12]}:{entry.upstream_path}). The file is corrupt or a different "
            "version; delete it (or fix the mirror) and fetch again."
        )


def verify(key: str, mirror: str | os.PathLike[str] | None = None) -> Path:
    """Return the verified local path of a file that is already present; never downloads."""
    entry = get_file(key)
    for candidate in _candidates(entry, mirror):
        if candidate.is_file():
            _check_hash(entry, candidate)
            return candidate
    raise DataError(_missing_message(entry, mirror))


def _candidates(entry: DataFile, mirror: str | os.PathLike[str] | None) -> list[Path]:
    paths = []
    root = mirror_dir(mirror)
    if root is not None:
        paths.append(root / entry.mirror_path)
    paths.append(data_cache_dir() / entry.mirror_path)
    return paths


def _missing_message(entry: DataFile, mirror: str | os.PathLike[str] | None) -> str:
    looked = ", ".join(str(p) for p in _candidates(entry, mirror))
    return (
        f"{entry.key}: {entry.mirror_path} is not available (looked in {looked}). Run `iopo-eval data fetch "
        f"{entry.key}` with network access, or point {MIRROR_ENV} / --data-mirror at a folder holding "
        f"{entry.mirror_path}."
    )


def fetch(key: str, mirror: str | os.PathLike[str] | None = None, timeout: float = 60.0) -> Path:
    """Make the file available locally (mirror or cache), downloading it into the cache if needed."""
    entry = get_file(key)
    try:
        return verify(key, mirror)
    except DataError as exc:
        if "not available" not in str(exc):
            raise
    if os.environ.get(OFFLINE_ENV) or mirror_dir(mirror) is not None:
        # With a mirror configured we are on an offline machine by contract: never reach out silently.
        raise DataError(_missing_message(entry, mirror))
    target = data_cache_dir() / entry.mirror_path
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            urllib.request.urlopen(entry.url, timeout=timeout) as resp,
            tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp,
        ):
            shutil.copyfileobj(resp, tmp)
            tmp_path = Path(tmp.name)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DataError(
            f"{entry.key}: download of {entry.url} failed ({exc}). {_missing_message(entry, mirror)}"
        ) from exc
    try:
        _check_hash(entry, tmp_path)
    except DataError:
        tmp_path.unlink(missing_ok=True)
        raise
    os.replace(tmp_path, target)  # atomic: a crash never leaves a half-written cache file
    return target


def data_path(key: str, mirror: str | os.PathLike[str] | None = None) -> Path:
    """The path to read a file from: verified, fetched if missing."""
    return fetch(key, mirror)
