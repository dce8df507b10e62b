"""``--dry-run``: what a build would ask and cost, without a call.

The expansion step's prompts are exact (they depend only on the seeds). Later steps depend on replies
not yet made, so they are estimated on stand-in items: each seed with its drawn number of constraints
filled by placeholder text of typical length in the seed's script, ``--candidates`` responses per
instruction, and every item assumed to survive every step (an upper bound on calls). Prompt tokens come
from the engine's own dry run (tiktoken when available); reply tokens from the per-step expectations
below, capped at the config's ``max_tokens``; cached requests (a resumed build) cost nothing.
"""

from __future__ import annotations

import re
from typing import Any

from iopo_eval.judges.cache import JudgeCache
from iopo_eval.judges.engine import judge_batch
from iopo_eval.training.databuild.items import BuildItem
from iopo_eval.training.databuild.llm import engine_request
from iopo_eval.training.databuild.pipeline import BuildSettings, Prepared, Runner
from iopo_eval.training.databuild.steps import STEPS

# Expected reply tokens of generator steps: (fixed, per constraint). Responses: RESPONSE_TOKENS.
REPLY_TOKENS = {"expand": (80, 70), "structure": (40, 40), "quality": (40, 10), "rewrite": (60, 0)}
RESPONSE_TOKENS = 400
_CJK = re.compile(r"[\u3400-\u9fff]")


def stand_in(item: BuildItem, candidates: int) -> BuildItem:
    cjk = bool(_CJK.search(item.seed))
    constraint = (
        "请在回答中满足这一条具体而且可以检查的要求。"
        if cjk
        else "Follow this specific requirement that a reader can check in the response text."
    )
    response = (
        ("这是一段用于估算长度的回答文字。" * 28)
        if cjk
        else ("This is a stand-in response used to estimate length. " * 30)
    )
    cons = [{"dimension": d, "constraint": f"{constraint} {i}"} for i, d in enumerate(item.dimensions, 1)]
    scores = [10.0] * len(cons)
    return BuildItem(
        item.id, item.seed, item.seed_fields, item.target_n, item.dimensions,
        expanded=item.seed + "\n" + "\n".join(c["constraint"] for c in cons), added=cons,
        description=item.seed, constraints=cons,
        candidates=[{"text": f"{response}{k}", "scores": scores} for k in range(candidates)], chosen=0,
        x2={"constraints": cons, "operation": "change", "index": 1, "old": cons[0], "new": cons[0]},
        candidates2=[{"text": f"{response}x{k}", "scores": scores} for k in range(candidates)], chosen2=0,
    )  # fmt: skip


def estimate_build(settings: BuildSettings, prepared: Prepared, cache: JudgeCache) -> dict[str, Any]:
    runner = Runner(settings, prepared, cache)
    ctx = prepared.ctx
    items = [i for i in prepared.items if not ctx.contamination or not ctx.contamination(i.seed)]
    seeds_dropped = len(prepared.items) - len(items)
    stand_ins = [stand_in(i, settings.candidates) for i in items]
    steps: dict[str, dict[str, Any]] = {}
    for step in STEPS:
        if step.role == "local":
            continue
        source = items if step.name == "expand" else stand_ins
        asks = [a for item in source for a in step.requests(item, ctx)]
        row: dict[str, Any] = {
            "requests": len(asks),
            "cached": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "usd": 0.0,
            "usd_upper_bound": 0.0,
        }
        for variant in sorted({a.variant for a in asks}):
            chosen = [a for a in asks if a.variant == variant]
            config = runner._config(step, variant)
            run = judge_batch(
                [engine_request(a) for a in chosen], config, cache, dry_run=True, progress=False
            )
            est = run.estimate
            assert est is not None
            if step.role == "llm":
                fixed, per = REPLY_TOKENS.get(step.name, (RESPONSE_TOKENS, 0))
                by_key = {a.key: a for a in chosen}
                todo = [o for o in run.outcomes if o.status == "skipped"]
                completion = sum(min(config.max_tokens, fixed + per * by_key[o.key].n_expected) for o in todo)
            else:
                completion = est.completion_tokens
            row["cached"] += run.cache_hits
            row["prompt_tokens"] += est.prompt_tokens
            row["completion_tokens"] += completion
            row["usd"] += config.price.cost(est.prompt_tokens, completion)
            row["usd_upper_bound"] += est.usd_upper_bound
            row["token_count"] = est.method
        steps[step.name] = row
    total = {
        k: sum(r[k] for r in steps.values())
        for k in ("requests", "cached", "prompt_tokens", "completion_tokens", "usd", "usd_upper_bound")
    }
    return {
        "dry_run": True,
        "items": len(items),
        "seeds_dropped_by_decontamination": seeds_dropped,
        "steps": steps,
        "total": total,
        "assumes": "exact prompts for expand; later steps on stand-in items that all survive (an upper bound on "
        "requests); reply tokens from per-step expectations; usd_upper_bound: every reply at max_tokens",
    }
