"""CFBench judge replies in upstream's format, read exactly as upstream's ``code/evalaute.py`` reads them.

Upstream's format: one ``<checkpoint text>\\t<0|1>`` per checkpoint, separated by ``"\\n\\n"``.

- **Strict** (``judge_parsing`` "1"): the reply split on ``"\\n\\n"`` gives as many blocks as there are
  checkpoints; each block split on ``"\\t"`` gives exactly two parts; the first is the checkpoint's text,
  compared **exactly** (no trimming: a checkpoint with a leading space must be echoed with it); the
  second converts with ``float`` to 0 or 1 (so ``1.0`` and `` 1\\n`` count). Scores are kept in order.
- **Fallback** (``judge_parsing`` "0"), applied by upstream only after its 10 re-judging rounds: every
  line (split on ``"\\n"``) that splits on ``"\\t"`` into exactly two parts and whose second part is 1 is
  kept. Upstream's test ``if float(score) and ...`` drops the zeros, so a partly satisfied reply reads as
  fully satisfied; ``keep_zeros=True`` keeps them (the stricter counting, an option). A second part that
  is not a number stops upstream's whole run with a ValueError; here that line is skipped.
- **Failed** (``judge_parsing`` "-1"): nothing kept; upstream stores the score list ``["0"]``.

``cfbench_upstream`` (registered parser) is the strict reading, for the engine: a reply it rejects is
asked again (upstream re-judges up to 10 rounds), and a judgement that still fails keeps its last reply,
which :func:`after_retries` reads with the fallback as upstream does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from iopo_eval.judges.parse import JudgeParseError, ParsedJudgement, ParserSpec, register_parser

PARSER_NAME = "cfbench_upstream"

# Parse states as upstream stores them in ``judge_parsing``.
STRICT = "1"
FALLBACK = "0"
FAILED = "-1"
PARSE_STATES = (STRICT, FALLBACK, FAILED)


@dataclass(frozen=True)
class UpstreamParse:
    scores: list[float]  # aligned with the checkpoints only when state is STRICT
    state: str  # STRICT | FALLBACK | FAILED

    @property
    def aligned(self) -> bool:
        return self.state == STRICT


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def strict_scores(reply: str, checkpoints: Sequence[str]) -> list[float]:
    """Upstream's strict reading, raising :class:`JudgeParseError` at the first check that fails (in
    upstream's order: count, tab, text, score)."""
    if not isinstance(reply, str):
        raise JudgeParseError("parse_error", f"the reply is not text: {type(reply).__name__}")
    blocks = reply.split("\n\n")
    if len(blocks) != len(checkpoints):
        raise JudgeParseError(
            "wrong_count", f"expected {len(checkpoints)} blocks separated by a blank line, got {len(blocks)}"
        )
    scores = []
    for i, (block, checkpoint) in enumerate(zip(blocks, checkpoints, strict=True), start=1):
        parts = block.split("\t")
        if len(parts) != 2:
            raise JudgeParseError("parse_error", f"block {i} has {len(parts) - 1} tabs, not one")
        text, score = parts
        if text != checkpoint:
            raise JudgeParseError("parse_error", f"block {i} does not echo checkpoint {i}'s text exactly")
        value = _number(score)
        if value is None or value not in (0.0, 1.0):
            raise JudgeParseError("out_of_range", f"block {i}: score {score!r} is not 0 or 1")
        scores.append(value)
    return scores


def upstream_strict(reply: str, checkpoints: Sequence[str]) -> list[float] | None:
    try:
        return strict_scores(reply, checkpoints)
    except JudgeParseError:
        return None


def upstream_fallback(reply: str, *, keep_zeros: bool = False) -> list[float]:
    """Upstream's fallback: the 1s of every line that is ``text<TAB>score`` (and the 0s with
    ``keep_zeros``)."""
    scores = []
    for line in reply.split("\n") if isinstance(reply, str) else []:
        parts = line.split("\t")
        if len(parts) != 2:
            continue
        value = _number(parts[1])
        if value is None or value not in (0.0, 1.0):
            continue
        if value == 0.0 and not keep_zeros:
            continue  # upstream's ``if float(score) and ...``
        scores.append(value)
    return scores


def after_retries(reply: str | None, *, keep_zeros: bool = False) -> UpstreamParse:
    """What upstream makes of a reply that failed the strict reading in every round: the fallback (state
    "0"), or state "-1" with upstream's stand-in score ``[0]`` when it keeps nothing."""
    fallback = upstream_fallback(reply or "", keep_zeros=keep_zeros)
    if fallback:
        return UpstreamParse(fallback, FALLBACK)
    return UpstreamParse([0.0], FAILED)


def parse_upstream_reply(
    reply: str, checkpoints: Sequence[str], *, keep_zeros: bool = False
) -> UpstreamParse:
    """Strict, else fallback, else failed: upstream's reading of a stored ``judge_response``."""
    strict = upstream_strict(reply, checkpoints)
    if strict is not None:
        return UpstreamParse(strict, STRICT)
    return after_retries(reply, keep_zeros=keep_zeros)


def parse_in_context(reply: str, fields: Mapping[str, Any], n_expected: int) -> ParsedJudgement:
    criteria = fields.get("criteria")
    if not isinstance(criteria, list) or not all(isinstance(c, str) for c in criteria):
        raise ValueError("a cfbench_upstream request needs 'criteria', a list of checkpoint texts")
    if len(criteria) != n_expected:
        raise ValueError(f"n_expected {n_expected} differs from the {len(criteria)} checkpoints")
    if not reply or not reply.strip():
        raise JudgeParseError("empty_reply", "the judge replied with no text")
    return ParsedJudgement(scores=strict_scores(reply, criteria), reasons=None, overall=None)


def _needs_context(reply: str, n_expected: int) -> ParsedJudgement:
    raise ValueError(
        "the cfbench_upstream parser compares the echoed checkpoint texts: it needs the request's "
        "'criteria' (ParserSpec.for_request)"
    )


register_parser(ParserSpec(name=PARSER_NAME, parse=_needs_context, parse_in_context=parse_in_context))
