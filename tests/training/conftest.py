from __future__ import annotations

import pytest

from iopo_eval.training.data import Quadruple
from iopo_eval.training.toy_models import random_model, tiny_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    return tiny_tokenizer()


@pytest.fixture
def model(tokenizer):
    return random_model("tiny", vocab_size=len(tokenizer), seed=0)


def _quads(n: int = 4) -> list[Quadruple]:
    out = []
    for i in range(n):
        out.append(
            Quadruple(
                x1=[{"role": "user", "content": f"Write about topic {i} in lowercase."}],
                x2=[{"role": "user", "content": f"Write about topic {i} in UPPERCASE, with more words."}],
                y1=f"the sea {i} is calm" + " and blue" * (i % 3),
                y2=f"THE SEA {i} IS CALM AND WIDE" + " TODAY" * (i % 2),
                id=f"q{i}",
            )
        )
    return out


@pytest.fixture(scope="session")
def quads():
    """make_quads(n): n small quadruples whose x1/y1 and x2/y2 differ in case and length."""
    return _quads
