"""The chunked log-prob head against the full log-softmax, and the collator's layout and truncation."""

from __future__ import annotations

import torch

from iopo_eval.training.collator import SequenceCollator, shared_budget, tokenize_example, truncate
from iopo_eval.training.logprobs import install_logprob_forward, reference_logps_full_softmax, sequence_logps


def _batch(tokenizer, quads, n=3):
    rows = [tokenize_example(q, tokenizer, max_length=None) for q in quads(n)]
    return SequenceCollator(tokenizer.pad_token_id)(rows)


def test_chunked_logps_match_full_softmax_and_gradients(tokenizer, model, quads) -> None:
    batch = _batch(tokenizer, quads)
    expected = reference_logps_full_softmax(
        model, batch["input_ids"], batch["attention_mask"], batch["labels"]
    )
    grads_full = torch.autograd.grad(expected.sum(), list(model.parameters()))
    install_logprob_forward(model, chunk_size=5)  # several chunks per batch
    got, counts = sequence_logps(model, batch["input_ids"], batch["attention_mask"], batch["labels"])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == (batch["labels"][:, 1:] != -100).sum(dim=1).tolist()
    grads_chunked = torch.autograd.grad(got.sum(), list(model.parameters()))
    for a, b in zip(grads_full, grads_chunked, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # generation path untouched, also on a deep copy (the frozen-reference path), which uses its own weights
    assert model(input_ids=batch["input_ids"][:1]).logits.shape[-1] == len(tokenizer)
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(0.5)
    assert not torch.allclose(
        twin(input_ids=batch["input_ids"][:1]).logits, model(input_ids=batch["input_ids"][:1]).logits
    )
    twin_logps, _ = sequence_logps(twin, batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert not torch.allclose(twin_logps, got)


def test_collator_is_sequence_major_with_masked_prompts(tokenizer, quads) -> None:
    rows = [tokenize_example(q, tokenizer, max_length=None) for q in quads(2)]
    batch = SequenceCollator(tokenizer.pad_token_id)(rows)
    assert batch["input_ids"].shape[0] == 8
    for k in range(4):
        for b in range(2):
            p, r = rows[b]["sequences"][k]
            row = k * 2 + b
            assert batch["input_ids"][row, : len(p) + len(r)].tolist() == p + r
            assert batch["labels"][row, : len(p)].eq(-100).all()
            assert batch["labels"][row, len(p) : len(p) + len(r)].tolist() == r
    # the four sequences pair x1,y1 / x1,y2 / x2,y2 / x2,y1: shared prompts and shared responses
    s = rows[0]["sequences"]
    assert s[0][0] == s[1][0] and s[2][0] == s[3][0] and s[0][1] == s[3][1] and s[1][1] == s[2][1]
    assert tokenizer.decode(s[0][1]).endswith("<|im_end|>\n")


def test_shared_truncation() -> None:
    assert shared_budget(10, 10, 100) == (10, 10)
    assert shared_budget(80, 10, 50) == (40, 10)  # short response kept whole
    assert shared_budget(10, 80, 50) == (10, 40)  # short prompt kept whole
    assert shared_budget(60, 60, 50) == (25, 25)
    seqs = [(list(range(30)), list(range(100, 140))), (list(range(20)), list(range(200, 260)))]
    out = truncate(seqs, 50)
    assert all(len(p) + len(r) <= 50 for p, r in out)
    assert out[0][0][-1] == 29  # prompts keep their end
    assert out[1][1][0] == 200  # responses keep their start
    assert len(out[0][1]) == len(out[1][1][: len(out[0][1])])
