"""A scripted lm-eval model for end-to-end tests of the tasks: no weights, deterministic answers.

lm-eval renders each request through ``apply_chat_template``; this model renders the chat as JSON and
hands the turns to an answer function, so a test sees exactly the messages a real chat model would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

Answer = Callable[[list[dict[str, str]], dict[str, Any]], str]  # (chat turns, generation kwargs) -> text


class ScriptedChatLM(LM):
    answer: Answer
    seen: list[dict[str, Any]]  # every chat and generation setting the model was asked for

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()

    @property
    def tokenizer_name(self) -> str:
        return "scripted"

    def apply_chat_template(
        self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True
    ) -> str:
        return json.dumps(chat_history, ensure_ascii=False)

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        out = []
        for req in requests:
            chat = json.loads(req.args[0])
            self.seen.append({"chat": chat, "gen": req.args[1]})
            out.append(type(self).answer(chat, req.args[1]))
        return out

    def loglikelihood(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise NotImplementedError("a scripted chat model only generates")

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[Any]:
        raise NotImplementedError("a scripted chat model only generates")


def register_scripted_lm(name: str, answer: Answer) -> type[ScriptedChatLM]:
    """Register a scripted model under ``name`` (usable as ``ModelSpec(name, ...)`` or ``--model name``)."""
    cls = type(f"ScriptedChatLM_{name}", (ScriptedChatLM,), {"answer": staticmethod(answer), "seen": []})
    register_model(name)(cls)
    return cls


def user_turn(chat: list[dict[str, str]]) -> str:
    return next(m["content"] for m in chat if m["role"] == "user")
