"""Issue 6.7: very long instructions and responses are cut for the judge deterministically, the judge is
told, and the cut is recorded: in the outcome, in the items file (``judge.truncated``), and on the
leaderboard's item browser."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from iopo_eval.cli import main as cli_main
from iopo_eval.judges import JudgeCache, judge_batch, load_judge_config
from iopo_eval.judges.prompt import cache_key, render
from iopo_eval.scoring.trace import item_record, judge_request
from iopo_eval.testing.openai_server import OpenAIServer
from iopo_eval.testing.replies import hashed_scores

from .conftest import judge_config_file, judge_stage, trace_items, write_generations

LEADERBOARD_TESTS = Path(__file__).resolve().parents[1] / "leaderboard"


def test_cut_is_deterministic_exact_and_announced() -> None:
    template = "Q:\n{{query}}\nR:\n{{response}}\n{{nonce}}"
    fields = {"query": "q" * 50, "response": "".join(chr(0x4E00 + i % 500) for i in range(30_000))}
    first = render(template, fields, n_expected=1, truncation={"query": 40, "response": 1000})
    second = render(template, dict(fields), n_expected=1, truncation={"query": 40, "response": 1000})
    assert first == second and cache_key("j", first, 1) == cache_key("j", second, 1)
    assert first.truncated == {"query": 50, "response": 30_000}
    assert first.fields["response"].startswith(fields["response"][:1000])
    assert first.fields["response"][1000:] == "\n[... truncated: 29000 more characters not shown]"
    assert first.fields["query"] == "q" * 40 + "\n[... truncated: 10 more characters not shown]"
    # Under the limit nothing changes and nothing is recorded.
    short = render(template, fields, n_expected=1, truncation={"query": 50, "response": 30_000})
    assert short.truncated == {} and short.fields == fields


def test_engine_records_the_cut_fresh_and_cached(tmp_path: Path, judge_key: str) -> None:
    item = next(i for i in trace_items() if len(i.constraints_splits) == 2)
    request = judge_request(item, "回答" * 20_000)  # 40,000 characters
    request.fields["query"] = "指令" * 6_000  # a 12,000-character instruction
    with OpenAIServer(hashed_scores) as server:
        config = load_judge_config(judge_config_file(tmp_path)).with_overrides(base_url=server.base_url)
        with JudgeCache(tmp_path / "c.sqlite") as cache:
            fresh = judge_batch([request], config, cache, progress=False).outcomes[0]
            cached = judge_batch([request], config, cache, progress=False).outcomes[0]
        prompt = server.bodies[0]["messages"][-1]["content"]
    assert server.calls == 1 and cached.cached
    expected = {"query": 12_000, "response": 40_000}
    assert fresh.truncated == expected and cached.truncated == expected
    assert "回答" * 8_000 + "\n[... truncated: 24000 more characters not shown]" in prompt
    assert "指令" * 4_000 + "\n[... truncated: 4000 more characters not shown]" in prompt
    record = item_record(item, request.fields["response"], fresh)
    assert record.judge["truncated"] == expected and record.response == request.fields["response"]


def test_items_file_and_leaderboard_show_the_cut(tmp_path: Path, judge_key: str) -> None:
    items = trace_items()[:3]
    long_id = items[1].id
    gen = write_generations(tmp_path / "gen", items, {long_id: "x" * 20_000})
    with OpenAIServer(hashed_scores) as server:
        results, records = judge_stage(
            gen,
            judge_config_file(tmp_path / "cfg"),
            server.base_url,
            tmp_path / "c.sqlite",
            tmp_path / "runs",
        )
    assert records[long_id].judge["truncated"] == {"response": 20_000}
    assert all(r.judge["truncated"] == {} for k, r in records.items() if k != long_id)

    site = tmp_path / "site"
    assert cli_main(["leaderboard", str(tmp_path / "runs" / "*"), "-o", str(site), "--no-reported"]) == 0
    assert "truncated for the judge" in (site / "assets" / "items.js").read_text(encoding="utf-8")
    page_html = site / "runs" / f"{results.run_id}.html"
    assert page_html.is_file()

    sys.path.insert(0, str(LEADERBOARD_TESTS))
    try:
        from cdp_browser import Browser, find_chromium
    finally:
        sys.path.remove(str(LEADERBOARD_TESTS))
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install -y chromium)")
        pytest.skip("chromium not installed: the item browser check needs a real Chromium")
    browser = Browser(chromium, tmp_path / "profile")
    try:
        page = browser.page()
        page.goto(page_html.as_uri())
        page.click("details.items > summary")
        page.wait_for("document.querySelector('details.items').getAttribute('data-loaded') === 'yes'")
        shown = page.eval(
            "[...document.querySelectorAll('details.items tbody tr')].map(tr => "
            "[tr.querySelector('td.id').textContent, (tr.querySelector('.truncated') || {}).textContent || ''])"
        )
        page.close()
    finally:
        browser.close()
    notes = dict(map(tuple, shown))
    assert notes[long_id] == "truncated for the judge: response (20000 characters)"
    assert [note for key, note in notes.items() if key != long_id] == ["", ""]
