"""iopo-eval: measure and improve complex instruction following the way the IOPO paper does.

Data enters through :mod:`iopo_eval.data`, responses are judged in :mod:`iopo_eval.judges`,
scored in :mod:`iopo_eval.scoring`, and leave as run results (:mod:`iopo_eval.results`) that the
leaderboard (:mod:`iopo_eval.leaderboard`) and the regression gate (:mod:`iopo_eval.gate`) consume.
"""

__version__ = "0.1.0"


def _map_source_folders() -> None:
    """Run from a source checkout (``python -m``, ``accelerate launch -m`` and ``torchrun -m`` put the current
    folder first on ``sys.path``), this folder is imported instead of the installed package; map the
    repository's top-level ``training/``, ``judges/`` and ``leaderboard/`` into ``iopo_eval.*`` the way the
    installed package does (pyproject.toml's package-dir)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "training" / "__init__.py").is_file():
        __path__.append(str(root))


_map_source_folders()
