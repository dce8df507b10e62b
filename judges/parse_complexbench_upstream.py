"""ComplexBench judge replies read as upstream reads them (``evaluation/llm_based_evaluation.py`` and
``llm_based_extraction.py``), for the judges that use upstream's own prompts.

``complexbench_yesno_upstream``: if ``答案：是`` / ``答案：否`` (full-width colon) occurs exactly once, that
answer; otherwise yes iff the reply contains 是 and not 否. Every non-empty reply is a verdict, as
upstream's; an empty reply is asked again (upstream retries a call that raises, and reads an empty reply as
"no"; a judgement that fails after the retries is "no" there, which the scoring applies).
Stored as ``scores=[1.0|0.0]``.

``complexbench_extract_upstream``: upstream keeps the extraction reply as it is and cuts the segments out
of it later (``rule_based_evaluation.preprocess``, ``iopo_eval.scoring.complexbench_rules.split_extraction``),
so every non-empty reply is accepted and the raw reply is what the scoring reads. Stored as
``scores=[1.0]`` (a placeholder: an extraction has no score).
"""

from __future__ import annotations

from iopo_eval.judges.parse import JudgeParseError, ParsedJudgement, ParserSpec, register_parser
from iopo_eval.judges.parse_complexbench import upstream_yesno

YESNO = "complexbench_yesno_upstream"
EXTRACT = "complexbench_extract_upstream"


def upstream_verdict(reply: str) -> bool:
    """Upstream's yes/no reading of a judge reply (a reply with neither 是 nor 否 reads as no)."""
    return upstream_yesno(reply) is True


def _one(n_expected: int) -> None:
    if n_expected != 1:
        raise ValueError(f"ComplexBench judgements answer one question each; n_expected was {n_expected}")


def _nonempty(reply: str) -> None:
    if reply is None or reply == "":
        raise JudgeParseError("empty_reply", "the judge replied with no text")


def parse_yesno(reply: str, n_expected: int) -> ParsedJudgement:
    _one(n_expected)
    _nonempty(reply)
    return ParsedJudgement(scores=[float(upstream_verdict(reply))], reasons=None, overall=None)


def parse_extract(reply: str, n_expected: int) -> ParsedJudgement:
    _one(n_expected)
    _nonempty(reply)
    return ParsedJudgement(scores=[1.0], reasons=None, overall=None)


register_parser(ParserSpec(name=YESNO, parse=parse_yesno))
register_parser(ParserSpec(name=EXTRACT, parse=parse_extract))
