"""The main table's columns, read from the benchmark registry: each registered benchmark's leaderboard
columns, in registry order (for the built-in benchmarks, the paper's Table 3 layout: Trace IF-S, IF-M;
IFEval S-Acc, L-Acc; CFBench CSR, ISR, PSR; ComplexBench DRFR)."""

from __future__ import annotations

from dataclasses import dataclass

from iopo_eval.benchmarks import BENCHMARKS


@dataclass(frozen=True)
class Column:
    benchmark: str
    metric: str
    group: str  # header spanning the benchmark's columns
    label: str

    @property
    def key(self) -> str:
        return f"{self.benchmark}:{self.metric}"


def main_columns() -> tuple[Column, ...]:
    return tuple(
        Column(bench.name, col.metric, bench.title, col.label)
        for bench in BENCHMARKS.values()
        for col in bench.columns
    )


def column_keys() -> tuple[str, ...]:
    return tuple(c.key for c in main_columns())


def title_of(benchmark: str) -> str:
    """A benchmark's display title (its name when this install does not know it)."""
    bench = BENCHMARKS.get(benchmark)
    return bench.title if bench is not None else benchmark


def benchmark_order() -> dict[str, int]:
    return {name: i for i, name in enumerate(BENCHMARKS)}


def column_groups(columns: tuple[Column, ...]) -> list[tuple[str, int]]:
    """(group label, number of columns) in order, for the two-row table header."""
    groups: list[tuple[str, int]] = []
    for col in columns:
        if groups and groups[-1][0] == col.group:
            groups[-1] = (col.group, groups[-1][1] + 1)
        else:
            groups.append((col.group, 1))
    return groups
