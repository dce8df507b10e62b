"""The main table's columns: the paper's Table 3 layout, each column one (benchmark, metric)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    benchmark: str
    metric: str
    group: str  # header spanning the benchmark's columns
    label: str

    @property
    def key(self) -> str:
        return f"{self.benchmark}:{self.metric}"


# Table 3 of the IOPO paper: Trace IF-S, IF-M; IFEval S-Acc, L-Acc; CFBench CSR, ISR, PSR; ComplexBench.
MAIN_COLUMNS: tuple[Column, ...] = (
    Column("trace", "if_s", "Trace", "IF-S"),
    Column("trace", "if_m", "Trace", "IF-M"),
    Column("ifeval", "prompt_strict", "IFEval", "S-Acc"),
    Column("ifeval", "prompt_loose", "IFEval", "L-Acc"),
    Column("cfbench", "csr", "CFBench", "CSR"),
    Column("cfbench", "isr", "CFBench", "ISR"),
    Column("cfbench", "psr", "CFBench", "PSR"),
    Column("complexbench", "drfr", "ComplexBench", "DRFR"),
)
COLUMN_KEYS = tuple(c.key for c in MAIN_COLUMNS)

BENCHMARK_TITLES = {
    "trace": "TRACE",
    "ifeval": "IFEval",
    "cfbench": "CFBench",
    "complexbench": "ComplexBench",
}


def column_groups() -> list[tuple[str, int]]:
    """(group label, number of columns) in order, for the two-row table header."""
    groups: list[tuple[str, int]] = []
    for col in MAIN_COLUMNS:
        if groups and groups[-1][0] == col.group:
            groups[-1] = (col.group, groups[-1][1] + 1)
        else:
            groups.append((col.group, 1))
    return groups
