"""Decontamination: built training text against the four evaluation sets.

Two checks, both on normalised text (Unicode NFKC, lower case):
- exact: the text (whitespace collapsed) equals an evaluation prompt: a TRACE user prompt or task
  description, an IFEval prompt, a CFBench prompt or a ComplexBench instruction;
- long n-gram overlap: the text shares an n-gram (default 13 units) with an evaluation prompt, where a
  unit is a word, or a single character for CJK scripts (Chinese has no spaces; 13 characters is about a
  clause). n-grams are kept as 64-bit hashes in sorted arrays, one per evaluation set.

The index is built once per process (about 1.3 M n-grams, a few seconds) and kept on disk under the
iopo-eval cache, keyed by the files' sha256 and n. An evaluation set whose file is not available is an
error unless the caller skips it explicitly (the build records which sets were checked).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from iopo_eval.data.store import DataError, data_path, sha256_of
from iopo_eval.training.databuild.errors import BuildError

log = logging.getLogger(__name__)
DEFAULT_N = 13
EVAL_SETS = ("trace", "ifeval", "cfbench", "complexbench")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")
_WORD = re.compile(r"[^\W_]+")


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def units(text: str) -> list[str]:
    """Words, with every CJK character a unit of its own; punctuation and spaces dropped."""
    return _WORD.findall(_CJK.sub(r" \g<0> ", normalise(text)))


def _hash(parts: Iterable[str]) -> int:
    return int.from_bytes(hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest(), "big")


def ngram_hashes(text: str, n: int) -> np.ndarray:
    toks = units(text)
    if len(toks) < n:
        return np.empty(0, dtype=np.uint64)
    return np.fromiter((_hash(toks[i : i + n]) for i in range(len(toks) - n + 1)), dtype=np.uint64)


def _digest(text: str) -> str:
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()


# --- the evaluation prompts --------------------------------------------------------------------------
def _trace() -> tuple[list[Path], list[str], list[str]]:
    from iopo_eval.data.trace import TRACE_FILE_KEY, load_trace

    items = load_trace()
    prompts = [i.user_prompt for i in items]
    return [data_path(TRACE_FILE_KEY)], prompts, prompts + [i.description for i in items]


def _ifeval() -> tuple[list[Path], list[str], list[str]]:
    from iopo_eval.scoring.ifeval import DATA_KEY, load_ifeval

    prompts = [i.prompt for i in load_ifeval()]
    return [data_path(DATA_KEY)], prompts, prompts


def _cfbench() -> tuple[list[Path], list[str], list[str]]:
    from iopo_eval.data.cfbench import CFBENCH_FILE_KEY, load_cfbench

    prompts = [i.prompt for i in load_cfbench()]
    return [data_path(CFBENCH_FILE_KEY)], prompts, prompts


def _complexbench() -> tuple[list[Path], list[str], list[str]]:
    """The instructions of data_final.json when present (Chinese and English), else those of the
    upstream generation file, which repeats every instruction (1,150) beside a model's answer."""
    from iopo_eval.data.complexbench import load_complexbench, load_generations

    try:
        instances = load_complexbench()
        prompts = [i.instruction for i in instances] + [
            i.instruction_en for i in instances if i.instruction_en
        ]
        return [data_path("complexbench/data")], prompts, prompts
    except DataError:
        path = data_path("complexbench/gpt4_1106")
        prompts = [g.instruction for g in load_generations(path)]
        return [path], prompts, prompts


_LOADERS: dict[str, Callable[[], tuple[list[Path], list[str], list[str]]]] = {
    "trace": _trace,
    "ifeval": _ifeval,
    "cfbench": _cfbench,
    "complexbench": _complexbench,
}
_LABELS = {"trace": "TRACE", "ifeval": "IFEval", "cfbench": "CFBench", "complexbench": "ComplexBench"}


def _contains_any(table: np.ndarray, values: np.ndarray) -> bool:
    """Whether any of ``values`` is in ``table`` (sorted, unique): binary search, no re-sorting."""
    at = np.minimum(np.searchsorted(table, values), table.size - 1)
    return bool((table[at] == values).any())


@dataclass
class EvalIndex:
    n: int
    exact: dict[str, str] = field(default_factory=dict)  # digest -> eval set
    ngrams: dict[str, np.ndarray] = field(default_factory=dict)  # eval set -> sorted unique hashes
    sources: dict[str, list[str]] = field(default_factory=dict)  # eval set -> files (name + sha256)
    skipped: list[str] = field(default_factory=list)

    def check(self, text: str) -> str | None:
        """Why ``text`` counts as contaminated ("exact TRACE prompt", "13-gram overlap with CFBench"), or None."""
        where = self.exact.get(_digest(text))
        if where is not None:
            return f"exact {_LABELS[where]} prompt"
        grams = ngram_hashes(text, self.n)
        if grams.size:
            for name, table in self.ngrams.items():
                if table.size and _contains_any(table, grams):
                    return f"{self.n}-gram overlap with {_LABELS[name]}"
        return None

    def summary(self) -> dict[str, object]:
        return {
            "n": self.n,
            "sets": {k: {"files": v, "ngrams": int(self.ngrams[k].size)} for k, v in self.sources.items()},
            "skipped": list(self.skipped),
        }


def _cache_file(name: str, files: list[Path], n: int) -> Path:
    from iopo_eval.paths import cache_dir

    key = hashlib.sha256(f"{name}:{n}:{[sha256_of(p) for p in files]}".encode()).hexdigest()[:24]
    return cache_dir() / "decontam" / f"{name}-{key}.npy"


def build_index(n: int = DEFAULT_N, skip: Iterable[str] = ()) -> EvalIndex:
    """The index for ``n``-grams without the ``skip``ped sets; built once per process."""
    return _build_index(n, frozenset(skip))


@functools.lru_cache(maxsize=4)
def _build_index(n: int, skip: frozenset[str]) -> EvalIndex:
    unknown = sorted(skip - set(EVAL_SETS))
    if unknown:
        raise BuildError(
            f"--skip-decontamination: unknown evaluation set {unknown[0]!r} (known: {', '.join(EVAL_SETS)})"
        )
    if n < 4:
        raise BuildError(f"--ngram must be at least 4, got {n}")
    index = EvalIndex(n=n, skipped=sorted(skip))
    for name in EVAL_SETS:
        if name in skip:
            continue
        try:
            files, ngram_texts, exact_texts = _LOADERS[name]()
        except DataError as exc:
            raise BuildError(
                f"decontamination needs the {_LABELS[name]} evaluation prompts, which are not available: {exc} "
                f"(or pass --skip-decontamination {name} to build without that check; the report records it)"
            ) from exc
        for text in exact_texts:
            index.exact.setdefault(_digest(text), name)
        cached = _cache_file(name, files, n)
        if cached.is_file():
            table = np.load(cached)
        else:
            parts = [ngram_hashes(t, n) for t in ngram_texts]
            table = np.unique(np.concatenate(parts)) if parts else np.empty(0, dtype=np.uint64)
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(".tmp.npy")
            np.save(tmp, table)
            tmp.replace(cached)
        index.ngrams[name] = table
        index.sources[name] = [f"{p.name} sha256:{sha256_of(p)[:12]}" for p in files]
    return index
