"""The model under test: which lm-eval backend, with which arguments, and what identifies it in results."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# lm-eval backends people use here; any other registered lm-eval model name is passed through.
KNOWN_BACKENDS = ("hf", "vllm", "local-chat-completions", "openai-chat-completions", "local-completions")
_SECRET_ARG = re.compile(r"(key|token|secret|password)", re.IGNORECASE)


@dataclass
class ModelSpec:
    backend: str
    model_args: dict[str, str]
    name: str
    embedded: bool = False

    @property
    def model_args_str(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.model_args.items())


def parse_model_args(text: str | None) -> dict[str, str]:
    args: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"--model-args: {part!r} is not KEY=VALUE")
        key, value = part.split("=", 1)
        args[key.strip()] = value.strip()
    return args


def resolve_model(model: str | None, model_args: str | None) -> ModelSpec:
    """``None`` -> the embedded SmolLM2-135M-Instruct; a backend name -> that lm-eval backend;
    anything else is taken as a local folder or hub id for the ``hf`` backend."""
    args = parse_model_args(model_args)
    if model is None:
        from iopo_eval import embedded

        args.setdefault("pretrained", str(embedded.ensure_hf_model()))
        return ModelSpec("hf", args, embedded.EMBEDDED_MODEL_NAME, embedded=True)
    if model in KNOWN_BACKENDS or not (Path(model).exists() or "/" in model):
        name = args.get("pretrained") or args.get("model") or model
        return ModelSpec(model, args, name)
    args.setdefault("pretrained", model)
    return ModelSpec("hf", args, model)


def _local_revision(path: Path) -> str | None:
    """A cheap fingerprint of a local checkpoint folder: its config and weight file names and sizes."""
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for f in sorted(path.iterdir()):
        if f.is_file() and (f.suffix in {".json", ".safetensors", ".bin", ".model", ".jinja"}):
            digest.update(f.name.encode())
            digest.update(str(f.stat().st_size).encode())
            if f.suffix in {".json", ".jinja"} and f.stat().st_size < 5_000_000:
                digest.update(f.read_bytes())
    return "local:" + digest.hexdigest()[:16]


def chat_template_sha256(spec: ModelSpec) -> str | None:
    """sha256 of the chat template the model's tokenizer applies (None where the server applies its own)."""
    source = spec.model_args.get("tokenizer") or spec.model_args.get("pretrained")
    if spec.backend not in ("hf", "vllm") or not source:
        return None
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source)
    except Exception as exc:  # the run itself will report a loading problem clearly
        log.warning("could not load the tokenizer of %s to hash its chat template: %s", source, exc)
        return None
    template = getattr(tok, "chat_template", None)
    if not template:
        return None
    text = template if isinstance(template, str) else repr(sorted(template.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_settings(spec: ModelSpec) -> dict[str, Any] | None:
    """How the weights were loaded (dtype, PEFT adapter): the same checkpoint scores differently in bf16 with
    an adapter on top than merged in float32, and the gate says so when two runs differ here."""
    if spec.backend not in ("hf", "vllm"):
        return None  # a server decides
    dtype = spec.model_args.get("dtype", "auto")
    pretrained = spec.model_args.get("pretrained")
    if dtype == "auto" and pretrained and (Path(pretrained) / "config.json").is_file():
        try:
            config = json.loads((Path(pretrained) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            config = {}
        stored = config.get("dtype") or config.get("torch_dtype")
        dtype = f"auto ({stored})" if stored else dtype
    return {"dtype": dtype, "peft": spec.model_args.get("peft")}


def model_info(spec: ModelSpec) -> dict[str, Any]:
    """What results say about the model: never an API key, even one passed in model args."""
    public_args = {k: ("***" if _SECRET_ARG.search(k) else v) for k, v in spec.model_args.items()}
    pretrained = spec.model_args.get("pretrained")
    revision = spec.model_args.get("revision")
    if revision is None and pretrained:
        snapshot = re.search(r"snapshots/([0-9a-f]{40})", pretrained)
        revision = snapshot.group(1) if snapshot else _local_revision(Path(pretrained))
    return {
        "name": spec.name,
        "backend": spec.backend,
        "model_args": public_args,
        "revision": revision,
        "chat_template_sha256": chat_template_sha256(spec),
        "embedded": spec.embedded,
        "load": load_settings(spec),
    }
