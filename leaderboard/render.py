"""Render the static leaderboard site: ``index.html``, one page per run, item data and assets.

The site opens from ``file://`` with no network: CSS and JS are local files, charts are inline SVG
drawn at build time, and item data travels in ``<script src>`` files (browsers refuse ``fetch`` on
``file://``). Every string that comes from results goes through jinja's autoescape; JSON inside
``<script>`` goes through ``tojson`` (which escapes ``<``, ``>``, ``&`` and quotes); item files are
JSON string literals parsed by the page, and the page puts their text into the DOM as text only.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jinja2

from iopo_eval import __version__
from iopo_eval.leaderboard.charts import to_svg
from iopo_eval.leaderboard.columns import column_groups, main_columns
from iopo_eval.leaderboard.reported import ReportedTable, load_reported
from iopo_eval.leaderboard.runs import LoadedRun, load_runs
from iopo_eval.leaderboard.table_csv import CSV_NAME, write_table_csv
from iopo_eval.leaderboard.views import MainRow, measured_row, reported_rows, run_page
from iopo_eval.results import load_results

ASSETS = ("style.css", "leaderboard.js", "items.js")


@dataclass
class SiteSummary:
    out_dir: Path
    n_runs: int
    n_reported: int
    pages: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def index(self) -> Path:
        return self.out_dir / "index.html"


def _package_dir(name: str) -> Path:
    return Path(str(resources.files("iopo_eval.leaderboard") / name))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_package_dir("templates"))),
        autoescape=True,  # every template is HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["svg"] = to_svg  # returns Markup with every text escaped
    env.filters["num"] = lambda v, digits=1: "–" if v is None else f"{v:,.{digits}f}"
    return env


ITEMS_HEAD = b"(window.IOPO_ITEMS = window.IOPO_ITEMS || {})[%s] = function () {/*\n"
ITEMS_TAIL = b"\n*/};\n"


def items_script_parts(benchmark: str, jsonl: bytes) -> list[bytes]:
    """A JS file that carries one benchmark's JSONL, byte for byte, inside a function's comment.

    The page reads it back with ``Function.prototype.toString`` (which returns the exact source).
    Item files are the bulk of a site, so this avoids decoding, parsing or escaping them: the only
    sequence that could end the comment early is ``*/``, and in valid JSON it can only occur inside
    a string, where ``*\\/`` means the same (``\\/`` is JSON's escape for ``/``). Nothing in the
    file can run as code; invalid UTF-8 reaches the page as U+FFFD.
    """
    if b"*/" in jsonl:
        jsonl = jsonl.replace(b"*/", b"*\\/")
    key = json.dumps(benchmark, ensure_ascii=True).encode()
    return [ITEMS_HEAD % key, jsonl, ITEMS_TAIL]


def _write_items(run: LoadedRun, out_dir: Path, warnings: list[str]) -> dict[str, str]:
    """Write each benchmark's item data beside the run page; returns benchmark -> URL from the page."""
    scripts: dict[str, str] = {}
    run_items_dir = out_dir / "runs" / run.slug
    for i, (name, bench) in enumerate(sorted(run.results.benchmarks.items())):
        src = run.run_dir / bench.items_file
        if not src.is_file():
            warnings.append(
                f"{run.results.run_id}: {name} items file {src} not found; its item table is empty"
            )
            continue
        run_items_dir.mkdir(parents=True, exist_ok=True)
        # Index-based names: benchmark names come from the results file and are not trusted as paths.
        target = run_items_dir / f"items-{i}.js"
        with target.open("wb") as fh:
            fh.writelines(items_script_parts(name, src.read_bytes()))
        scripts[name] = f"{run.slug}/{target.name}"
    return scripts


def _copy_assets(out_dir: Path) -> None:
    assets = out_dir / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    src = _package_dir("assets")
    for name in ASSETS:
        shutil.copyfile(src / name, assets / name)


def _initial_baseline(rows: list[MainRow], runs: list[LoadedRun], wanted: str | None) -> str:
    if not wanted:
        return ""
    as_path = Path(wanted)
    if as_path.exists():  # a run folder or results.json given as the baseline
        wanted = load_results(as_path)[0].run_id
    for run in runs:
        if wanted in (run.results.run_id, run.slug, run.name):
            return f"run-{run.slug}"
    for row in rows:
        if row.kind == "reported" and wanted.casefold() == row.label.casefold():
            return row.row_id
    raise ValueError(f"--baseline {wanted!r}: no run id, run name or reported row of that name")


def build_site(
    inputs: list[str],
    out_dir: str | Path,
    *,
    reported: ReportedTable | None = None,
    include_reported: bool = True,
    baseline: str | None = None,
    title: str = "iopo-eval leaderboard",
) -> SiteSummary:
    """Render every run in ``inputs`` (run folders, results.json paths or globs) into ``out_dir``."""
    out = Path(out_dir)
    runs = load_runs(inputs)
    table = reported if reported is not None else (load_reported() if include_reported else None)
    columns = main_columns()
    rows = [measured_row(r, columns) for r in runs]
    rep_rows = reported_rows(table, columns) if table is not None and include_reported else []
    all_rows = rows + rep_rows
    initial = _initial_baseline(all_rows, runs, baseline)

    out.mkdir(parents=True, exist_ok=True)
    (out / "runs").mkdir(exist_ok=True)
    _copy_assets(out)
    env = _environment()
    summary = SiteSummary(out, len(runs), len(rep_rows))
    common = {"site_title": title, "version": __version__}

    run_tpl = env.get_template("run.html")
    for run in runs:
        scripts = _write_items(run, out, summary.warnings)
        page = run_page(run, scripts)
        path = out / "runs" / f"{run.slug}.html"
        path.write_text(run_tpl.render(page=page, root="../", **common), encoding="utf-8")
        summary.pages.append(path)

    data = {
        "columns": [c.key for c in columns],
        "rows": [{"id": r.row_id, "label": r.label, "kind": r.kind} for r in all_rows],
        "baseline": initial,
    }
    index = env.get_template("index.html").render(
        rows=all_rows,
        columns=columns,
        groups=column_groups(columns),
        reported=table if include_reported else None,
        data=data,
        n_measured=len(rows),
        root="",
        **common,
    )
    summary.index.write_text(index, encoding="utf-8")
    write_table_csv(out / CSV_NAME, all_rows, columns)
    return summary
