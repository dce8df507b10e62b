"""The bundled reported rows equal the project's reference transcription of the paper's tables
(``../shared/docs/paper-reported.md``), value by value; rows it does not list are absent."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iopo_eval.leaderboard.reported import load_reported

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "docs" / "paper-reported.md"
TABLE3 = ["trace:if_s", "trace:if_m", "ifeval:prompt_strict", "ifeval:prompt_loose"]
TABLE3 += ["cfbench:csr", "cfbench:isr", "cfbench:psr", "complexbench:drfr"]
TABLE4 = ["trace:if_s", "ifeval:prompt_strict", "cfbench:csr", "complexbench:drfr"]
ABLATIONS = {
    "w/o output preference": "IOPO w/o output preference",
    "w/o input preference": "IOPO w/o input preference",
}


def _section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def _reference_rows() -> dict[tuple[str, str], dict[str, float | None]]:
    if not REFERENCE.is_file():
        pytest.fail(f"{REFERENCE} is missing: the shared reference docs must sit beside the checkout")
    text = REFERENCE.read_text(encoding="utf-8")
    rows: dict[tuple[str, str], dict[str, float | None]] = {}
    base = ""
    for line in _section(text, "Table 3").splitlines():
        if line.startswith(("Qwen2-7B", "LLaMA3.1-8B")):
            base = line.split()[0].rstrip(":")
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("|") and len(cells) == 9 and re.fullmatch(r"[\d.]+", cells[1]):
            rows[(base, cells[0])] = dict(zip(TABLE3, map(float, cells[1:]), strict=True))
    for line in _section(text, "Table 4").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 6 or not re.fullmatch(r"[\d.]+", cells[2]):
            continue
        values = dict(zip(TABLE4, map(float, cells[2:]), strict=True))
        if cells[1] == "IOPO (full)":
            assert all(rows[(cells[0], "IOPO")][k] == v for k, v in values.items()), "Table 4 repeats Table 3"
            continue
        method = next(name for prefix, name in ABLATIONS.items() if cells[1].startswith(prefix))
        rows[(cells[0], method)] = {k: values.get(k) for k in TABLE3}
    return rows


def test_every_reported_value_equals_the_reference_transcription() -> None:
    reference = _reference_rows()
    assert len(reference) == 13
    bundled = {(r.base_model, r.method): r.values for r in load_reported().rows}
    assert bundled == reference


def test_rows_the_paper_does_not_report_are_absent() -> None:
    methods = {(r.base_model, r.method) for r in load_reported().rows}
    for method in ("SFT", "PPO", "ORPO", "SimPO", "Instruct"):
        assert ("LLaMA3.1-8B", method) not in methods
