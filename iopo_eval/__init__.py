"""iopo-eval: measure and improve complex instruction following the way the IOPO paper does.

Data enters through :mod:`iopo_eval.data`, responses are judged in :mod:`iopo_eval.judges`,
scored in :mod:`iopo_eval.scoring`, and leave as run results (:mod:`iopo_eval.results`) that the
leaderboard (:mod:`iopo_eval.leaderboard`) and the regression gate (:mod:`iopo_eval.gate`) consume.
"""

import os as _os

__version__ = "0.1.0"


def _anchor_data_mirror() -> None:
    """Make a relative $IOPO_EVAL_DATA_MIRROR absolute, once, against the directory it was given in.

    Runs when the package is first imported, so that subprocesses started in another directory (lm_eval
    runs, test helpers) inherit a path that still names the same folder."""
    value = _os.environ.get("IOPO_EVAL_DATA_MIRROR")
    if value and not _os.path.isabs(_os.path.expanduser(value)):
        _os.environ["IOPO_EVAL_DATA_MIRROR"] = _os.path.abspath(_os.path.expanduser(value))


_anchor_data_mirror()


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
