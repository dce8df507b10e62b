"""The run-results format: one results JSON per run plus one per-item JSONL per benchmark.

Everything downstream (leaderboard, gate, trainer reports) reads only this. See
docs/results-format.md for the field-by-field contract.

An item's ``values`` maps a metric name to the item's contribution: a number (averaged over items)
or ``[num, den]`` (summed, then divided: micro-averages such as per-constraint pass rates). A metric
absent from an item means the item does not count toward it (not in that subset, or its judgement
failed: failures are counted in ``failures``, never turned into a score).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from iopo_eval import __version__
from iopo_eval.stats import DEFAULT_BOOTSTRAP, as_pair, bootstrap_ci, ratio

SCHEMA_VERSION = 1
RESULTS_NAME = "results.json"


# An item's status: scored; its judgement failed after the retries; not asked (budget cap, dry run);
# or an error of the item itself.
ItemStatus = Literal["ok", "judge_failed", "not_judged", "error"]


class ResultsError(Exception):
    """A results file or items file is missing, truncated or of an unknown schema."""


@dataclass
class ItemRecord:
    benchmark: str
    task: str
    item_id: str
    status: ItemStatus
    values: dict[str, float | list[float]] = field(default_factory=dict)
    groups: dict[str, Any] = field(default_factory=dict)  # breakdown keys, for browsing
    response: str = ""
    judge: dict[str, Any] | None = None  # raw text, parsed scores, reasons, usage, cost, error
    extra: dict[str, Any] = field(default_factory=dict)  # benchmark-specific detail

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ItemRecord:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass
class MetricSpec:
    """How a metric is shown: label, scale (100 for rates in percent), and whether higher is better."""

    name: str
    label: str
    scale: float = 100.0
    higher_is_better: bool = True
    headline: bool = False


@dataclass
class Metric:
    value: float
    ci_low: float
    ci_high: float
    n: int  # items contributing
    label: str
    scale: float = 100.0
    higher_is_better: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Metric:
        """The inverse of ``to_json``: a null (an interval that was not computed) reads back as NaN."""
        fields: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in obj.items()}
        return cls(**fields)


@dataclass
class Cost:
    calls: int = 0  # paid judge calls made by this run
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float = 0.0

    def add(self, other: Cost) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class BenchmarkResult:
    benchmark: str
    tasks: dict[str, Any]  # task name -> metadata.version
    protocol: dict[str, Any]  # scoring version, data sha256, judge config hash, prompt version, ...
    metrics: dict[str, Metric]
    headline: list[str]
    n_items: int
    n_scored: int
    failures: dict[str, int]  # reason -> count
    cost: Cost
    judge: dict[str, Any] | None  # public judge description (never a key)
    smoke_test: bool
    items_file: str
    mean_response_chars: float | None = None
    # Input rows that are not items of the benchmark and were left out (reason -> count), e.g. a responses
    # file's prompt in an older wording; the items themselves are counted in n_items / failures.
    skipped_inputs: dict[str, int] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return sum(self.failures.values())

    @property
    def failure_text(self) -> str:
        """The failures as one line, e.g. ``parse_error 2, timeout 1``."""
        return ", ".join(f"{reason} {n}" for reason, n in sorted(self.failures.items()))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["metrics"] = {k: m.to_json() for k, m in self.metrics.items()}
        out["n_failed"] = self.n_failed
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> BenchmarkResult:
        obj = dict(obj)
        obj.pop("n_failed", None)
        obj["metrics"] = {k: Metric.from_json(m) for k, m in obj["metrics"].items()}
        obj["cost"] = Cost(**obj.get("cost", {}))
        return cls(**obj)


@dataclass
class RunResults:
    run_id: str
    created_at: str
    model: dict[str, Any]  # backend, model_args, name, revision, chat_template_sha256, generation
    benchmarks: dict[str, BenchmarkResult]
    command: str = ""
    schema_version: int = SCHEMA_VERSION
    iopo_eval_version: str = __version__

    @property
    def smoke_test(self) -> bool:
        return any(b.smoke_test for b in self.benchmarks.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "iopo_eval_version": self.iopo_eval_version,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "command": self.command,
            "model": self.model,
            "smoke_test": self.smoke_test,
            "benchmarks": {k: b.to_json() for k, b in self.benchmarks.items()},
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RunResults:
        if obj.get("schema_version") != SCHEMA_VERSION:
            raise ResultsError(f"unsupported results schema_version {obj.get('schema_version')!r}")
        return cls(
            run_id=obj["run_id"],
            created_at=obj["created_at"],
            command=obj.get("command", ""),
            model=obj["model"],
            benchmarks={k: BenchmarkResult.from_json(b) for k, b in obj["benchmarks"].items()},
            schema_version=obj["schema_version"],
            iopo_eval_version=obj.get("iopo_eval_version", ""),
        )


def new_run_id() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------- aggregation


def metric_arrays(items: Iterable[ItemRecord], name: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    ids, nums, dens = [], [], []
    for item in items:
        if name in item.values:
            num, den = as_pair(item.values[name])
            ids.append(item.item_id)
            nums.append(num)
            dens.append(den)
    return ids, np.asarray(nums, dtype=float), np.asarray(dens, dtype=float)


def compute_metrics(
    items: list[ItemRecord],
    specs: Iterable[MetricSpec],
    dynamic_prefixes: Iterable[str] = (),
    bootstrap_iters: int = DEFAULT_BOOTSTRAP,
) -> dict[str, Metric]:
    """Aggregate every metric named in specs, plus every item value whose name starts with a prefix
    in dynamic_prefixes (breakdowns such as ``dimension/Theme``), with a bootstrap interval each."""
    wanted: dict[str, MetricSpec] = {s.name: s for s in specs}
    prefixes = tuple(dynamic_prefixes)
    if prefixes:
        for item in items:
            for name in item.values:
                if name not in wanted and name.startswith(prefixes):
                    wanted[name] = MetricSpec(name=name, label=name.split("/", 1)[-1])
    out: dict[str, Metric] = {}
    for name in sorted(wanted, key=lambda n: (n.count("/"), n)):
        spec = wanted[name]
        _, nums, dens = metric_arrays(items, name)
        value = ratio(nums, dens)
        lo, hi = bootstrap_ci(nums, dens, iters=bootstrap_iters)
        out[name] = Metric(
            value=value * spec.scale,
            ci_low=lo * spec.scale,
            ci_high=hi * spec.scale,
            n=len(nums),
            label=spec.label,
            scale=spec.scale,
            higher_is_better=spec.higher_is_better,
        )
    return out


def cost_of(outcomes: Iterable[dict[str, Any]]) -> Cost:
    """What a run paid for its judgements: the outcome dicts of the judge engine.

    Cache hits cost this run nothing; judgements made elsewhere (an upstream judged file) carry no
    call accounting (no ``cache_key``) and are not counted.
    """
    cost = Cost()
    for o in outcomes:
        if not o or "cache_key" not in o:
            continue
        if o.get("cached"):
            cost.cache_hits += 1
            continue
        cost.calls += int(o.get("attempts", 0))
        usage = o.get("usage") or {}
        cost.prompt_tokens += int(usage.get("prompt_tokens", 0))
        cost.completion_tokens += int(usage.get("completion_tokens", 0))
        cost.usd += float(o.get("cost_usd", 0.0))
    return cost


def mean_response_chars(items: Iterable[ItemRecord]) -> float | None:
    lengths = [len(item.response) for item in items]
    return sum(lengths) / len(lengths) if lengths else None


def count_failures(items: Iterable[ItemRecord]) -> dict[str, int]:
    """Failures by reason: the judge's error kind for judge failures, else the item's status."""
    counter: Counter[str] = Counter()
    for item in items:
        if item.status == "ok":
            continue
        reason = (item.judge or {}).get("error_kind") or item.status
        counter[reason] += 1
    return dict(counter)


# ---------------------------------------------------------------- files


def write_items(path: Path, items: Iterable[ItemRecord]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for item in items:
            fh.write(json_line(item.to_json()))
    os.replace(tmp, path)


def json_line(obj: Any) -> str:
    """One JSONL line, readable UTF-8. Text with lone surrogates (bytes that were not valid UTF-8,
    decoded with ``errors="surrogateescape"``) cannot be written as UTF-8: that line escapes its
    non-ASCII characters instead, which round-trips exactly through ``json.loads``."""
    line = json.dumps(obj, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(obj, ensure_ascii=True)
    return line + "\n"


def read_items(path: Path) -> list[ItemRecord]:
    if not path.is_file():
        raise ResultsError(f"{path}: items file not found")
    items = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                items.append(ItemRecord.from_json(json.loads(line)))
            except (json.JSONDecodeError, TypeError) as exc:
                raise ResultsError(
                    f"{path} line {lineno}: not a valid item record ({exc}); the file may be truncated"
                ) from exc
    return items


def write_results(run_dir: Path, results: RunResults) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RESULTS_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_single_run(
    out_dir: Path, *, command: str, model: dict[str, Any], result: BenchmarkResult, records: list[ItemRecord]
) -> RunResults:
    """Write a one-benchmark run (a file scored outside a normal run: responses, a judged file)."""
    run = RunResults(
        run_id=new_run_id(),
        created_at=now_iso(),
        command=command,
        model=model,
        benchmarks={result.benchmark: result},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_items(out_dir / result.items_file, records)
    write_results(out_dir, run)
    return run


def load_results(path: str | os.PathLike[str]) -> tuple[RunResults, Path]:
    """Load a run from its results.json or its folder; returns the results and the run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_NAME
    if not p.is_file():
        raise ResultsError(f"{p}: results file not found")
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{p}: not valid JSON ({exc}); the file may be truncated") from exc
    try:
        return RunResults.from_json(obj), p.parent
    except (KeyError, TypeError) as exc:
        raise ResultsError(f"{p}: malformed results ({exc!r})") from exc


def iter_benchmark_items(run_dir: Path, result: BenchmarkResult) -> Iterator[ItemRecord]:
    yield from read_items(run_dir / result.items_file)
