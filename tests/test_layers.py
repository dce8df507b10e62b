"""Which way imports may point: data enters at the bottom, orchestration and commands sit on top.

Read from the source with ``ast`` (every import, top level or inside a function), so an arrow running
back up fails here whether or not a test happens to execute it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# (folder, module prefixes its modules must not import)
RULES = [
    ("iopo_eval/data", ("iopo_eval.scoring", "iopo_eval.judges", "iopo_eval.commands", "iopo_eval.run")),
    (
        "iopo_eval/scoring",
        (
            "iopo_eval.commands",
            "iopo_eval.run",
            "iopo_eval.rejudge",
            "iopo_eval.report",
            "iopo_eval.judging",
            "iopo_eval.lm_eval_glue",
            "iopo_eval.importers",
        ),
    ),
    ("iopo_eval/importers", ("iopo_eval.commands", "iopo_eval.run", "iopo_eval.rejudge", "iopo_eval.report")),
    ("judges", ("iopo_eval.scoring", "iopo_eval.benchmark", "iopo_eval.commands", "iopo_eval.judging")),
    ("leaderboard", ("iopo_eval.commands", "iopo_eval.run", "iopo_eval.rejudge", "iopo_eval.judging")),
]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize(("folder", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_no_import_runs_back_up(folder: str, forbidden: tuple[str, ...]) -> None:
    found = set()
    for path in sorted((REPO / folder).rglob("*.py")):
        for name in _imports(path):
            if name.startswith(forbidden):
                found.add((str(path.relative_to(REPO)), name))
    assert not found, sorted(found)


def test_the_leaderboard_package_holds_no_test_fixtures() -> None:
    assert not (REPO / "leaderboard" / "synthetic.py").exists()
    assert (REPO / "iopo_eval" / "testing" / "synthetic.py").is_file()
