"""Where responses are judged: judge configs and prompt templates as data, an async client for any
OpenAI-compatible endpoint, a content-addressed SQLite cache, and strict reply parsers.

The public face::

    from iopo_eval.judges import JudgeCache, JudgeRequest, judge_batch, resolve_judge_config

    config = resolve_judge_config()            # $IOPO_EVAL_JUDGE or trace-gpt4o, plus env overrides
    with JudgeCache("judge-cache.sqlite") as cache:
        run = judge_batch(requests, config, cache, budget_usd=5.0)
    run.outcomes                               # JudgeOutcome per request, in order
    run.usd, run.calls, run.cache_hits, run.failures

- :class:`JudgeConfig` / :func:`resolve_judge_config` / :func:`load_judge_config`: ``configs/*.yaml``.
- :func:`judge_many` (async) and :func:`judge_batch` (sync): the engine; :class:`JudgeRun` its result.
- :class:`JudgeCache`: the SQLite cache.
- :data:`PARSERS` / :func:`register_parser`: reply parsers by name (``trace_scores``).
See README.md in this folder.
"""

from iopo_eval.judges import parse_builder as _parse_builder  # noqa: F401  (registers its parsers)
from iopo_eval.judges import parse_cfbench as _parse_cfbench  # noqa: F401  (registers its parser)
from iopo_eval.judges import parse_cfbench_upstream as _parse_cfbench_upstream  # noqa: F401  (registers)
from iopo_eval.judges import parse_complexbench as _parse_complexbench  # noqa: F401  (registers its parsers)
from iopo_eval.judges import parse_complexbench_upstream as _parse_cb_upstream  # noqa: F401  (registers)
from iopo_eval.judges import parse_smoke as _parse_smoke  # noqa: F401  (registers its parser)
from iopo_eval.judges import parse_trace_upstream as _parse_trace_upstream  # noqa: F401  (registers)
from iopo_eval.judges.cache import JudgeCache, JudgeCacheError
from iopo_eval.judges.config import (
    JudgeConfig,
    JudgeConfigError,
    Price,
    load_judge_config,
    resolve_judge_config,
)
from iopo_eval.judges.engine import DryRunEstimate, JudgeRun, judge_batch, judge_many
from iopo_eval.judges.parse import PARSERS, JudgeParseError, ParsedJudgement, ParserSpec, register_parser
from iopo_eval.judges.types import ERROR_KINDS, JudgeOutcome, JudgeRequest, Usage

__all__ = [
    "ERROR_KINDS",
    "PARSERS",
    "DryRunEstimate",
    "JudgeCache",
    "JudgeCacheError",
    "JudgeConfig",
    "JudgeConfigError",
    "JudgeOutcome",
    "JudgeParseError",
    "JudgeRequest",
    "JudgeRun",
    "ParsedJudgement",
    "ParserSpec",
    "Price",
    "Usage",
    "judge_batch",
    "judge_many",
    "load_judge_config",
    "register_parser",
    "resolve_judge_config",
]
