"""Rule-based quadruple builder: no LLM, every pair labelled by checkers.

An instruction is a task ("Write a short note about {topic}.") plus 2–3 numbered constraints from different
families (constraints.py), in TRACE's layout. x2 is x1 with one or more constraints replaced by their
contrast. y1 and y2 are the *same* neutral content rewritten to satisfy x1 and x2 respectively, so the
responses differ exactly in what the constraints ask for. A quadruple is kept only if the checkers agree:
y1 satisfies every constraint of x1 and fails x2, and y2 satisfies x2 and fails x1.

Content comes from a small bank of topic-neutral sentences written for this purpose, shuffled per
example (so a builder run is reproducible from its seed and needs nothing but this file).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from iopo_eval.training.constraints import (
    Constraint,
    FamilyValues,
    contrast_pair,
    pick_families,
    render,
    satisfied,
)
from iopo_eval.training.data import Quadruple

TASKS = (
    "Write a short note about {topic}.",
    "Explain {topic} to a friend who has never thought about it.",
    "Give some practical advice about {topic}.",
    "Describe why {topic} matters to many people.",
    "Write a brief reflection on {topic}.",
)

TRAIN_TOPICS = (
    "learning to cook", "saving money", "morning routines", "learning a new language", "keeping a journal",
    "public transport", "growing tomatoes", "team meetings", "reading before bed", "writing letters",
    "taking short walks", "cleaning a small flat", "planning a trip", "learning to swim", "volunteering",
    "drinking enough water", "studying for exams", "riding a bicycle", "making friends in a new city",
    "caring for a dog", "painting as a hobby", "fixing a bike tyre", "baking bread", "starting to run",
)  # fmt: skip
HELDOUT_TOPICS = (
    "playing chess", "recycling at home", "working from home", "learning to type", "visiting museums",
    "sleeping well", "birdwatching", "camping with children", "budgeting for groceries", "learning guitar",
    "composting", "writing a resume", "stretching after exercise", "choosing a used car", "knitting",
    "organising a bookshelf",
)  # fmt: skip

CONTENT = (
    "{Topic} is something many people think about at some point.",
    "At its core, {topic} is about making small choices that fit your situation.",
    "A good first step is to learn the basic ideas and to start slowly.",
    "People often underestimate how much steady practice it takes.",
    "Small habits, repeated over time, make a real difference.",
    "It also helps to talk with others who have tried it before.",
    "Mistakes are normal, and each one teaches something useful.",
    "Over time the effort usually pays off in clear ways.",
    "Keeping a few notes makes it easier to see your progress.",
    "In the end, patience matters more than speed.",
    "Setting one simple goal for the week keeps things manageable.",
    "Most people find that the hardest part is simply getting started.",
)
FILLER = [
    "There is always more to learn, and that is part of the fun.",
    "Each small step adds up over the weeks and months.",
    "Sharing what you learn with others can help you remember it.",
    "A calm and steady approach tends to work best for most people.",
    "Looking back after a month often shows surprising progress.",
]


def instruction(task: str, constraints: list[Constraint]) -> str:
    lines = [task] + [f"{i}. {c.text}" for i, c in enumerate(constraints, start=1)]
    return "\n".join(lines) + "\n"


def neutral_content(topic: str, rng: random.Random, n_sentences: int = 6) -> str:
    picked = rng.sample(CONTENT, n_sentences)
    return " ".join(s.format(topic=topic, Topic=topic[:1].upper() + topic[1:]) for s in picked)


@dataclass
class RuleItem:
    """One instruction with its constraints (used for held-out evaluation and for building quadruples)."""

    id: str
    prompt: str
    constraints: list[Constraint]


def sample_item(
    rng: random.Random, topics: tuple[str, ...], values: FamilyValues, n_constraints: int, item_id: str
) -> tuple[RuleItem, str, list[tuple[Constraint, Constraint]], str]:
    topic = rng.choice(topics)
    task = rng.choice(TASKS).format(topic=topic)
    families = pick_families(rng, n_constraints)
    pairs = [contrast_pair(f, rng, values, FILLER) for f in families]
    item = RuleItem(item_id, instruction(task, [a for a, _ in pairs]), [a for a, _ in pairs])
    return item, task, pairs, topic


def build_quadruples(
    n: int,
    seed: int = 0,
    topics: tuple[str, ...] = TRAIN_TOPICS,
    values: FamilyValues | None = None,
    constraints_per_instruction: tuple[int, ...] = (2, 3),
    max_tries: int = 20,
) -> list[Quadruple]:
    """``n`` checker-verified quadruples (fewer only if ``max_tries·n`` samples cannot produce them)."""
    rng = random.Random(seed)
    values = values or FamilyValues()
    out: list[Quadruple] = []
    tries = 0
    while len(out) < n and tries < max_tries * n:
        tries += 1
        k = rng.choice(constraints_per_instruction)
        item, task, pairs, topic = sample_item(rng, topics, values, k, f"rule-{seed}-{len(out)}")
        c1 = [a for a, _ in pairs]
        flip = set(rng.sample(range(k), rng.randint(1, k)))
        c2 = [b if i in flip else a for i, (a, b) in enumerate(pairs)]
        content = neutral_content(topic, rng)
        y1, y2 = render(content, c1), render(content, c2)
        if not (all(satisfied(y1, c1)) and all(satisfied(y2, c2))):
            continue
        if all(satisfied(y1, c2)) or all(satisfied(y2, c1)):
            continue
        x1 = [{"role": "user", "content": item.prompt}]
        x2 = [{"role": "user", "content": instruction(task, c2)}]
        out.append(Quadruple(x1, x2, y1, y2, item.id))
    return out


def heldout_items(n: int, seed: int = 1000, values: FamilyValues | None = None) -> list[RuleItem]:
    """Evaluation instructions on topics and parameter values the training builder never uses."""
    rng = random.Random(seed)
    values = values or HELDOUT_VALUES
    return [sample_item(rng, HELDOUT_TOPICS, values, rng.choice((2, 3)), f"heldout-{i}")[0] for i in range(n)]


TRAIN_VALUES = FamilyValues()
HELDOUT_VALUES = FamilyValues(
    word_limits=(35, 45, 60),
    keywords=("window", "bridge", "candle", "forest"),
    phrases=("Let me know if you have additional questions.", "Thank you for reading."),
    bullet_counts=(3, 5),
)
