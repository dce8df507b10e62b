"""The judge config that points a judge at the embedded server: a smoke test, never a real judge."""

from __future__ import annotations

from typing import Protocol

from iopo_eval.judges.config import JudgeConfig, Price
from iopo_eval.judges.prompt import template_fields

# The server's context (n_ctx 8192 tokens) must hold the prompt and the reply. Four fields of 4,000
# characters are about 4,000 tokens of English, the template about 600, the reply at most MAX_REPLY_TOKENS.
# A prompt that still does not fit (text that tokenizes densely) fails as a judge failure, never a score.
FIELD_CHAR_LIMIT = 4000
MAX_REPLY_TOKENS = 1024


class ServedModel(Protocol):
    """What a judge config needs from a running server (``EmbeddedJudgeServer`` is one)."""

    @property
    def base_url(self) -> str: ...

    model_name: str


def embedded_judge_config(base: JudgeConfig, server: ServedModel) -> JudgeConfig:
    """``base`` (its prompt template, parser and sampling) aimed at the embedded server.

    The result is labelled ``smoke_test`` so that every results file and page made with it says so. It
    costs nothing; llama.cpp's server rejects ``json_schema`` response formats but turns a schema given
    with ``json_object`` into a grammar, so replies are always syntactically valid JSON of the parser's
    shape; it serves one request at a time, hence concurrency 1; a 135M model on two CPU cores needs
    tens of seconds for a long judgement, hence the generous timeout. The name changes too, so a
    judgement of the embedded judge is never mistaken for one of ``base``. Every template field is cut
    to fit the server's context window (see ``FIELD_CHAR_LIMIT``).

    A judge with an upstream evaluator's own prompt (the benchmarks' defaults) is replaced by its spec's
    hardened counterpart (``UpstreamPromptSpec.hardened_config``): upstream's formats are free text, which
    a 135M model does not keep to (the run would be all judge failures), while the hardened prompt's JSON
    answer is enforced by the server's grammar. The name says which prompt ran.
    """
    base = smoke_counterpart(base)
    truncation = dict(base.truncation)
    for name in template_fields(base.template_text):
        truncation[name] = min(truncation.get(name, FIELD_CHAR_LIMIT), FIELD_CHAR_LIMIT)
    return base.with_overrides(
        name=f"{base.name}@embedded-{server.model_name}",
        base_url=server.base_url,
        model=server.model_name,
        smoke_test=True,
        price=Price(input_per_mtok=0.0, output_per_mtok=0.0),
        batch_price=Price(input_per_mtok=0.0, output_per_mtok=0.0),
        mode="sync",  # llama.cpp's server has no files + batches API
        response_format="json_object",
        concurrency=1,
        truncation=truncation,
        max_tokens=min(base.max_tokens, MAX_REPLY_TOKENS),
        timeout_s=max(base.timeout_s, 600.0),
        # The server never rate-limits; a retry mostly repeats a slow failure.
        max_retries=min(base.max_retries, 1),
    )


def smoke_counterpart(base: JudgeConfig) -> JudgeConfig:
    """``base`` itself, or for an upstream-prompt judge the bundled hardened config of the same questions."""
    if base.prompt is None:
        return base
    from iopo_eval.judges.config import load_judge_config
    from iopo_eval.judges.upstream_prompt import prompt_ref

    return load_judge_config(prompt_ref(base.prompt).spec.hardened_config)
