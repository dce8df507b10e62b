"""The judge config that points a judge at the embedded server: a smoke test, never a real judge."""

from __future__ import annotations

from typing import Protocol

from iopo_eval.judges.config import JudgeConfig, Price


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
    judgement of the embedded judge is never mistaken for one of ``base``.
    """
    return base.with_overrides(
        name=f"{base.name}@embedded-{server.model_name}",
        base_url=server.base_url,
        model=server.model_name,
        smoke_test=True,
        price=Price(input_per_mtok=0.0, output_per_mtok=0.0),
        response_format="json_object",
        concurrency=1,
        timeout_s=max(base.timeout_s, 600.0),
        # The server never rate-limits; a retry mostly repeats a slow failure.
        max_retries=min(base.max_retries, 1),
    )
