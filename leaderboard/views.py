"""What the templates show: plain records built from run results and the reported table.

Templates only lay these out; every number is formatted here so the index, the run pages and the
tests agree on what a cell says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from iopo_eval.benchmarks import BENCHMARKS
from iopo_eval.leaderboard.charts import Chart, bar_chart
from iopo_eval.leaderboard.columns import Column, benchmark_order, title_of
from iopo_eval.leaderboard.reported import ReportedTable
from iopo_eval.leaderboard.runs import LoadedRun
from iopo_eval.results import BenchmarkResult, Metric


def _finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


@dataclass
class Cell:
    value: float | None
    text: str
    ci: str = ""  # "[lo, hi]" for measured values
    n: int | None = None
    title: str = ""


@dataclass
class MainRow:
    row_id: str
    kind: str  # "measured" | "reported"
    label: str
    sublabel: str
    href: str | None
    cells: list[Cell]
    smoke: bool = False
    judge: str = ""
    judge_title: str = ""
    # Judged benchmarks whose judge is not the paper's (another model, prompt or sampling): their numbers
    # are not comparable with the reported rows.
    not_comparable: str = ""
    # Each judged benchmark's protocol (judge prompt, failure counting), e.g. "TRACE: upstream prompt, ...".
    protocol: str = ""
    versions: str = ""
    versions_title: str = ""
    failures: int | None = None
    failures_title: str = ""
    mean_chars: float | None = None
    cost_usd: float | None = None
    cost_title: str = ""
    created_at: str = ""
    note: str = ""


def metric_cell(m: Metric | None) -> Cell:
    if m is None or not _finite(m.value):
        return Cell(None, "–", title="not measured in this run")
    ci = f"[{m.ci_low:.1f}, {m.ci_high:.1f}]" if _finite(m.ci_low) and _finite(m.ci_high) else ""
    return Cell(
        round(m.value, 4), f"{m.value:.1f}", ci, m.n, f"{m.label}: {m.value:.2f} {ci} n={m.n}".strip()
    )


def judge_summary(benchmarks: list[BenchmarkResult]) -> tuple[str, str, list[str]]:
    """Short text naming the model(s) that judged and their endpoint hosts, a full tooltip (config,
    prompt version, identity), and the judged benchmarks whose judge is not the paper's own or whose
    failed judgements were not counted the paper's way (CFBench's strict counting)."""
    seen: dict[str, str] = {}
    not_paper: list[str] = []
    for b in benchmarks:
        if not b.judge:
            continue
        model = str(b.judge.get("model") or b.judge.get("name") or "judge")
        host = str(b.judge.get("endpoint_host") or _host(b.judge.get("endpoint")) or "")
        short = f"{model} @ {host}" if host else model
        ident = str(b.judge.get("identity_hash") or b.judge.get("config_sha256") or "")[:12]
        detail = ", ".join(
            x
            for x in (
                f"config {b.judge.get('name')}" if b.judge.get("name") else "",
                f"prompt {b.judge.get('prompt_version')}" if b.judge.get("prompt_version") else "",
                f"identity {ident}" if ident else "",
            )
            if x
        )
        seen.setdefault(short, f"{short} ({detail})" if detail else short)
        # The paper's judge, and failed judgements counted as the paper's numbers were counted.
        if not b.judge.get("paper_comparable") or b.protocol.get("counting_as_paper") is False:
            not_paper.append(b.benchmark)
    if not seen:
        return "rules only", "no LLM judge: rule-verified benchmarks", []
    return " + ".join(seen), "; ".join(seen.values()), not_paper


def protocol_summary(benchmarks: list[BenchmarkResult]) -> str:
    """Each judged benchmark's protocol name (``protocol.name``), for the Judge column's tooltip and the
    CSV; results written before protocols were named show their judge's prompt version instead."""
    parts = []
    for b in benchmarks:
        if not b.judge:
            continue
        name = b.protocol.get("name") or f"prompt {b.judge.get('prompt_version') or 'unknown'}"
        parts.append(f"{title_of(b.benchmark)}: {name}")
    return "; ".join(parts)


def _host(endpoint: object) -> str:
    from urllib.parse import urlsplit

    if not isinstance(endpoint, str) or not endpoint:
        return ""
    parts = urlsplit(endpoint)
    return str(parts.hostname or "") + (f":{parts.port}" if parts.port else "")


def measured_row(run: LoadedRun, columns: tuple[Column, ...]) -> MainRow:
    res = run.results
    cells = []
    for col in columns:
        bench = res.benchmarks.get(col.benchmark)
        cells.append(metric_cell(bench.metrics.get(col.metric) if bench else None))
    benches = list(res.benchmarks.values())
    judge, judge_title, not_paper = judge_summary(benches)
    protocol = protocol_summary(benches)
    versions = [f"{t} v{v}" for b in benches for t, v in sorted(b.tasks.items())]
    fail_detail = [f"{b.benchmark}: {r} {n}" for b in benches for r, n in sorted(b.failures.items())]
    items = sum(b.n_items for b in benches)
    # Mean response length over all items, weighting each benchmark by its item count.
    sized = [
        (b.mean_response_chars, b.n_items)
        for b in benches
        if b.mean_response_chars is not None and _finite(b.mean_response_chars)
    ]
    total = sum(n for _, n in sized)
    mean_chars = sum(c * n for c, n in sized) / total if total else None
    usd = sum(b.cost.usd for b in benches)
    calls = sum(b.cost.calls for b in benches)
    hits = sum(b.cost.cache_hits for b in benches)
    model = res.model
    sub = " ".join(str(x) for x in (model.get("backend", ""), model.get("revision", "")) if x)
    return MainRow(
        row_id=f"run-{run.slug}",
        kind="measured",
        label=run.name,
        sublabel=f"{res.run_id}" + (f" · {sub}" if sub else ""),
        href=f"runs/{run.slug}.html",
        cells=cells,
        smoke=res.smoke_test,
        judge=judge,
        judge_title=judge_title + (f" · protocol: {protocol}" if protocol else ""),
        not_comparable=", ".join(title_of(b) for b in not_paper),
        protocol=protocol,
        versions=f"{len(versions)} tasks" if len(versions) > 2 else ", ".join(versions),
        versions_title="; ".join(versions),
        failures=sum(b.n_failed for b in benches),
        failures_title=(f"{sum(b.n_failed for b in benches)} of {items} items: " + "; ".join(fail_detail))
        if fail_detail
        else f"no failures in {items} items",
        mean_chars=mean_chars,
        cost_usd=usd,
        cost_title=f"{calls} paid judge calls, {hits} cache hits",
        created_at=res.created_at[:10],
    )


def reported_rows(table: ReportedTable, columns: tuple[Column, ...]) -> list[MainRow]:
    rows = []
    for i, r in enumerate(table.rows):
        cells = [
            Cell(v, f"{v:.1f}", title=f"reported in the paper ({r.table})")
            if v is not None
            else Cell(None, "–", title=f"not reported in the paper's {r.table or 'table'}")
            for v in (r.values.get(c.key) for c in columns)
        ]
        rows.append(
            MainRow(
                row_id=f"reported-{i}",
                kind="reported",
                label=r.label,
                sublabel=r.table,
                href=None,
                cells=cells,
                note=r.note,
            )
        )
    return rows


# ---------------------------------------------------------------- run pages


@dataclass
class BenchmarkSection:
    name: str
    title: str
    headline: list[tuple[str, Cell]]
    other: list[tuple[str, Cell]]
    charts: list[Chart]
    facts: list[tuple[str, str]]
    failures: list[tuple[str, int]]
    smoke: bool
    items_script: str  # relative URL of the items JS file, "" when there are no items
    n_items: int


@dataclass
class RunPage:
    slug: str
    title: str
    run_id: str
    created_at: str
    command: str
    model: list[tuple[str, str]]
    smoke: bool
    sections: list[BenchmarkSection] = field(default_factory=list)


def _label(name: str, m: Metric, prefixes: tuple[str, ...]) -> str:
    if len(prefixes) > 1:  # e.g. easy/csr -> "easy CSR"
        head, _, tail = name.partition("/")
        return f"{head} {tail.upper() if len(tail) <= 4 else tail}"
    return m.label or name.split("/", 1)[-1]


def benchmark_charts(bench: BenchmarkResult) -> list[Chart]:
    names = [n for n in bench.metrics if "/" in n]
    # The benchmark's own chart groups (registry); breakdown prefixes it does not list get a chart each.
    known = BENCHMARKS.get(bench.benchmark)
    groups = [(g.title, g.prefixes, g.by_value) for g in (known.charts if known is not None else ())]
    covered = {p for _, prefixes, _ in groups for p in prefixes}
    for n in names:
        prefix = n.split("/", 1)[0] + "/"
        if prefix not in covered:
            groups.append((f"By {prefix[:-1].replace('_', ' ')}", (prefix,), True))
            covered.add(prefix)
    charts = []
    for title, prefixes, by_value in groups:
        entries = [
            (_label(n, bench.metrics[n], prefixes), bench.metrics[n]) for n in names if n.startswith(prefixes)
        ]
        chart = bar_chart(title, entries, sort_by_value=by_value and len(entries) > 8)
        if chart is not None:
            charts.append(chart)
    return charts


def _fmt_protocol(value: Any) -> str:
    text = str(value)
    return text[:16] + "…" if len(text) > 20 and all(c in "0123456789abcdef" for c in text) else text


def benchmark_section(bench: BenchmarkResult, items_script: str) -> BenchmarkSection:
    headline = [
        (bench.metrics[n].label or n, metric_cell(bench.metrics[n]))
        for n in bench.headline
        if n in bench.metrics
    ]
    other = [
        (m.label or n, metric_cell(m))
        for n, m in bench.metrics.items()
        if "/" not in n and n not in bench.headline
    ]
    facts: list[tuple[str, str]] = [
        ("protocol", str(bench.protocol.get("name") or "not named (written before protocols were named)")),
        ("items", f"{bench.n_scored} scored of {bench.n_items}"),
        ("tasks", ", ".join(f"{t} v{v}" for t, v in sorted(bench.tasks.items())) or "–"),
    ]
    if bench.judge:
        facts.append(("judge", "; ".join(f"{k}={_fmt_protocol(v)}" for k, v in bench.judge.items())))
    facts.extend(
        (f"protocol {k}", _fmt_protocol(v)) for k, v in sorted(bench.protocol.items()) if k != "name"
    )
    if _finite(bench.mean_response_chars):
        facts.append(("mean response length", f"{bench.mean_response_chars:.0f} characters"))
    c = bench.cost
    facts.append(
        (
            "judge cost",
            f"${c.usd:.2f} · {c.calls} calls · {c.cache_hits} cache hits · "
            f"{c.prompt_tokens + c.completion_tokens} tokens",
        )
    )
    return BenchmarkSection(
        name=bench.benchmark,
        title=title_of(bench.benchmark),
        headline=headline,
        other=other,
        charts=benchmark_charts(bench),
        facts=facts,
        failures=sorted(bench.failures.items(), key=lambda kv: -kv[1]),
        smoke=bench.smoke_test,
        items_script=items_script,
        n_items=bench.n_items,
    )


def run_page(run: LoadedRun, items_scripts: dict[str, str]) -> RunPage:
    res = run.results
    model = [(k, v if isinstance(v, str) else repr(v)) for k, v in res.model.items()]
    page = RunPage(
        slug=run.slug,
        title=run.name,
        run_id=res.run_id,
        created_at=res.created_at,
        command=res.command,
        model=model,
        smoke=res.smoke_test,
    )
    order = benchmark_order()
    for name in sorted(res.benchmarks, key=lambda b: (order.get(b, 99), b)):
        page.sections.append(benchmark_section(res.benchmarks[name], items_scripts.get(name, "")))
    return page
