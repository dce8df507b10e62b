"""The step plan agrees with the Trainer: its step counts, and the examples a short run visits, which are
the only ones whose reference log-probs are precomputed."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig

from iopo_eval.training.iopo_config import IOPOConfig
from iopo_eval.training.iopo_trainer import IOPOTrainer
from iopo_eval.training.sampling import StepPlan, epoch_order
from iopo_eval.training.toy_models import random_model

COMMON = dict(use_cpu=True, disable_tqdm=True, report_to="none", save_strategy="no", logging_steps=1)


def _trainer(tmp_path, tokenizer, quads, n, **cfg):
    args = IOPOConfig(output_dir=str(tmp_path / "o"), ref_cache_dir=str(tmp_path / "ref"), **COMMON, **cfg)
    lora = LoraConfig(r=2, target_modules="all-linear")
    model = random_model("tiny", vocab_size=len(tokenizer))
    return IOPOTrainer(model, args, quads(n), tokenizer, peft_config=lora)


@pytest.mark.parametrize(
    ("n", "batch", "accum", "max_steps", "epochs"),
    [(7, 2, 1, -1, 2.0), (7, 2, 3, -1, 1.0), (9, 1, 2, 3, 1.0), (5, 4, 1, -1, 0.5), (8, 3, 2, 10, 3.0)],
)
def test_plan_matches_the_trainer(tmp_path, tokenizer, quads, n, batch, accum, max_steps, epochs) -> None:
    trainer = _trainer(tmp_path, tokenizer, quads, n, per_device_train_batch_size=batch,
                       gradient_accumulation_steps=accum, max_steps=max_steps, num_train_epochs=epochs)  # fmt: skip
    values = trainer.set_initial_training_values(trainer.args, trainer.get_train_dataloader())
    plan = trainer.step_plan()
    assert (plan.steps_per_epoch, plan.total_steps) == (values[1], values[-1])


def test_a_short_run_visits_exactly_the_planned_examples(tmp_path, tokenizer, quads) -> None:
    trainer = _trainer(tmp_path, tokenizer, quads, 9, per_device_train_batch_size=2,
                       gradient_accumulation_steps=2, max_steps=2)  # fmt: skip
    plan = trainer.step_plan()
    for i, row in enumerate(trainer.train_dataset.rows):
        row["ref_logps"] = [float(i)] * 4  # marks which example a batch holds
    loader = trainer.get_train_dataloader()
    loader.set_epoch(0)
    visited = []
    for k, batch in enumerate(loader):
        if k == plan.total_steps * plan.grad_accum:
            break
        visited += batch["ref_logps"][:, 0].long().tolist()
    assert sorted(visited) == plan.seen_indices(trainer.data_seed)
    assert len(visited) == 8 and visited == epoch_order(9, trainer.data_seed, 0)[:8]


def test_reference_only_for_seen_examples_and_the_cache_grows(tmp_path, tokenizer, quads) -> None:
    short = _trainer(tmp_path, tokenizer, quads, 8, per_device_train_batch_size=2, max_steps=1,
                     precompute_ref_log_probs=True)  # fmt: skip
    assert short.reference_seen == 2
    computed = [
        i
        for i, r in enumerate(short.train_dataset.rows)
        if torch.isfinite(torch.tensor(r["ref_logps"])).all()
    ]
    assert computed == short.step_plan().seen_indices(short.data_seed)
    short.train()  # every visited example has its values (an unplanned one would stop the step)
    # a longer run over the same data computes the rest and keeps what was cached
    full = _trainer(tmp_path, tokenizer, quads, 8, per_device_train_batch_size=2, num_train_epochs=1,
                    precompute_ref_log_probs=True)  # fmt: skip
    assert full.reference_cache_key == short.reference_cache_key and full.reference_seen == 8
    for i in computed:
        assert full.train_dataset.rows[i]["ref_logps"] == short.train_dataset.rows[i]["ref_logps"]
    assert all(torch.isfinite(torch.tensor(r["ref_logps"])).all() for r in full.train_dataset.rows)


def test_plan_of_several_processes() -> None:
    plan = StepPlan(n_examples=10, per_device_batch=1, world_size=4, grad_accum=1, max_steps=-1, epochs=1.0)
    assert (plan.global_batch, plan.steps_per_epoch) == (4, 3)  # 10 batches -> 3 per rank (evened out)
    assert StepPlan(10, 1, 4, 1, 2, 1.0).seen_indices(0) == sorted(epoch_order(10, 0, 0)[:8])
