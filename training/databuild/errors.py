"""The error a bad build input raises: the CLI prints its message (file, line or key) and exits with 2."""

from __future__ import annotations

from iopo_eval.data.store import DataError


class BuildError(DataError):
    """A seeds file, taxonomy file, distribution, LLM config or output folder that cannot be used."""
