"""A scripted generator and judge for ``iopo-eval train build-data`` behind the loopback OpenAI server.

It answers every step of the build from the request alone, deterministically (hashes of the text, the
sampling seed and, for faults, how often the same request was seen), so that tests and
``benchmarks/build_data.py`` exercise the whole pipeline without a model:

- expansion: one marked constraint per asked dimension; ``unusable_rate`` of seeds are refused;
- structuring: recovers the constraints from the expanded text;
- quality control: ``qc_drop_rate`` dropped (conflicting), ``qc_fix_rate`` fixed (one constraint reworded);
- rewrite: changes (or removes) the constraint at a hashed index;
- responses: a response *follows* a constraint with probability ``follow_rate`` and then carries the mark
  ``[ok:<hash of the constraint>]``; the judge gives 10 exactly to the constraints whose mark it finds,
  so cross judgements behave as with a consistent judge (a y1 written for x1 lacks the changed
  constraint's mark and fails x2);
- ``garbage_rate``: the first time a request is seen, that share of replies is not JSON (the engine asks
  again and the second answer parses).

Steps are told apart by the reply format the request asks for (the JSON schema's name or its keys).
``python -m iopo_eval.testing.build_replies --port 8765`` serves it (an offline demo without a model).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from iopo_eval.testing.upstream_replies import is_trace_upstream, read_trace_prompt, trace_reply

_BLOCK = r"<{name}-([0-9a-f]{{16}})>\n(.*?)\n</{name}-\1>"
_NUMBERED = re.compile(r"^\s*(\d+)\.\s+(.*)$")


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()[:8], "big")


def _u(*parts: object) -> float:
    return _h(*parts) / 2**64


def mark(constraint: str) -> str:
    return f"[ok:{_h(constraint.strip()) % 16**8:08x}]"


def block(prompt: str, name: str) -> str:
    match = re.search(_BLOCK.format(name=name), prompt, flags=re.DOTALL)
    if match is None:
        raise ValueError(f"no <{name}-nonce> block in the prompt")
    return match.group(2)


def numbered(text: str) -> list[str]:
    return [m.group(2).strip() for line in text.splitlines() if (m := _NUMBERED.match(line))]


def bare(constraint: str) -> str:
    """A constraint without the "N. " of TRACE's row schema (the judge's template may number it again)."""
    return _NUMBERED.sub(r"\2", constraint).strip()


def step_of(request: dict[str, Any]) -> str:
    fmt = request.get("response_format") or {}
    name = ((fmt.get("json_schema") or {}).get("name") or "").split("@")[0]
    if name:
        return {"trace_scores": "judge"}.get(name, name.removeprefix("build_").removesuffix("_v1"))
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema") or {}
    props = set((schema.get("properties") or {}).keys())
    for key, step in (
        ("usable", "expand"),
        ("verdict", "quality"),
        ("operation", "rewrite"),
        ("description", "structure"),
    ):
        if key in props:
            return step
    if "constraints" in props:
        return "judge"
    return "respond"


@dataclass
class ScriptedBuilder:
    follow_rate: float = 0.9
    unusable_rate: float = 0.02
    qc_drop_rate: float = 0.05
    qc_fix_rate: float = 0.1
    garbage_rate: float = 0.0
    # step -> function(request) returning a reply text, or None to answer as scripted
    overrides: dict[str, Callable[[dict[str, Any]], str | None]] = field(default_factory=dict)
    seen: Counter[str] = field(default_factory=Counter)
    by_step: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: dict[str, Any]) -> str:
        prompt = request["messages"][-1]["content"]
        # The default TRACE judge asks in upstream's prompt and free-text format (no response schema).
        step = "judge" if is_trace_upstream(prompt) else step_of(request)
        body_key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self.by_step[step] += 1
            self.seen[body_key] += 1
            first = self.seen[body_key] == 1
        override = self.overrides.get(step)
        if override is not None:
            reply = override(request)
            if reply is not None:
                return reply
        if first and self.garbage_rate and _u("garbage", body_key) < self.garbage_rate:
            return "Sorry, I cannot answer in JSON right now."
        return getattr(self, f"_{step}")(prompt, request)

    # --- steps --------------------------------------------------------------------------------------
    def _expand(self, prompt: str, request: dict[str, Any]) -> str:
        seed = block(prompt, "seed").strip()
        dims = re.findall(r"^- ([a-z0-9_]+) — ", prompt.split("Dimensions to use", 1)[1], flags=re.MULTILINE)
        if _u("unusable", seed) < self.unusable_rate:
            return json.dumps({"usable": False, "reason": "scripted refusal", "instruction": "", "added": []})
        added = [
            {
                "dimension": d,
                "constraint": f"Respect the {d.replace('_', ' ')} requirement number {_h(seed, d) % 10**6}.",
            }
            for d in dims
        ]
        text = (
            seed + "\nRequirements:\n" + "\n".join(f"- [{a['dimension']}] {a['constraint']}" for a in added)
        )
        return json.dumps({"usable": True, "reason": "", "instruction": text, "added": added})

    def _structure(self, prompt: str, request: dict[str, Any]) -> str:
        text = block(prompt, "instruction")
        head, _, tail = text.partition("\nRequirements:\n")
        constraints = []
        for line in tail.splitlines():
            match = re.match(r"- \[([a-z0-9_]+)\] (.*)", line)
            if match:
                constraints.append({"dimension": match.group(1), "constraint": match.group(2)})
        return json.dumps({"description": head.strip(), "input": "", "constraints": constraints})

    def _quality(self, prompt: str, request: dict[str, Any]) -> str:
        lines = numbered(block(prompt, "constraints"))
        u = _u("quality", *lines)
        if u < self.qc_drop_rate and len(lines) >= 2:
            issue = {"index": 2, "kind": "conflicting", "note": "scripted conflict"}
            return json.dumps({"issues": [issue], "verdict": "drop", "constraints": []})
        if u < self.qc_drop_rate + self.qc_fix_rate:
            fixed = []
            for i, line in enumerate(lines):
                match = re.match(r"(.*) \[([a-z0-9_]+)\]$", line)
                assert match is not None
                text = match.group(1) + (" Be precise." if i == len(lines) - 1 else "")
                fixed.append({"dimension": match.group(2), "constraint": text})
            issue = {"index": len(lines), "kind": "incomplete", "note": "scripted fix"}
            return json.dumps({"issues": [issue], "verdict": "fix", "constraints": fixed})
        return json.dumps({"issues": [], "verdict": "keep", "constraints": []})

    def _rewrite(self, prompt: str, request: dict[str, Any]) -> str:
        lines = numbered(block(prompt, "constraints"))
        operation = "remove" if "Operation to apply: remove" in prompt else "change"
        index = 1 + _h("rewrite", *lines) % len(lines)
        new = (
            ""
            if operation == "remove"
            else f"{lines[index - 1]} Do the opposite, variant {_h(*lines) % 997}."
        )
        return json.dumps({"reason": "scripted", "index": index, "operation": operation, "constraint": new})

    def _respond(self, prompt: str, request: dict[str, Any]) -> str:
        constraints = numbered(prompt.split("# Inputs:", 1)[0])
        seed = request.get("seed")
        marks = [mark(c) for c in constraints if _u("follow", c, seed, prompt) < self.follow_rate]
        return f"A scripted answer (sample {seed}). " + " ".join(marks)

    def _judge_upstream(self, prompt: str, request: dict[str, Any]) -> str:
        asked = read_trace_prompt(prompt)
        splits = [line for line in asked.constraints.splitlines() if line.strip()]
        scores = [self._score(bare(s), asked.response) for s in splits]
        return trace_reply(splits, scores)

    def _score(self, constraint: str, response: str) -> float:
        return 10 if mark(constraint) in response else (_h("score", constraint, response) % 20) / 2

    def _judge(self, prompt: str, request: dict[str, Any]) -> str:
        if is_trace_upstream(prompt):
            return self._judge_upstream(prompt, request)
        constraints = [bare(c) for c in numbered(block(prompt, "constraints"))]
        response = block(prompt, "response")
        entries: list[dict[str, Any]] = []
        for i, c in enumerate(constraints, start=1):
            score = self._score(c, response)
            entries.append({"index": i, "reason": "scripted", "score": score})
        return json.dumps({"constraints": entries, "overall": min(e["score"] for e in entries)})


def main(argv: list[str] | None = None) -> int:
    """Serve the scripted generator and judge on 127.0.0.1 (prints the port; runs until stdin closes)."""
    import argparse
    import contextlib
    import sys

    from iopo_eval.testing.openai_server import OpenAIServer

    p = argparse.ArgumentParser(description="Scripted generator and judge for `iopo-eval train build-data`.")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    p.add_argument(
        "--follow-rate", type=float, default=0.9, help="chance that a response follows a constraint"
    )
    args = p.parse_args(argv)
    with OpenAIServer(
        ScriptedBuilder(follow_rate=args.follow_rate), latency_s=args.latency, port=args.port
    ) as srv:
        print(srv.port, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            sys.stdin.read()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
