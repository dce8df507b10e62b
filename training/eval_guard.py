"""Never build training data from evaluation rows.

Two checks: the input file itself must not be a known evaluation file (sha256 against every pinned file
of the data registry), and no instruction may repeat an evaluation prompt (TRACE prompt or task
description, IFEval prompt), compared after lower-casing and collapsing whitespace. The prompt index is
read from the local data mirror/cache when available; where it is not, only the hash check runs and a
warning says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from iopo_eval.data.registry import REGISTRY
from iopo_eval.data.store import DataError, sha256_of, verify

log = logging.getLogger(__name__)
# Registry files whose rows are evaluation prompts, and the fields that hold the prompt text.
_PROMPT_FIELDS = {"trace/eval": ("description",), "ifeval/input": ("prompt",)}


class EvaluationDataError(ValueError):
    """The builder was given evaluation data."""


def norm_text(text: str) -> str:
    """Whitespace collapsed, trimmed and lower-cased: how texts are compared for sameness here and in the
    data builder (duplicate seeds and constraints)."""
    return re.sub(r"\s+", " ", text).strip().lower()


def _digest(text: str) -> str:
    return hashlib.sha256(norm_text(text).encode("utf-8")).hexdigest()


def evaluation_hashes() -> dict[str, str]:
    """sha256 -> registry key of every pinned file (all registry files are evaluation or sample files)."""
    return {f.sha256: key for key, f in REGISTRY.items() if f.sha256}


def refuse_evaluation_file(path: str | Path) -> None:
    digest = sha256_of(Path(path))
    key = evaluation_hashes().get(digest)
    if key is not None:
        raise EvaluationDataError(
            f"{path} is the evaluation file {key!r} (sha256 {digest[:12]}…); training data is never built from "
            "benchmark evaluation rows"
        )


@lru_cache(maxsize=1)
def evaluation_prompt_index() -> frozenset[str]:
    digests: set[str] = set()
    for key, fields in _PROMPT_FIELDS.items():
        try:
            path = verify(key)
        except DataError:
            log.warning(
                "evaluation prompts of %s are not available locally: only file hashes are checked", key
            )
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            for name in fields:
                if isinstance(row.get(name), str) and row[name].strip():
                    digests.add(_digest(row[name]))
            for msg in row.get("messages", []) or []:  # TRACE: the full user prompt too
                if msg.get("role") == "user" and isinstance(msg.get("content"), str):
                    digests.add(_digest(msg["content"]))
    return frozenset(digests)


def refuse_evaluation_prompts(texts: Iterable[tuple[str, str]]) -> None:
    """``texts``: (where, text). Raises on the first text equal to an evaluation prompt or TRACE description."""
    index = evaluation_prompt_index()
    if not index:
        return
    for where, text in texts:
        if _digest(text) in index:
            raise EvaluationDataError(
                f"{where}: this instruction is an evaluation prompt of TRACE or IFEval: {text[:80]!r}"
            )
