"""A small judge stage over the real engine, run as its own process by crash and concurrency tests.

It reads saved responses (a ``trace.generations.jsonl``: one ``{"id", "response"}`` per line), builds
the TRACE judge requests for them from the data mirror, judges them with ``judge_batch`` into a SQLite
cache, and writes one line per item (key, status, scores, cached, attempts) to ``--out``. It imports
no lm-eval, so it starts fast enough to be killed and restarted many times in a test.

    python -m iopo_eval.testing.judge_driver --generations G --config judge.yaml --base-url URL \\
        --cache C --out OUT [--concurrency N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from iopo_eval.data.trace import load_trace
from iopo_eval.judges import JudgeCache, JudgeRequest, judge_batch, load_judge_config
from iopo_eval.scoring.trace import judge_request


def requests_from(generations: Path) -> list[JudgeRequest]:
    items = {item.id: item for item in load_trace()}
    requests = []
    for line in generations.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            requests.append(judge_request(items[str(row["id"])], row["response"]))
    return requests


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generations", type=Path, required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--base-url", required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--concurrency", type=int)
    args = p.parse_args(argv)
    config = load_judge_config(args.config).with_overrides(base_url=args.base_url)
    requests = requests_from(args.generations)
    with JudgeCache(args.cache) as cache:
        run = judge_batch(
            requests, config.with_overrides(concurrency=args.concurrency), cache, progress=False
        )
    with args.out.open("w", encoding="utf-8") as fh:
        for o in run.outcomes:
            row = {"key": o.key, "status": o.status, "scores": o.scores, "overall": o.overall}
            row.update(cached=o.cached, attempts=o.attempts, error_kind=o.error_kind)
            fh.write(json.dumps(row) + "\n")
    print(json.dumps({"calls": run.calls, "cache_hits": run.cache_hits, "judged": run.judged}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
