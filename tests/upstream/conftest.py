"""Tests of the upstream evaluators' prompts and reply formats. The suite runs with
--import-mode=importlib, which puts no test folder on sys.path: this one is added so that the tests can
import ``upstream_oracles`` (test-only helpers that run upstream's own functions from the data mirror)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
