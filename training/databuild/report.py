"""The report of a build (``report.json`` and ``report.html``): items in and out of every step with drop
reasons, the constraints-per-instruction histogram against the target and the paper's training set,
category and dimension shares against TRACE's evaluation set, judge pass rates, calls, tokens and cost.
The charts are the leaderboard's (``iopo_eval.leaderboard.charts``)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from iopo_eval.data.store import DataError
from iopo_eval.leaderboard.charts import bar_chart, to_svg
from iopo_eval.results import Metric
from iopo_eval.training.databuild.distribution import PAPER_TRAIN, CountDistribution
from iopo_eval.training.databuild.items import BuildItem
from iopo_eval.training.databuild.outputs import reached
from iopo_eval.training.databuild.state import write_json
from iopo_eval.training.databuild.steps import STEPS
from iopo_eval.training.databuild.taxonomy import Taxonomy

COST_KEYS = ("requests", "calls", "cache_hits", "prompt_tokens", "completion_tokens", "usd")


def _shares(counter: Counter[Any]) -> dict[str, float]:
    total = sum(counter.values())
    return {
        str(k): (v / total if total else 0.0) for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))
    }


def phase_table(items: list[BuildItem], trails: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for step in STEPS:
        entries = [trails[i.id][step.name] for i in items if step.name in trails.get(i.id, {})]
        status = Counter(e["status"] for e in entries)
        stats: Counter[str] = Counter()
        for e in entries:
            stats.update(e.get("stats", {}))
        rows.append(
            {
                "step": step.name,
                "phase": step.phase,
                "role": step.role,
                "in": len(entries),
                "kept": status["kept"],
                "dropped": dict(
                    Counter(e["reason"] for e in entries if e["status"] == "dropped").most_common()
                ),
                "failed": dict(
                    Counter(e["reason"] for e in entries if e["status"] == "failed").most_common()
                ),
                "pending": status["pending"],
                "stats": dict(sorted(stats.items())),
            }
        )
    return rows


def trace_eval_shares(taxonomy: Taxonomy) -> tuple[dict[str, float], dict[str, float], str]:
    """Category and dimension shares of TRACE's evaluation constraints: from the file when it is available
    (unknown labels count as Other), else from the taxonomy's ``eval_count``."""
    by_label = taxonomy.by_label()
    dims: Counter[str] = Counter()
    source = "TRACE evaluation file"
    try:
        from iopo_eval.data.trace import load_trace

        for item in load_trace():
            for label in item.levels2:
                dim = by_label.get(label.strip())
                dims[dim.id if dim else "other"] += 1
    except DataError:  # no mirror: the counts recorded in the taxonomy
        source = "taxonomy eval_count"
        dims = Counter({d.id: d.eval_count for d in taxonomy.dimensions.values() if d.eval_count})
    cats: Counter[str] = Counter()
    for dim_id, n in dims.items():
        cats[taxonomy.dimensions[dim_id].category if dim_id in taxonomy.dimensions else "other"] += n
    return _shares(cats), _shares(dims), source


def judge_rates(
    items: list[BuildItem], trails: dict[str, dict[str, Any]], pass_score: float
) -> dict[str, Any]:
    def rates(groups: list[list[dict[str, Any]]]) -> dict[str, Any]:
        judged = [c for group in groups for c in group if c.get("scores") is not None]
        scores = [s for c in judged for s in c["scores"]]
        passing = sum(all(s >= pass_score for s in c["scores"]) for c in judged)
        return {
            "responses": len(judged),
            "followed_every_constraint": passing,
            "rate": passing / len(judged) if judged else None,
            "constraint_pass_rate": sum(s >= pass_score for s in scores) / len(scores) if scores else None,
            "mean_score": sum(scores) / len(scores) if scores else None,
        }

    def cross(step: str, follows_reason: str) -> dict[str, Any]:
        entries = [
            trails[i.id][step]
            for i in items
            if trails.get(i.id, {}).get(step, {}).get("status") in ("kept", "dropped")
        ]
        follows = sum(e.get("reason") == follows_reason for e in entries)
        return {
            "judged": len(entries),
            "also_follows": follows,
            "rate": follows / len(entries) if entries else None,
        }

    return {
        "x1_responses": rates([i.candidates for i in items]),
        "x2_responses": rates([i.candidates2 for i in items]),
        "y1_on_x2": cross("cross_y1", "preference: y1 also follows x2"),
        "y2_on_x1": cross("cross_y2", "preference: y2 also follows x1"),
    }


def cost_table(runs: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, dict[str, float]] = {s.name: dict.fromkeys(COST_KEYS, 0) for s in STEPS}
    for run in runs:
        for name, ledger in run["steps"].items():
            for key in COST_KEYS:
                total.setdefault(name, dict.fromkeys(COST_KEYS, 0))[key] += ledger.get(key, 0)
    grand = {k: sum(v[k] for v in total.values()) for k in COST_KEYS}
    last = runs[-1]["steps"] if runs else {}
    return {
        "all_runs": {"by_step": total, "total": grand, "runs": len(runs)},
        "this_run": {
            "by_step": {k: {key: v.get(key, 0) for key in (*COST_KEYS, "failures")} for k, v in last.items()},
            "total": {k: sum(v.get(k, 0) for v in last.values()) for k in COST_KEYS},
            "elapsed_s": runs[-1]["elapsed_s"] if runs else 0.0,
        },
    }


def build_report(
    *,
    manifest: dict[str, Any],
    items: list[BuildItem],
    trails: dict[str, dict[str, Any]],
    runs: list[dict[str, Any]],
    taxonomy: Taxonomy,
    distribution: CountDistribution,
    outputs: dict[str, int],
    seeds: dict[str, int],
    decontamination: dict[str, Any],
) -> dict[str, Any]:
    built = [i for i in items if reached(trails.get(i.id, {}), "decontaminate")]
    counts = Counter(len(i.constraints or []) for i in built)
    dims = Counter(c["dimension"] for i in built for c in i.constraints or [])
    cats = Counter(taxonomy.dimensions[d].category for d in dims.elements())
    eval_cats, eval_dims, eval_source = trace_eval_shares(taxonomy)
    paper = CountDistribution("paper", {k: float(v) for k, v in PAPER_TRAIN.items()})
    phases = phase_table(items, trails)
    cost = cost_table(runs)
    calls = cost["all_runs"]["total"]["calls"]
    smoke = bool(manifest["generator"].get("smoke_test") or manifest["judge"].get("smoke_test"))
    decon_dropped: Counter[str] = Counter()
    for row in phases:
        decon_dropped.update({k: v for k, v in row["dropped"].items() if k.startswith("decontamination")})
    return {
        "smoke_test": smoke,
        "manifest": manifest,
        "seeds": seeds,
        "outputs": outputs,
        "phases": phases,
        "constraints_per_instruction": {
            "built": {str(k): counts[k] for k in sorted(counts)},
            "built_mean": (sum(k * v for k, v in counts.items()) / sum(counts.values())) if counts else None,
            "target": {str(k): v for k, v in distribution.shares.items()},
            "target_mean": distribution.mean,
            "paper": {str(k): v for k, v in paper.shares.items()},
            "paper_mean": paper.mean,
        },
        "categories": {"built": _shares(cats), "trace_eval": eval_cats, "trace_eval_source": eval_source},
        "dimensions": {"built": _shares(dims), "trace_eval": eval_dims},
        "judge": judge_rates(items, trails, manifest["pass_score"]),
        "decontamination": {**decontamination, "dropped": dict(decon_dropped)},
        "cost": cost,
        "calls_per_quadruple": calls / outputs["quadruples"] if outputs["quadruples"] else None,
    }


# --- HTML ---------------------------------------------------------------------------------------------
_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #1d2939; margin: 24px auto; max-width: 1040px; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.smoke { background: #fff4e5; border: 1px solid #f5a524; padding: 8px 12px; border-radius: 6px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border-bottom: 1px solid #eaecf0; padding: 4px 10px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .muted { color: #667085; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; } figure { margin: 0; } figcaption { font-weight: 600; margin-bottom: 4px; }
svg .grid { stroke: #eaecf0; stroke-width: 1; } svg .tick { fill: #98a2b3; font-size: 10px; }
svg .label { fill: #344054; font-size: 12px; } svg .value { fill: #475467; font-size: 11px; }
svg .bar rect { fill: #7c9cf5; } svg .ci { stroke: #1d2939; stroke-width: 1.2; }
"""


def _metric(value: float, n: int, label: str, scale: float = 100.0) -> Metric:
    return Metric(value=value, ci_low=math.nan, ci_high=math.nan, n=n, label=label, scale=scale)


def _chart(title: str, entries: list[tuple[str, Metric]], subtitle: str = "") -> Markup:
    chart = bar_chart(title, entries, subtitle=subtitle)
    if chart is None:
        return Markup('<p class="muted">(nothing to show yet)</p>')
    return Markup("<figure><figcaption>{}</figcaption>{}</figure>").format(title, to_svg(chart))


def _paired(label_a: str, a: dict[str, float], label_b: str, b: dict[str, float], n_a: int, n_b: int,
            names: dict[str, str] | None = None) -> list[tuple[str, Metric]]:  # fmt: skip
    keys = sorted(set(a) | set(b), key=lambda k: (int(k) if k.isdigit() else 0, k))
    out = []
    for key in keys:
        name = (names or {}).get(key, key)
        out.append((f"{name} · {label_a}", _metric(100 * a.get(key, 0.0), n_a, name)))
        out.append((f"{name} · {label_b}", _metric(100 * b.get(key, 0.0), n_b, name)))
    return out


def _per_quad(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "— (no quadruple)"


def render_html(report: dict[str, Any], taxonomy: Taxonomy) -> str:
    e = escape
    parts: list[str] = []
    m = report["manifest"]
    parts.append(f"<h1>Build report: {e(m['generator']['model'])} → TRACE-style data</h1>")
    if report["smoke_test"]:
        parts.append(
            '<p class="smoke"><b>SMOKE TEST.</b> The generator or the judge is the embedded SmolLM2-135M model: '
            "the pipeline ran end to end, but the data says nothing about instruction following.</p>"
        )
    o, s = report["outputs"], report["seeds"]
    parts.append(
        f"<p>{s['in_build']} seeds in this build ({s['rows']} rows read, {s['duplicates']} duplicates, "
        f"{s['other_shards']} in other shards) → {o['instructions']} instructions, {o['sft']} SFT rows, "
        f"{o['dpo_pairs']} DPO pairs, <b>{o['quadruples']} IOPO quadruples</b>. Generator {e(m['generator']['model'])}, "
        f"judge {e(m['judge']['model'])} ({e(m['judge']['name'])}); pass rule: every constraint ≥ {m['pass_score']:g} "
        f"(the paper: 10); {m['candidates']} candidates per instruction.</p>"
    )
    phases = report["phases"]
    seeds_in = max((p["in"] for p in phases), default=0) or 1
    parts.append("<h2>Items per step</h2><div class='charts'>")
    parts.append(
        _chart(
            "Items kept after each step (% of the seeds)",
            [(p["step"], _metric(100 * p["kept"] / seeds_in, p["kept"], p["step"])) for p in phases],
        )
    )
    parts.append(
        "</div><table><tr><th>step</th><th>phase</th><th>in</th><th>kept</th><th>dropped (reason)</th><th>failed</th><th>pending</th></tr>"
    )
    for p in phases:
        dropped = "<br>".join(f"{n} × {e(r)}" for r, n in p["dropped"].items()) or "—"
        failed = "<br>".join(f"{n} × {e(r)}" for r, n in p["failed"].items()) or "—"
        parts.append(
            f"<tr><td>{e(p['step'])}</td><td>{e(p['phase'])}</td><td class='n'>{p['in']}</td><td class='n'>{p['kept']}</td>"
            f"<td>{dropped}</td><td>{failed}</td><td class='n'>{p['pending']}</td></tr>"
        )
    parts.append("</table>")
    c = report["constraints_per_instruction"]
    n_built = sum(c["built"].values())
    built_shares = {k: v / n_built for k, v in c["built"].items()} if n_built else {}
    mean = f"{c['built_mean']:.2f}" if c["built_mean"] is not None else "—"
    parts.append(
        f"<h2>Constraints per instruction</h2><p>Mean {mean} built, {c['target_mean']:.2f} target, "
        f"{c['paper_mean']:.2f} in the paper's training set (119,345 instructions).</p><div class='charts'>"
    )
    parts.append(
        _chart(
            "% of instructions, built vs the paper",
            _paired("built", built_shares, "paper", c["paper"], n_built, 119345),
        )
    )
    parts.append("</div>")
    cats, dims = report["categories"], report["dimensions"]
    cat_names = {k: v.en for k, v in taxonomy.categories.items()}
    dim_names = {k: v.en for k, v in taxonomy.dimensions.items()}
    n_cons = sum(c["built"][k] * int(k) for k in c["built"])
    parts.append(
        f"<h2>Categories and dimensions</h2><p class='muted'>Share of constraints; TRACE's from the {e(cats['trace_eval_source'])}.</p><div class='charts'>"
    )
    parts.append(
        _chart(
            "Categories (% of constraints)",
            _paired("built", cats["built"], "TRACE eval", cats["trace_eval"], n_cons, 5087, cat_names),
        )
    )
    parts.append(
        _chart(
            "Dimensions (% of constraints)",
            _paired("built", dims["built"], "TRACE eval", dims["trace_eval"], n_cons, 5087, dim_names),
        )
    )
    parts.append("</div>")
    j = report["judge"]
    bars = []
    for key, label in (("x1_responses", "responses to x1"), ("x2_responses", "responses to x2")):
        r = j[key]
        if r["rate"] is not None:
            bars.append((f"{label}: all constraints", _metric(100 * r["rate"], r["responses"], label)))
            bars.append(
                (f"{label}: per constraint", _metric(100 * r["constraint_pass_rate"], r["responses"], label))
            )
    for key, label in (("y1_on_x2", "y1 also follows x2"), ("y2_on_x1", "y2 also follows x1")):
        if j[key]["rate"] is not None:
            bars.append((label, _metric(100 * j[key]["rate"], j[key]["judged"], label)))
    parts.append("<h2>Judge pass rates</h2><div class='charts'>")
    parts.append(_chart("% followed (judge)", bars))
    parts.append("</div>")
    cost = report["cost"]
    parts.append(
        f"<h2>Calls, tokens and cost</h2><p>All runs ({cost['all_runs']['runs']}): {cost['all_runs']['total']['calls']:.0f} calls, "
        f"{cost['all_runs']['total']['cache_hits']:.0f} cache hits, ${cost['all_runs']['total']['usd']:.4f}; "
        f"calls per kept quadruple: {_per_quad(report['calls_per_quadruple'])}.</p>"
        "<table><tr><th>step</th><th>requests</th><th>calls</th><th>cache hits</th><th>prompt tokens</th><th>completion tokens</th><th>USD</th></tr>"
    )
    for name, row in cost["all_runs"]["by_step"].items():
        parts.append(
            f"<tr><td>{e(name)}</td>"
            + "".join(f"<td class='n'>{row[k]:.0f}</td>" for k in COST_KEYS[:-1])
            + f"<td class='n'>{row['usd']:.4f}</td></tr>"
        )
    parts.append("</table>")
    d = report["decontamination"]
    sets = ", ".join(f"{e(k)} ({v['ngrams']} {d['n']}-grams)" for k, v in d["sets"].items())
    dropped = "; ".join(f"{n} × {e(r)}" for r, n in d["dropped"].items()) or "none"
    skipped = f" Skipped: {e(', '.join(d['skipped']))}." if d["skipped"] else ""
    parts.append(f"<h2>Decontamination</h2><p>Checked against {sets}.{skipped} Dropped: {dropped}.</p>")
    parts.append(f"<h2>Settings</h2><pre>{e(json.dumps(m, ensure_ascii=False, indent=1))}</pre>")
    body = "\n".join(parts)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>iopo-eval build report</title>"
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def write_report(out: Path, report: dict[str, Any], taxonomy: Taxonomy) -> None:
    write_json(out / "report.json", report)
    tmp = out / "report.html.tmp"
    tmp.write_text(render_html(report, taxonomy), encoding="utf-8")
    tmp.replace(out / "report.html")
