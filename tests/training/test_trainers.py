"""The trainers on a tiny random Qwen2: lean == naive gradients, precomputed == on-the-fly reference,
parameters move, a golden loss trajectory, and a checkpoint that reloads."""

from __future__ import annotations

import json

import pytest
import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer

from iopo_eval.training.dpo_config import DPOConfig
from iopo_eval.training.dpo_trainer import DPOTrainer
from iopo_eval.training.iopo_config import IOPOConfig
from iopo_eval.training.iopo_trainer import IOPOTrainer
from iopo_eval.training.sft_config import SFTConfig
from iopo_eval.training.sft_trainer import SFTTrainer
from iopo_eval.training.toy_models import random_model

COMMON = dict(
    use_cpu=True, disable_tqdm=True, report_to="none", warmup_steps=0, logging_steps=1, save_strategy="no"
)


def _grads_after_step(trainer, batch) -> list[torch.Tensor]:
    trainer.model.zero_grad(set_to_none=True)
    trainer.current_gradient_accumulation_steps = 1
    trainer.training_step(trainer.model, dict(batch))
    return [p.grad.detach().clone() for p in trainer.model.parameters() if p.requires_grad]


@pytest.mark.parametrize(
    ("trainer_cls", "config_cls", "extra", "variants"),
    [
        (IOPOTrainer, IOPOConfig, {"pref_ftx": 0.3}, [(2, "recompute"), (1, "recompute")]),
        (IOPOTrainer, IOPOConfig, {"label_smoothing": 0.1}, [(1, "recompute"), (1, "accumulate")]),
        (DPOTrainer, DPOConfig, {}, [(1, "recompute"), (1, "accumulate")]),
    ],
)
def test_lean_gradient_equals_all_at_once(
    tmp_path, tokenizer, quads, trainer_cls, config_cls, extra, variants
) -> None:
    # float64 so that "exact" can be checked tightly: the lean steps only reorder floating-point sums
    model = random_model("tiny", vocab_size=len(tokenizer), seed=1).double()
    args = config_cls(output_dir=str(tmp_path), per_device_train_batch_size=3, beta=0.5, **extra, **COMMON)
    # a different reference network, so that the loss weights are not all equal
    ref = random_model("tiny", vocab_size=len(tokenizer), seed=2).double()
    trainer = trainer_cls(model, args, quads(3), tokenizer, ref_model=ref)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    naive = _grads_after_step(trainer, batch)
    for spb, strategy in variants:
        trainer.args.sequences_per_backward = spb
        trainer.args.lean_strategy = strategy
        assert trainer._lean_strategy(trainer.model) == strategy
        lean = _grads_after_step(trainer, batch)
        for a, b in zip(naive, lean, strict=True):
            # Qwen2's RMSNorm runs in float32 even in a float64 model, so regrouping the rows (and, for
            # accumulate, scaling by c after the backward instead of before it) shows at float32 precision:
            # exactly 0 with some thread counts, ~3e-6 relative with one thread. A wrong gradient is off by O(1).
            atol = (1e-6 if strategy == "recompute" else 1e-5) * a.abs().max().item()
            torch.testing.assert_close(
                b, a, rtol=1e-9, atol=atol, msg=lambda m, s=spb, k=strategy: f"{s} {k}: {m}"
            )
    assert any(g.abs().sum() > 0 for g in naive)


def test_accumulate_adds_to_earlier_gradients_and_auto_picks_it_for_lora(tmp_path, tokenizer, quads) -> None:
    lora = LoraConfig(r=4, target_modules="all-linear")
    args = IOPOConfig(
        output_dir=str(tmp_path), per_device_train_batch_size=2, sequences_per_backward=1, **COMMON
    )
    trainer = IOPOTrainer(
        random_model("small", vocab_size=len(tokenizer)), args, quads(2), tokenizer, peft_config=lora
    )
    assert trainer._lean_strategy(trainer.model) == "accumulate"  # LoRA: few trainable parameters
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.args.lean_strategy = "recompute"
    once = _grads_after_step(trainer, batch)
    trainer.current_gradient_accumulation_steps = 1
    trainer.training_step(trainer.model, dict(batch))  # a second micro-step on top (gradient accumulation)
    trainer.args.lean_strategy = "accumulate"
    trainer.training_step(trainer.model, dict(batch))
    twice = [p.grad for p in trainer.model.parameters() if p.requires_grad]
    for a, b in zip(once, twice, strict=True):
        torch.testing.assert_close(b, 3 * a, rtol=1e-4, atol=1e-7)


def test_precomputed_reference_equals_on_the_fly(tmp_path, tokenizer, quads) -> None:
    lora = LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")
    cfg = dict(
        output_dir=str(tmp_path / "o"), per_device_train_batch_size=2, precompute_ref_batch_size=3, **COMMON
    )
    live = IOPOTrainer(random_model("tiny", vocab_size=len(tokenizer)), IOPOConfig(**cfg), quads(5), tokenizer,
                       peft_config=lora)  # fmt: skip
    pre_args = IOPOConfig(**cfg, precompute_ref_log_probs=True, ref_cache_dir=str(tmp_path / "cache"))
    pre = IOPOTrainer(random_model("tiny", vocab_size=len(tokenizer)), pre_args, quads(5), tokenizer,
                      peft_config=lora)  # fmt: skip
    cached = list((tmp_path / "cache").glob("*.pt"))
    assert len(cached) == 1
    for i in range(5):
        batch = live.data_collator([live.train_dataset[i]])
        on_the_fly = live.reference_logps_of(batch)[0]
        torch.testing.assert_close(
            torch.tensor(pre.train_dataset[i]["ref_logps"]), on_the_fly, rtol=1e-5, atol=1e-5
        )
    # a second trainer on the same data and reference reads the cache instead of recomputing
    again = IOPOTrainer(
        random_model("tiny", vocab_size=len(tokenizer)), pre_args, quads(5), tokenizer, peft_config=lora
    )
    assert again.reference_cache_key == pre.reference_cache_key
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1
    # other data -> other key
    other = IOPOTrainer(
        random_model("tiny", vocab_size=len(tokenizer)), pre_args, quads(4), tokenizer, peft_config=lora
    )
    assert other.reference_cache_key != pre.reference_cache_key


# Loss after each of 4 optimizer steps of IOPO (full fine-tuning, frozen-copy reference, lean 1 sequence at a
# time), tiny Qwen2 seed 0, lr 1e-2, β 0.5, batch 2. Regenerate only on a deliberate change of the method.
GOLDEN_IOPO = [0.6931471824645996, 0.047962337732315063, 0.726201057434082, 0.019816067069768906]


def test_golden_iopo_trajectory_and_parameters_change(tmp_path, tokenizer, quads) -> None:
    torch.use_deterministic_algorithms(True)
    try:
        model = random_model("tiny", vocab_size=len(tokenizer), seed=0)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        args = IOPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, max_steps=4, learning_rate=1e-2,
                          beta=0.5, seed=0, lr_scheduler_type="constant", sequences_per_backward=1, **COMMON)  # fmt: skip
        trainer = IOPOTrainer(model, args, quads(8), tokenizer)
        trainer.train()
    finally:
        torch.use_deterministic_algorithms(False)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses == pytest.approx(GOLDEN_IOPO, abs=2e-4)
    changed = [n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert len(changed) == len(before)
    # the frozen reference did not move
    for n, p in trainer.ref_model.named_parameters():
        assert torch.equal(p.detach(), before[n])


def test_sft_then_checkpoint_loads_with_card(tmp_path, tokenizer, quads) -> None:
    model = random_model("tiny", vocab_size=len(tokenizer), seed=0)
    args = SFTConfig(output_dir=str(tmp_path / "run"), per_device_train_batch_size=2, max_steps=2,
                     learning_rate=1e-2, **COMMON)  # fmt: skip
    trainer = SFTTrainer(
        model, args, quads(2), tokenizer, peft_config=LoraConfig(r=4, target_modules="all-linear")
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[1] < losses[0]
    out = trainer.save_final(tmp_path / "final")
    info = json.loads((out / "training_info.json").read_text())
    assert info["method"] == "sft" and info["lora_merged"] and len(info["data_fingerprint"]) == 64
    assert info["data_fingerprint"] in (out / "README.md").read_text()
    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in n for n, _ in loaded.named_parameters())
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_tensors="pt"
    )
    ids = ids["input_ids"] if not isinstance(ids, torch.Tensor) else ids
    with torch.no_grad():
        merged = trainer.model(input_ids=ids).logits
        assert torch.allclose(loaded(input_ids=ids).logits, merged, atol=1e-5)
