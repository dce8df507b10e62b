"""Horizontal bar charts with confidence whiskers, laid out and drawn as inline SVG in Python
(offline, no JS library). Every label is escaped on its way into the SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from markupsafe import Markup, escape

from iopo_eval.results import Metric

LABEL_W = 210  # px for bar labels
PLOT_W = 300  # px for the bars
VALUE_W = 96  # px for the value text
ROW_H = 20
TOP = 22  # tick labels
BOTTOM = 6
MAX_LABEL_CHARS = 32


@dataclass
class Bar:
    label: str  # shown, possibly shortened
    full_label: str  # in the tooltip
    value: float
    ci_low: float
    ci_high: float
    n: int
    y: float
    width: float
    ci_x1: float | None
    ci_x2: float | None
    text: str


@dataclass
class Chart:
    title: str
    subtitle: str
    unit: str
    bars: list[Bar] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)
    label_w: int = LABEL_W
    plot_w: int = PLOT_W
    value_w: int = VALUE_W
    row_h: int = ROW_H
    top: int = TOP

    @property
    def width(self) -> int:
        return self.label_w + self.plot_w + self.value_w

    @property
    def height(self) -> int:
        return self.top + len(self.bars) * self.row_h + BOTTOM

    @property
    def plot_bottom(self) -> int:
        return self.top + len(self.bars) * self.row_h


def _finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def _shorten(label: str) -> str:
    return label if len(label) <= MAX_LABEL_CHARS else label[: MAX_LABEL_CHARS - 1] + "…"


def bar_chart(
    title: str,
    entries: list[tuple[str, Metric]],
    *,
    subtitle: str = "",
    sort_by_value: bool = False,
) -> Chart | None:
    """One bar per (label, metric); the axis runs from 0 to the metrics' scale (100 for percentages)."""
    entries = [(lab, m) for lab, m in entries if _finite(m.value)]
    if not entries:
        return None
    if sort_by_value:
        entries.sort(key=lambda e: -e[1].value)
    top = max(max(m.scale for _, m in entries), max(m.value for _, m in entries))
    unit = "%" if top == 100 else ""
    chart = Chart(title=title, subtitle=subtitle, unit=unit)
    step = top / 4
    chart.ticks = [(chart.label_w + chart.plot_w * i / 4, f"{step * i:g}") for i in range(5)]
    for i, (label, m) in enumerate(entries):

        def x(v: float) -> float:
            return chart.label_w + chart.plot_w * min(max(v, 0.0), top) / top

        has_ci = _finite(m.ci_low) and _finite(m.ci_high)
        ci = f" [{m.ci_low:.1f}, {m.ci_high:.1f}]" if has_ci else ""
        chart.bars.append(
            Bar(
                label=_shorten(label),
                full_label=f"{label}: {m.value:.1f}{unit}{ci}, n={m.n}",
                value=m.value,
                ci_low=m.ci_low,
                ci_high=m.ci_high,
                n=m.n,
                y=chart.top + i * chart.row_h,
                width=max(x(m.value) - chart.label_w, 0.0),
                ci_x1=x(m.ci_low) if has_ci else None,
                ci_x2=x(m.ci_high) if has_ci else None,
                text=f"{m.value:.1f}  n={m.n}",
            )
        )
    return chart


def to_svg(chart: Chart) -> Markup:
    """The chart as inline SVG. Built with f-strings for speed (a 100-run site draws about a thousand
    charts); every text from results goes through ``escape``, the rest are numbers formatted here."""
    e = escape
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {chart.width} {chart.height}" '
        f'width="{chart.width}" height="{chart.height}" aria-label="{e(chart.title)}">'
    ]
    for x, label in chart.ticks:
        out.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{chart.top - 4}" y2="{chart.plot_bottom}"/>'
            f'<text class="tick" x="{x:.1f}" y="{chart.top - 8}" text-anchor="middle">{e(label)}</text>'
        )
    h = chart.row_h
    for bar in chart.bars:
        mid, text_y = bar.y + h / 2, bar.y + h / 2 + 4
        out.append(
            f'<g class="bar"><title>{e(bar.full_label)}</title>'
            f'<text class="label" x="{chart.label_w - 8}" y="{text_y:.1f}" text-anchor="end">{e(bar.label)}</text>'
            f'<rect x="{chart.label_w}" y="{bar.y + 3:.1f}" width="{bar.width:.1f}" height="{h - 6}" rx="2"/>'
        )
        if bar.ci_x1 is not None and bar.ci_x2 is not None:
            x1, x2, top, bottom = bar.ci_x1, bar.ci_x2, bar.y + 6, bar.y + h - 6
            out.append(
                f'<line class="ci" x1="{x1:.1f}" x2="{x2:.1f}" y1="{mid:.1f}" y2="{mid:.1f}"/>'
                f'<line class="ci" x1="{x1:.1f}" x2="{x1:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>'
                f'<line class="ci" x1="{x2:.1f}" x2="{x2:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>'
            )
        out.append(
            f'<text class="value" x="{chart.label_w + chart.plot_w + 8}" y="{text_y:.1f}">{e(bar.text)}</text></g>'
        )
    out.append("</svg>")
    return Markup("".join(out))
