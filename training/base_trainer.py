"""The trainer shared by IOPO, DPO and SFT: ``transformers.Trainer`` plus a sequence-level loss.

Each method declares how many sequences one example holds (IOPO 4, DPO 2, SFT 1) and a pure loss of their
summed log-probs (losses.py). This class owns everything else: tokenising, the reference log-probs, the
log-prob forward, and the memory-lean step.

Memory-lean step (``sequences_per_backward`` < sequences per example): the loss depends on the network only
through the per-sequence log-probs ℓ_k, so ∇L = Σ_k (∂L/∂ℓ_k)·∇ℓ_k. A no-grad pass gives all ℓ_k and hence
the scalar weights w_k = ∂L/∂ℓ_k; then each group of sequences runs forward/backward on Σ w_k·ℓ_k, and the
gradients add up to exactly the all-at-once gradient while only one group's activations are alive.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from accelerate.utils import DistributedType, gather_object
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase, Trainer, TrainerState
from transformers.trainer_utils import enable_full_determinism, set_seed

from iopo_eval.training import reference as ref_lib
from iopo_eval.training.base_config import BaseTrainConfig, PreferenceConfig
from iopo_eval.training.collator import SequenceCollator, select_rows, select_sequences, tokenize_example
from iopo_eval.training.data import Example, fingerprint
from iopo_eval.training.logprobs import install_logprob_forward, sequence_logps
from iopo_eval.training.losses import LossOutput
from iopo_eval.training.recipe import RecipeError
from iopo_eval.training.sampling import EpochShuffleSampler, StepPlan

log = logging.getLogger(__name__)


class TokenizedDataset(Dataset):
    """A list of tokenised examples; reference log-probs, once known, ride along as ``ref_logps``."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


class SequenceLossTrainer(Trainer):
    """Base class; subclasses set ``method``, ``n_sequences``, ``needs_reference`` and ``sequence_loss``."""

    method: ClassVar[str] = ""
    n_sequences: ClassVar[int] = 1
    needs_reference: ClassVar[bool] = False
    loss_is_scaled_for_ga = False  # our losses are per-batch means: Trainer divides by the accumulation steps
    # Narrower than Trainer's own types: __init__ always gets a model, a BaseTrainConfig and a tokenizer.
    # Methods with a reference (IOPO, DPO) get a PreferenceConfig: their code casts args to it.
    model: nn.Module
    args: BaseTrainConfig
    processing_class: PreTrainedTokenizerBase

    def __init__(
        self,
        model: PreTrainedModel | nn.Module,
        args: BaseTrainConfig,
        train_examples: list[Example],
        processing_class: PreTrainedTokenizerBase,
        ref_model: PreTrainedModel | None = None,
        peft_config: Any | None = None,
        callbacks: list[Any] | None = None,
        base_dtype: torch.dtype | None = None,
    ) -> None:
        examples = self.prepare_examples(train_examples)
        self.data_fingerprint = fingerprint(examples)
        self.n_examples = len(examples)
        # Seed before anything random is drawn: the LoRA matrices are initialised right below, long before
        # Trainer.__init__ seeds (same seed, data and settings must give the same weights).
        if args.full_determinism:
            enable_full_determinism(args.seed)
        else:
            set_seed(args.seed)
        # The dtype final/ is written in unless the recipe says otherwise (build_trainer passes the
        # checkpoint's own dtype, which may differ from the dtype it was loaded in for training).
        self.base_dtype: torch.dtype | None = base_dtype or next(model.parameters()).dtype
        self.run_key: str | None = None
        self.reference_seen: int | None = None
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        install_logprob_forward(model, args.logprob_chunk_size)
        rows = [tokenize_example(e, processing_class, args.max_length) for e in examples]
        pad_id = processing_class.pad_token_id
        if pad_id is None:
            pad_id = processing_class.eos_token_id
        super().__init__(
            model=model,
            args=args,
            data_collator=SequenceCollator(pad_id),
            train_dataset=TokenizedDataset(rows),
            processing_class=processing_class,
            callbacks=callbacks,
        )
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self.ref_model: nn.Module | None = None
        self._policy_is_start = False
        if self.accelerator.distributed_type == DistributedType.DEEPSPEED and self._lean() is not None:
            spb = cast(PreferenceConfig, args).sequences_per_backward
            raise RecipeError(
                f"sequences_per_backward={spb} (memory-lean step) does not run under "
                "DeepSpeed (one backward per micro-step there): set sequences_per_backward: null, or use "
                "DDP/FSDP"
            )
        if self.needs_reference and self.is_deepspeed_enabled:
            from transformers.integrations import is_deepspeed_zero3_enabled

            if is_deepspeed_zero3_enabled() and (
                cast(PreferenceConfig, args).precompute_ref_log_probs or not ref_lib.is_peft(self.model)
            ):
                raise RecipeError(
                    "under DeepSpeed ZeRO-3 the weights are partitioned at load, so the reference must be the "
                    "LoRA policy with its adapter disabled, computed on the fly: use LoRA and set "
                    "precompute_ref_log_probs: false (or use ZeRO-2 / FSDP)"
                )
        if self.needs_reference:
            self._setup_reference(ref_model, processing_class)

    # ---- data order and the step plan --------------------------------------------------------------
    @property
    def data_seed(self) -> int:
        return self.args.data_seed if self.args.data_seed is not None else self.args.seed

    def _get_train_sampler(self, train_dataset: Any = None) -> EpochShuffleSampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return EpochShuffleSampler(len(dataset), self.data_seed)  # type: ignore[arg-type]

    def step_plan(self) -> StepPlan:
        return StepPlan(
            n_examples=self.n_examples,
            per_device_batch=self.args.per_device_train_batch_size,
            world_size=self.accelerator.num_processes,
            grad_accum=self.args.gradient_accumulation_steps,
            max_steps=self.args.max_steps,
            epochs=self.args.num_train_epochs,
        )

    def train(self, resume_from_checkpoint: str | bool | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """``Trainer.train``, except that a checkpoint that already holds every planned optimizer step is
        loaded instead of trained on (the Trainer would run one more step past ``max_steps``)."""
        plan = self.step_plan()
        log.info(
            "%s: %d examples on %d process(es), global batch %d (per device %d x accumulation %d x %d "
            "processes), %d optimizer steps",
            self.method, plan.n_examples, plan.world_size, plan.global_batch, plan.per_device_batch,
            plan.grad_accum, plan.world_size, plan.total_steps,
        )  # fmt: skip
        if isinstance(resume_from_checkpoint, str):
            state = TrainerState.load_from_json(str(Path(resume_from_checkpoint) / "trainer_state.json"))
            if state.global_step > plan.total_steps:
                raise RecipeError(
                    f"{resume_from_checkpoint} is at step {state.global_step}, past this run's "
                    f"{plan.total_steps} steps: pass --resume never or another output_dir"
                )
            if state.global_step == plan.total_steps:
                log.info(
                    "%s already holds all %d optimizer steps: loading it instead of training",
                    resume_from_checkpoint, state.global_step,
                )  # fmt: skip
                self._load_from_checkpoint(resume_from_checkpoint)
                self.state = state
                return None
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    # ---- per-method hooks -------------------------------------------------------------------------
    def prepare_examples(self, examples: list[Example]) -> list[Example]:
        return examples

    def sequence_loss(
        self, policy: torch.Tensor, reference: torch.Tensor | None, counts: torch.Tensor
    ) -> LossOutput:
        """Pure loss from [B, n] summed log-probs (policy, reference) and [B, n] response token counts."""
        raise NotImplementedError

    # ---- reference --------------------------------------------------------------------------------
    def _setup_reference(self, ref_model: nn.Module | None, tokenizer: PreTrainedTokenizerBase) -> None:
        args = cast(PreferenceConfig, self.args)
        if ref_model is not None:
            self.ref_model = ref_model
        elif not ref_lib.is_peft(self.model) and not args.precompute_ref_log_probs:
            import copy

            # Full fine-tuning: the policy moves, so the reference must be a frozen copy of the start.
            self.ref_model = copy.deepcopy(self.model)
        if self.ref_model is not None:
            install_logprob_forward(self.ref_model, args.logprob_chunk_size)
            self.ref_model.eval().requires_grad_(False).to(self.args.device)
        if args.precompute_ref_log_probs:
            self._policy_is_start = True
            # fork_rng: computing (or reading from the cache) must not move the RNG that dropout draws from
            # after Trainer.__init__ seeded it, or a cache hit would change the trained weights
            try:
                with torch.random.fork_rng(devices=[]):
                    self._precompute_reference(tokenizer)
            finally:
                self._policy_is_start = False

    def _reference_context(self) -> tuple[nn.Module, contextlib.AbstractContextManager[Any]]:
        if self.ref_model is not None:
            return self.ref_model, contextlib.nullcontext()
        unwrapped = self.accelerator.unwrap_model(self.model)
        if ref_lib.is_peft(unwrapped):
            return self.model, ref_lib.adapters_disabled(unwrapped)
        if self._policy_is_start:  # full fine-tuning, precomputing before the first step
            return self.model, contextlib.nullcontext()
        raise RuntimeError("no reference model: full fine-tuning needs ref_model or precompute_ref_log_probs")

    def reference_logps_of(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """[B, n] reference log-probs of a collated batch (from the batch if precomputed)."""
        if "ref_logps" in batch:
            ref = batch["ref_logps"]
            if not bool(torch.isfinite(ref).all()):
                raise RuntimeError(
                    "a batch holds an example whose reference log-probs were not precomputed: the step plan "
                    "(sampling.StepPlan) disagrees with the Trainer's data order"
                )
            return ref.to(self.args.device)
        net, ctx = self._reference_context()
        with torch.no_grad(), ctx, self.compute_loss_context_manager():
            logps, _ = sequence_logps(net, batch["input_ids"], batch["attention_mask"], batch["labels"])
        return self._by_example(logps)

    def _precompute_reference(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Reference log-probs of the examples this run will visit (all of them unless ``max_steps`` ends
        the run inside the first epoch), computed in equal shards on every process, gathered, and cached
        with NaN for the rows not computed yet."""
        args = cast(PreferenceConfig, self.args)
        net, ctx = self._reference_context()
        with ctx:
            weights_fp = ref_lib.weights_fingerprint(self.accelerator.unwrap_model(net))
        key = ref_lib.cache_key(
            self.data_fingerprint,
            ref_lib.tokenisation_fingerprint(tokenizer, args.max_length),
            weights_fp,
            self.method,
        )
        directory = Path(args.ref_cache_dir) if args.ref_cache_dir else ref_lib.default_cache_dir()
        seen = self.step_plan().seen_indices(self.data_seed)
        table = ref_lib.load_cached(directory, key, self.n_examples, self.n_sequences)
        # every process decides alike (a cache file written meanwhile must not split them)
        have = table is not None
        if self.accelerator.num_processes > 1:
            have = all(gather_object([have]))
        if not have or table is None:
            table = torch.full((self.n_examples, self.n_sequences), float("nan"))
        missing = [i for i in seen if not bool(torch.isfinite(table[i]).all())]
        if self.accelerator.num_processes > 1:
            missing = sorted(set().union(*gather_object([missing])))
        if missing:
            table[missing] = self.compute_reference_table(missing)
            if self.is_world_process_zero():
                ref_lib.store_cached(directory, key, table)
            log.info(
                "reference log-probs of %d examples (of %d) computed and cached as %s",
                len(missing), self.n_examples, directory / f"{key}.pt",
            )  # fmt: skip
        else:
            log.info("reference log-probs read from cache %s", directory / f"{key}.pt")
        self.reference_cache_key = key
        self.reference_seen = len(seen)
        for row, values in zip(self.train_dataset.rows, table.tolist(), strict=True):  # type: ignore[union-attr]
            row["ref_logps"] = values

    def compute_reference_table(self, indices: list[int] | None = None) -> torch.Tensor:
        """[len(indices), n] reference log-probs (default: every example), in the order given.

        Each process takes one contiguous shard, padded to the same number of batches (a sharded model's
        forward is a collective call), and the shards are gathered on every process."""
        indices = list(range(self.n_examples)) if indices is None else list(indices)
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        size = math.ceil(len(indices) / world)
        mine = indices[rank * size : (rank + 1) * size]
        padded = mine + [indices[0]] * (size - len(mine))
        ref_batch = cast(PreferenceConfig, self.args).precompute_ref_batch_size
        loader = DataLoader(
            Subset(self.train_dataset, padded),  # type: ignore[arg-type]
            batch_size=ref_batch or self.args.per_device_train_batch_size,
            collate_fn=self.data_collator,
            shuffle=False,
        )
        out = [torch.zeros(0, self.n_sequences)]
        was_training = self.model.training
        self.model.eval()
        for batch in tqdm(loader, desc="reference log-probs", disable=self.args.disable_tqdm):
            batch.pop("ref_logps", None)
            batch = {k: v.to(self.args.device) for k, v in batch.items()}
            out.append(self.reference_logps_of(batch).float().cpu())
        self.model.train(was_training)
        values = torch.cat(out)[: len(mine)]
        if world == 1:
            return values
        by_index: dict[int, list[float]] = {}
        for idx, vals in gather_object([(mine, values.tolist())]):
            by_index.update(zip(idx, vals, strict=True))
        return torch.tensor([by_index[i] for i in indices], dtype=torch.float32)

    # ---- loss ---------------------------------------------------------------------------------------
    def _by_example(self, flat: torch.Tensor) -> torch.Tensor:
        """Sequence-major [n·B] -> [B, n]."""
        return flat.view(self.n_sequences, -1).transpose(0, 1)

    def _record(self, out: LossOutput) -> None:
        for name, value in out.metrics.items():
            self._metrics[name].append(value.float().mean().item())

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        reference = self.reference_logps_of(inputs) if self.needs_reference else None
        logps, counts = sequence_logps(model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"])
        out = self.sequence_loss(self._by_example(logps), reference, self._by_example(counts))
        self._record(out)
        loss = out.losses.mean()
        return (loss, {"losses": out.losses}) if return_outputs else loss

    def _lean(self) -> int | None:
        spb = getattr(self.args, "sequences_per_backward", None)
        return spb if spb is not None and spb < self.n_sequences else None

    def gradient_signs(self) -> torch.Tensor | None:
        """s with ∂L/∂ℓ_bk = c_b·s_k for one scalar c_b per example, if the loss has that form."""
        return None

    def _lean_strategy(self, model: nn.Module) -> str:
        choice = getattr(self.args, "lean_strategy", "recompute")
        possible = (
            self._lean() == 1
            and self.gradient_signs() is not None
            and self.accelerator.num_processes == 1
            and self.accelerator.distributed_type != DistributedType.DEEPSPEED
        )
        if choice == "accumulate":
            if not possible:
                raise ValueError(
                    "lean_strategy=accumulate needs sequences_per_backward=1, one process, and a loss whose "
                    "weights are c·(±1) per example (IOPO without pref_ftx, DPO)"
                )
            return choice
        if choice == "auto" and possible:
            trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
            total = sum(p.numel() for p in model.parameters())
            return "accumulate" if trainable <= 0.05 * total else "recompute"
        return "recompute"

    def _accumulate_step(self, model: nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Exact lean step without an extra forward (see ``lean_strategy``): for each example, run each
        sequence forward/backward on s_k·ℓ_k into fresh gradients, then scale them by c_b and add them to
        what was accumulated before."""
        signs = self.gradient_signs()
        assert signs is not None
        params = [p for p in model.parameters() if p.requires_grad]
        n_ex = inputs["input_ids"].shape[0] // self.n_sequences
        reference = self.reference_logps_of(inputs) if self.needs_reference else None
        scale = 1.0 / (self.current_gradient_accumulation_steps * n_ex)
        losses = []
        for b in range(n_ex):
            stash = [p.grad for p in params]
            for p in params:
                p.grad = None
            logps, counts = [], []
            for k in range(self.n_sequences):
                row = select_rows(inputs, [k * n_ex + b])
                with self.compute_loss_context_manager():
                    lp, cnt = sequence_logps(model, row["input_ids"], row["attention_mask"], row["labels"])
                self.accelerator.backward(lp.sum() * float(signs[k]) * scale)
                logps.append(lp.detach())
                counts.append(cnt)
            ref_b = reference[b : b + 1] if reference is not None else None
            weights, loss = self.loss_weights(torch.cat(logps)[None], ref_b, torch.cat(counts)[None])
            c = weights[0, 0] / signs[0]
            if not torch.allclose(weights[0], c * signs.to(weights), rtol=1e-4, atol=1e-12):
                raise RuntimeError(
                    f"{self.method}: loss weights {weights[0].tolist()} are not c·{signs.tolist()}"
                )
            for p, old in zip(params, stash, strict=True):
                if p.grad is None:
                    p.grad = old
                    continue
                p.grad.mul_(c.to(p.grad.dtype))
                if old is not None:
                    p.grad.add_(old)
            losses.append(loss.detach())
        return torch.stack(losses).mean() / self.current_gradient_accumulation_steps

    def training_step(
        self, model: nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        spb = self._lean()
        if spb is None:
            return super().training_step(model, inputs, num_items_in_batch)
        if self.accelerator.distributed_type == DistributedType.DEEPSPEED:
            raise NotImplementedError(
                "sequences_per_backward < all sequences is not supported under DeepSpeed"
            )
        model.train()
        inputs = self._prepare_inputs(inputs)
        if self._lean_strategy(model) == "accumulate":
            return self._accumulate_step(model, inputs)
        n_ex = inputs["input_ids"].shape[0] // self.n_sequences
        reference = self.reference_logps_of(inputs) if self.needs_reference else None
        with torch.no_grad(), self.compute_loss_context_manager():
            logps, counts = sequence_logps(
                model, inputs["input_ids"], inputs["attention_mask"], inputs["labels"]
            )
        weights, loss = self.loss_weights(self._by_example(logps), reference, self._by_example(counts))
        scale = 1.0 / self.current_gradient_accumulation_steps
        starts = list(range(0, self.n_sequences, spb))
        for i, start in enumerate(starts):
            stop = min(start + spb, self.n_sequences)
            part = select_sequences(inputs, start, stop, n_ex)
            last = i == len(starts) - 1
            sync = contextlib.nullcontext() if last else self.accelerator.no_sync(model)
            with sync:
                with self.compute_loss_context_manager():
                    part_logps, _ = sequence_logps(
                        model, part["input_ids"], part["attention_mask"], part["labels"]
                    )
                w = weights[:, start:stop].transpose(0, 1).reshape(-1).to(part_logps.dtype)
                self.accelerator.backward((part_logps * w).sum() * scale)
        return loss.detach() * scale

    def loss_weights(
        self, policy: torch.Tensor, reference: torch.Tensor | None, counts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(∂L/∂ℓ [B, n], L) of the batch-mean loss at the given per-sequence log-probs."""
        leaf = policy.detach().to(torch.promote_types(policy.dtype, torch.float32)).requires_grad_(True)
        with torch.enable_grad():
            out = self.sequence_loss(leaf, reference, counts)
            loss = out.losses.mean()
            (weights,) = torch.autograd.grad(loss, leaf)
        self._record(out)
        return weights, loss

    # ---- logging and output ----------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._metrics and "loss" in logs:
            logs.update({k: sum(v) / len(v) for k, v in self._metrics.items() if v})
            self._metrics.clear()
        super().log(logs, start_time)

    def save_final(
        self,
        output_dir: str | Path,
        merge_lora: bool = True,
        extra: dict[str, Any] | None = None,
        save_dtype: str = "base",
    ) -> Path:
        from iopo_eval.training.checkpoint import save_checkpoint

        return save_checkpoint(
            self, Path(output_dir), merge_lora=merge_lora, save_dtype=save_dtype, extra=extra or {}
        )
