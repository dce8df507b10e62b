"""The rendered site in a real headless Chromium: it loads from file:// with no network request,
sorting and the baseline work, a screenshot is taken, and hostile strings never execute."""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from cdp_browser import HOSTILE, Browser, Page

from iopo_eval.leaderboard.columns import main_columns
from iopo_eval.results import load_results, read_items


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    p = browser.page()
    try:
        yield p
    finally:
        p.close()


def _no_errors(page: Page) -> None:
    thrown = page.events("Runtime.exceptionThrown")
    assert not thrown, thrown[0]["params"]["exceptionDetails"]
    logged = [e for e in page.events("Log.entryAdded") if e["params"]["entry"]["level"] == "error"]
    assert not logged, logged[0]["params"]["entry"]


def _requests(page: Page) -> list[str]:
    return [e["params"]["request"]["url"] for e in page.events("Network.requestWillBeSent")]


def _measured_order(page: Page) -> list[str]:
    return page.eval("[...document.querySelectorAll('#leaderboard tbody tr.measured')].map(r => r.id)")


def test_index_loads_offline_and_screenshot(page: Page, site: Path, tmp_path: Path) -> None:
    page.goto((site / "index.html").as_uri())
    assert page.eval("document.title") == "iopo-eval leaderboard"
    assert page.eval("document.querySelectorAll('#leaderboard tbody tr.measured').length") == 5
    assert page.eval("document.querySelectorAll('#leaderboard tbody tr.reported').length") == 13
    assert (
        page.eval("getComputedStyle(document.querySelector('table.board th')).backgroundColor")
        == "rgb(242, 244, 247)"
    )
    urls = _requests(page)
    assert any(u.endswith("assets/leaderboard.js") for u in urls)
    assert all(u.startswith("file://") for u in urls), urls  # nothing from the network
    _no_errors(page)
    shot = page.screenshot(tmp_path / "index.png")
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    assert width == 1400 and height > 600
    keep = os.environ.get("IOPO_SCREENSHOT_DIR")  # to look at it: IOPO_SCREENSHOT_DIR=/tmp/shots pytest ...
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "index.png")


def test_clicking_headers_sorts(page: Page, site: Path, small_runs: dict[str, Path]) -> None:
    page.goto((site / "index.html").as_uri())
    ids = {f"run-{load_results(p)[0].run_id}": p for p in small_runs.values()}
    ids = {k: v for k, v in ids.items() if k in _measured_order(page)}  # the hostile id has a slug

    def value(run_id: str, bench: str, metric: str) -> float | None:
        row = page.eval(
            f"document.getElementById({run_id!r}).querySelector('td[data-col=\"{bench}:{metric}\"]').dataset.v"
        )
        return float(row) if row else None

    col = main_columns()[4]  # CFBench CSR: the partial run has no CFBench and must sort last both ways
    selector = f'th[data-col="{col.key}"]'
    page.click(selector)
    order = _measured_order(page)
    values = [value(r, col.benchmark, col.metric) for r in order]
    present = [v for v in values if v is not None]
    assert present == sorted(present, reverse=True) and len(present) == 4
    assert values[-1] is None and order[-1] == "run-r-partial"
    assert page.eval(f"document.querySelector('{selector}').getAttribute('aria-sort')") == "descending"

    page.click(selector)
    values = [value(r, col.benchmark, col.metric) for r in _measured_order(page)]
    present = [v for v in values if v is not None]
    assert present == sorted(present) and values[-1] is None

    page.click('th[data-col="failures"]')  # counts of failures: fewest first
    fails = page.eval(
        "[...document.querySelectorAll('#leaderboard tbody tr.measured')].map(r => +r.querySelector('td[data-col=failures]').dataset.v)"
    )
    assert fails == sorted(fails) and len(set(fails)) > 1

    page.click('th[data-col="label"]')
    labels = page.eval(
        "[...document.querySelectorAll('#leaderboard tbody tr')].map(r => r.cells[0].dataset.v.toLowerCase())"
    )
    assert labels == sorted(labels)
    _no_errors(page)


def test_baseline_selector_shows_deltas(page: Page, site: Path, small_runs: dict[str, Path]) -> None:
    page.goto((site / "index.html").as_uri())
    page.eval(
        "{ const s = document.getElementById('baseline-select'); s.value = 'run-r-weak';"
        " s.dispatchEvent(new Event('change')) }"
    )
    strong, _ = load_results(small_runs["strong"])
    weak, _ = load_results(small_runs["weak"])
    for col in main_columns():
        text = page.eval(
            f"document.getElementById('run-r-strong').querySelector('td[data-col=\"{col.key}\"] .delta').textContent"
        )
        d = (
            strong.benchmarks[col.benchmark].metrics[col.metric].value
            - weak.benchmarks[col.benchmark].metrics[col.metric].value
        )
        sign = "+" if d > 0 else "\u2212" if d < 0 else "\u00b1"
        assert text == f"{sign}{abs(d):.1f}", col.key
    assert page.eval("document.getElementById('run-r-weak').classList.contains('is-baseline')")
    assert page.eval("document.getElementById('run-r-weak').querySelector('.delta').textContent") == ""
    # the reported toggle hides the paper's rows
    page.click("#show-reported")
    assert page.eval("getComputedStyle(document.getElementById('reported-0')).display") == "none"
    _no_errors(page)


def test_hostile_model_name_and_response_do_not_execute(page: Page, site: Path) -> None:
    page.goto((site / "index.html").as_uri())
    assert page.eval("typeof window.__pwned") == "undefined"
    hostile_row = page.eval(
        "[...document.querySelectorAll('tr.measured')].find(r => r.textContent.includes('pwned')).id"
    )
    assert (
        page.eval(f"document.getElementById({hostile_row!r}).cells[0].querySelector('a').textContent")
        == f"evil {HOSTILE}"
    )
    assert page.eval("document.querySelectorAll('#leaderboard img').length") == 0
    # the baseline selector's option text comes from the page's JSON: still text only
    assert page.eval(
        f"[...document.querySelectorAll('#baseline-select option')].some(o => o.textContent === 'evil ' + {HOSTILE!r})"
    )

    href = page.eval(f"document.getElementById({hostile_row!r}).cells[0].querySelector('a').href")
    page.goto(href)
    assert page.eval("document.querySelector('h1').textContent") == f"evil {HOSTILE}"
    for i in range(page.eval("document.querySelectorAll('details.items').length")):
        page.eval(f"document.querySelectorAll('details.items')[{i}].open = true")
        page.wait_for(
            f"document.querySelectorAll('details.items')[{i}].getAttribute('data-loaded') === 'yes'"
        )
    responses = page.eval(
        "[...document.querySelectorAll('.item-table td.response .text')].map(e => e.textContent)"
    )
    assert responses and all(r.startswith(HOSTILE) for r in responses)
    assert page.eval("document.querySelectorAll('main img').length") == 0
    assert page.eval("typeof window.__pwned") == "undefined"
    _no_errors(page)


def test_run_page_charts_and_item_browser(
    page: Page, site: Path, small_runs: dict[str, Path], tmp_path: Path
) -> None:
    page.goto((site / "runs" / "r-strong.html").as_uri())
    assert page.eval("document.querySelectorAll('figure.chart svg').length") >= 10
    first = "document.querySelector('details.items')"
    assert page.eval(f"{first}.getAttribute('data-loaded')") is None  # items load only when opened
    page.click("details.items > summary")
    page.wait_for(f"{first}.getAttribute('data-loaded') === 'yes'")
    assert page.eval(f"{first}.querySelector('.item-count').textContent") == "1\u201325 of 60 items"
    page.click("details.items .item-next")
    assert page.eval(f"{first}.querySelector('.item-count').textContent") == "26\u201350 of 60 items"
    page.eval(
        f"{{ const q = {first}.querySelector('.item-search'); q.value = 'no such text anywhere';"
        " q.dispatchEvent(new Event('input')) }"
    )
    assert page.eval(f"{first}.querySelector('.item-count').textContent") == "no items match"
    page.eval(
        f"{{ const q = {first}.querySelector('.item-search'); q.value = ''; q.dispatchEvent(new Event('input'));"
        f" const s = {first}.querySelector('.item-status'); s.value = 'failed'; s.dispatchEvent(new Event('change')) }}"
    )
    failed = [i for i in read_items(small_runs["strong"] / "trace.items.jsonl") if i.status != "ok"]
    shown = page.eval(f"[...{first}.querySelectorAll('tbody td.id')].map(td => td.textContent)")
    assert failed and shown == [i.item_id for i in failed][:25]
    assert all(u.startswith("file://") for u in _requests(page))
    _no_errors(page)
    page.screenshot(tmp_path / "run.png")
