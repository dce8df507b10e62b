"""Verifiable constraint families for the rule-based quadruple builder and the held-out evaluation.

Each family yields a constraint and its *contrast* (a modified version that a response cannot satisfy at
the same time: lowercase vs capitals, at most n words vs at least m, include a word vs avoid it, ...).
A constraint carries its instruction text, a checker, and a rewrite that makes a response satisfy it, so a
response for any set of constraints can be produced from neutral content and then verified.

Families: length (words), keyword (include twice / avoid), case (lower / upper), ending (exact closing
phrase), format (JSON object / exactly k markdown bullets). The checkers mirror IFEval's rules for the same
instruction types (``length_constraints:number_words``, ``keywords:frequency``/``forbidden_words``,
``change_case:*``, ``startend:end_checker``, ``detectable_format:json_format``/``number_bullet_lists``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

WORD = re.compile(r"\b\w+\b")
# Rewrites run in stage order: content first, case next, closing phrase, then the outer format.
STAGES = {"length": 0, "keyword": 1, "case": 2, "ending": 3, "format": 4}
# Families that cannot share one instruction (a closing phrase after a JSON object breaks the JSON).
EXCLUSIVE = {frozenset({"ending", "format"})}


@dataclass(frozen=True)
class Constraint:
    family: str
    kind: str
    text: str
    check: Callable[[str], bool] = field(compare=False, repr=False)
    apply: Callable[[str], str] = field(compare=False, repr=False)
    params: tuple[tuple[str, object], ...] = ()


def words(text: str) -> int:
    return len(WORD.findall(text))


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]


# ---- length ---------------------------------------------------------------------------------------------
def _at_most(n: int) -> Constraint:
    def apply(text: str) -> str:
        kept: list[str] = []
        for s in _sentences(text):
            if words(" ".join([*kept, s])) > n - 8:  # leave room for a closing phrase
                break
            kept.append(s)
        return " ".join(kept) if kept else " ".join(text.split()[: max(n - 8, 3)])

    return Constraint(
        "length", "at_most", f"Answer in at most {n} words.", lambda t: 0 < words(t) <= n, apply, (("n", n),)
    )


def _at_least(n: int, filler: list[str]) -> Constraint:
    def apply(text: str) -> str:
        out, i = text, 0
        while words(out) < n + 4:
            out = f"{out} {filler[i % len(filler)]}"
            i += 1
        return out

    return Constraint(
        "length", "at_least", f"Answer in at least {n} words.", lambda t: words(t) >= n, apply, (("n", n),)
    )


# ---- keyword ---------------------------------------------------------------------------------------------
def _count_word(text: str, word: str) -> int:
    return len(re.findall(rf"\b{re.escape(word)}\b", text, flags=re.IGNORECASE))


def _include(word: str) -> Constraint:
    def apply(text: str) -> str:
        if _count_word(text, word) >= 2:
            return text
        return f"{text} Think of {word} here: {word} is a useful way to picture it."

    return Constraint(
        "keyword",
        "include",
        f'Use the word "{word}" at least twice.',
        lambda t: _count_word(t, word) >= 2,
        apply,
        (("word", word),),
    )


def _avoid(word: str) -> Constraint:
    def apply(text: str) -> str:
        out = re.sub(rf"\s*\b{re.escape(word)}\b", "", text, flags=re.IGNORECASE)
        return re.sub(r"\s{2,}", " ", out).strip()

    return Constraint(
        "keyword",
        "avoid",
        f'Do not use the word "{word}".',
        lambda t: _count_word(t, word) == 0,
        apply,
        (("word", word),),
    )


# ---- case ------------------------------------------------------------------------------------------------
def _has_letters(t: str) -> bool:
    return any(c.isalpha() for c in t)


LOWER = Constraint(
    "case",
    "lower",
    "Write your entire response in lowercase letters; no capital letters are allowed.",
    lambda t: _has_letters(t) and t == t.lower(),
    str.lower,
)
UPPER = Constraint(
    "case",
    "upper",
    "Write your entire response in English capital letters only.",
    lambda t: _has_letters(t) and t == t.upper(),
    str.upper,
)


# ---- ending ----------------------------------------------------------------------------------------------
def _ending(phrase: str) -> Constraint:
    def check(t: str) -> bool:
        return t.strip().strip('"').lower().endswith(phrase.lower())

    def apply(text: str) -> str:
        # keep a case constraint applied earlier intact (the check itself ignores case, like IFEval's)
        tail = phrase.lower() if text == text.lower() else phrase.upper() if text == text.upper() else phrase
        return f"{text.rstrip()} {tail}"

    return Constraint(
        "ending",
        "phrase",
        f'Finish your response with the exact phrase "{phrase}" and write nothing after it.',
        check,
        apply,
        (("phrase", phrase),),
    )


# ---- format ----------------------------------------------------------------------------------------------
def _strip_fence(t: str) -> str:
    t = t.strip()
    t = re.sub(r"^```(?:json|Json|JSON)?\s*", "", t)
    return re.sub(r"\s*```$", "", t).strip()


def _is_json(t: str) -> bool:
    try:
        json.loads(_strip_fence(t))
    except ValueError:
        return False
    return True


JSON_FORMAT = Constraint(
    "format",
    "json",
    "Wrap your entire output in JSON format (one JSON object).",
    _is_json,
    lambda t: json.dumps({"ANSWER" if t == t.upper() else "answer": t}, ensure_ascii=False),
)


def _bullets_in(t: str) -> int:
    return len(re.findall(r"^\s*[*-]\s", t, flags=re.MULTILINE))


def _bullets(k: int) -> Constraint:
    def apply(text: str) -> str:
        parts = _sentences(text)
        while len(parts) < k:
            parts.append(parts[-1] if parts else "More to say.")
        size = -(-len(parts) // k)
        groups = [" ".join(parts[i : i + size]) for i in range(0, len(parts), size)][:k]
        while len(groups) < k:
            groups.append(groups[-1])
        return "\n".join(f"* {g}" for g in groups)

    return Constraint(
        "format",
        "bullets",
        f"Your answer must contain exactly {k} bullet points, using markdown bullets such as:\n* This is a point.",
        lambda t: _bullets_in(t) == k and not _is_json(t),
        apply,
        (("k", k),),
    )


# ---- families --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyValues:
    """Parameter pools. Training and held-out evaluation use disjoint pools (see replicate.py)."""

    word_limits: tuple[int, ...] = (30, 40, 50)
    keywords: tuple[str, ...] = ("river", "garden", "lantern", "harbor", "compass", "meadow")
    phrases: tuple[str, ...] = ("Is there anything else I can help with?", "That is all for now.")
    bullet_counts: tuple[int, ...] = (2, 3, 4)


def contrast_pair(
    family: str, rng: random.Random, values: FamilyValues, filler: list[str]
) -> tuple[Constraint, Constraint]:
    """Two constraints of one family that no response satisfies together, in random order."""
    if family == "length":
        n = rng.choice(values.word_limits)
        pair = (_at_most(n), _at_least(2 * n + 10, filler))
    elif family == "keyword":
        w = rng.choice(values.keywords)
        pair = (_include(w), _avoid(w))
    elif family == "case":
        pair = (LOWER, UPPER)
    elif family == "ending":
        p, q = rng.sample(list(values.phrases), 2)
        pair = (_ending(p), _ending(q))
    elif family == "format":
        if rng.random() < 0.5:
            pair = (JSON_FORMAT, _bullets(rng.choice(values.bullet_counts)))
        else:
            k1, k2 = rng.sample(list(values.bullet_counts), 2)
            pair = (_bullets(k1), _bullets(k2))
    else:
        raise KeyError(f"unknown constraint family {family!r}; known: {', '.join(STAGES)}")
    return pair if rng.random() < 0.5 else (pair[1], pair[0])


def pick_families(rng: random.Random, k: int) -> list[str]:
    families = list(STAGES)
    while True:
        chosen = rng.sample(families, k)
        if not any(pair <= set(chosen) for pair in EXCLUSIVE):
            return chosen


def render(content: str, constraints: list[Constraint]) -> str:
    """Rewrite neutral content so that it satisfies the constraints (in stage order)."""
    out = content
    for c in sorted(constraints, key=lambda c: STAGES[c.family]):
        out = c.apply(out)
    return out


def satisfied(response: str, constraints: list[Constraint]) -> list[bool]:
    return [bool(c.check(response)) for c in constraints]
