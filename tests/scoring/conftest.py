"""Fixtures of the scoring tests.

``complexbench_upstream``: upstream ComplexBench's rule checker, the oracle of the rule tests. It is
upstream's ``evaluation/rule_based_evaluation.py`` (with ``con_rule.py``, which it imports), loaded at test
time from the data mirror ($IOPO_EVAL_DATA_MIRROR/complexbench/upstream/evaluation/) after checking the
sha256 listed in ../shared/data/README.md. Test-only use of data files: never shipped, copied into the
repository or imported by the package. Without them the tests that use it fail and say what is missing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

COMPLEXBENCH_UPSTREAM_FILES = {
    "con_rule.py": "eb9b539b3ffeae79c82fea6d7b10aab571af726de3f22fe02b114c30ffa59d50",
    "rule_based_evaluation.py": "295816516903cc3a9e6111dd7cb57cbd1f958f773510dd3f8525a064263ab339",
}


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def complexbench_upstream() -> ModuleType:
    """Upstream's rule_based_evaluation module: ``preprocess`` and (imported from con_rule) ``decompose_judge``."""
    root = Path(os.environ.get("IOPO_EVAL_DATA_MIRROR", "")) / "complexbench" / "upstream" / "evaluation"
    for name, sha in COMPLEXBENCH_UPSTREAM_FILES.items():
        path = root / name
        if not path.is_file():
            pytest.fail(
                f"{path} is missing: the oracle of this test is upstream's rule checker in the data mirror "
                "(set IOPO_EVAL_DATA_MIRROR to the shared data folder holding complexbench/upstream/)"
            )
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != sha:
            pytest.fail(
                f"{path} has sha256 {actual}, expected {sha} (not upstream's file at the pinned commit)"
            )
    # rule_based_evaluation imports con_rule by its bare name: provide that name only while loading it.
    saved = sys.modules.get("con_rule")
    try:
        sys.modules["con_rule"] = _load("con_rule", root / "con_rule.py")
        return _load("_upstream_complexbench_rule_based_evaluation", root / "rule_based_evaluation.py")
    finally:
        if saved is None:
            sys.modules.pop("con_rule", None)
        else:
            sys.modules["con_rule"] = saved
