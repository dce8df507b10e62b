"""Peak memory and time per example of one training step: SFT, our DPO, TRL's DPOTrainer, naive IOPO and
memory-lean IOPO (2 and 1 sequences per backward; lean1 recomputes the weights with a no-grad forward,
lean1_acc accumulates signed gradients instead), on the same random-weight model and the same tokens.

    python benchmarks/train_step.py                               # CPU, small Qwen2-shaped model
    python benchmarks/train_step.py --device cuda --shape qwen2-0.5b --prompt-len 1024 --response-len 1024

Every method runs in its own child process (same seed, same tokens), so each peak is its own:
- CUDA: ``torch.cuda.max_memory_allocated`` over the measured steps (the warmup step allocates the AdamW
  state first), reported in total and above the memory held before the first step (weights).
- CPU: there is no per-phase allocator peak for torch on CPU (tracemalloc does not see torch's allocations),
  so the figure is the process's peak resident set (``ru_maxrss``) minus its resident set just before
  training starts (imports, weights and trainer set-up excluded; gradients, AdamW state, activations and
  temporaries included). It is coarse (page granularity, allocator caching) but comparable across methods.
Time per example is the median step's wall time on CUDA and its process CPU time on CPU (with --threads 1
that is the compute time, and it does not move when other jobs share the machine's cores; wall time does).
All preference methods read precomputed reference log-probs, so the step times compare the policy's
forward and backward only ("same reference handling"). Full fine-tuning with AdamW, batch size 1.

MFU (CUDA) = model FLOPs per example / time per example / the device's peak dense bf16 FLOP/s
(``--peak-tflops``, or known from the device name). Model FLOPs count the work the loss needs, the same for
every method: per trained sequence of T tokens with R response tokens, 6·N·T for the non-embedding weights,
6·L·d·T² for causal attention and 6·d·V·R for the LM head over the response positions; a lean step's extra
no-grad forward and TRL's LM head over every position are not model FLOPs (they lower MFU, as they should).
TRL missing: its row is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# Run from a checkout without installing: the repository root makes iopo_eval (and its training/) importable.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

# Peak dense bf16 tensor FLOP/s by device name (vendor datasheets, SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0, "L4": 121.0}

METHODS = ("sft", "dpo", "trl_dpo", "iopo_naive", "iopo_lean2", "iopo_lean1", "iopo_lean1_acc")
SEQUENCES = {
    "sft": 1,
    "dpo": 2,
    "trl_dpo": 2,
    "iopo_naive": 4,
    "iopo_lean2": 4,
    "iopo_lean1": 4,
    "iopo_lean1_acc": 4,
}


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _tokens(args: argparse.Namespace, vocab: int, n: int) -> list[dict[str, list[int]]]:
    import torch

    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        x1 = torch.randint(10, vocab, (args.prompt_len,), generator=g).tolist()
        x2 = list(x1)
        tail = max(
            1, args.prompt_len // 10
        )  # x2: the same task with its last tenth (the constraints) changed
        x2[-tail:] = torch.randint(10, vocab, (tail,), generator=g).tolist()
        y1 = torch.randint(10, vocab, (args.response_len,), generator=g).tolist()
        y2 = torch.randint(10, vocab, (args.response_len,), generator=g).tolist()
        out.append({"x1": x1, "x2": x2, "y1": y1, "y2": y2})
    return out


def model_flops_per_example(config: object, method: str, prompt_len: int, response_len: int) -> float:
    """Model FLOPs of one training example (see the module docstring)."""
    d, layers = config.hidden_size, config.num_hidden_layers  # type: ignore[attr-defined]
    vocab, inter = config.vocab_size, config.intermediate_size  # type: ignore[attr-defined]
    heads, kv = config.num_attention_heads, config.num_key_value_heads  # type: ignore[attr-defined]
    head_dim = d // heads
    per_layer = d * (heads * head_dim) + 2 * d * (kv * head_dim) + (heads * head_dim) * d + 3 * d * inter
    n_nonembed = layers * per_layer
    t = prompt_len + response_len
    per_seq = 6 * n_nonembed * t + 6 * layers * d * t * t + 6 * d * vocab * response_len
    return float(SEQUENCES[method] * per_seq)


def peak_tflops(explicit: float | None) -> float | None:
    if explicit:
        return explicit
    import torch

    if not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def child(args: argparse.Namespace) -> dict[str, float | str]:
    import torch
    from transformers import TrainerCallback

    from iopo_eval.training.data import Quadruple
    from iopo_eval.training.toy_models import random_model, tiny_tokenizer

    torch.set_num_threads(args.threads)
    cuda = args.device == "cuda"
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    model = random_model(args.shape, seed=0, device="cuda" if cuda else None).to(dtype)
    vocab = model.config.vocab_size
    tok = tiny_tokenizer()
    n_steps = args.warmup + args.steps
    data = _tokens(args, vocab, n_steps)
    method = args.child
    common = dict(
        output_dir=os.path.join(args.tmp, method), per_device_train_batch_size=1, max_steps=n_steps,
        learning_rate=1e-6, lr_scheduler_type="constant", warmup_steps=0, save_strategy="no", report_to="none",
        logging_steps=10_000, disable_tqdm=True, use_cpu=not cuda, bf16=cuda and dtype == torch.bfloat16,
        max_length=None, dataloader_num_workers=0, seed=0,
    )  # fmt: skip
    dummy = [Quadruple([{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}], "c", "d", "0")]

    times: list[float] = []

    class Timer(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):  # type: ignore[no-untyped-def]
            if cuda:
                torch.cuda.synchronize()
                if state.global_step == args.warmup:
                    torch.cuda.reset_peak_memory_stats()
            self.t0 = time.perf_counter()
            self.c0 = time.process_time()

        def on_step_end(self, a, state, control, **kw):  # type: ignore[no-untyped-def]
            if cuda:
                torch.cuda.synchronize()
            if state.global_step > args.warmup:
                # CPU: process CPU time (all threads), robust to other work on a shared machine;
                # CUDA: wall time, the device does the work.
                times.append(time.perf_counter() - self.t0 if cuda else time.process_time() - self.c0)

    if method == "trl_dpo":
        import datasets
        import trl

        cfg = trl.DPOConfig(beta=0.1, precompute_ref_log_probs=True, **common)
        trainer = trl.DPOTrainer(
            model=model, args=cfg, processing_class=tok,
            train_dataset=datasets.Dataset.from_list([{"prompt": "a", "chosen": "b", "rejected": "c"}]),
            callbacks=[Timer()],
        )  # fmt: skip
        trainer.train_dataset = datasets.Dataset.from_dict(
            {
                "prompt_ids": [d["x1"] for d in data], "chosen_ids": [d["y1"] for d in data],
                "rejected_ids": [d["y2"] for d in data], "ref_chosen_logps": [0.0] * n_steps,
                "ref_rejected_logps": [0.0] * n_steps,
            }
        )  # fmt: skip
    else:
        from iopo_eval.training.dpo_config import DPOConfig
        from iopo_eval.training.dpo_trainer import DPOTrainer
        from iopo_eval.training.iopo_config import IOPOConfig
        from iopo_eval.training.iopo_trainer import IOPOTrainer
        from iopo_eval.training.sft_config import SFTConfig
        from iopo_eval.training.sft_trainer import SFTTrainer

        if method == "sft":
            trainer = SFTTrainer(model, SFTConfig(**common), dummy, tok, callbacks=[Timer()])
            rows = [{"sequences": [(d["x1"], d["y1"])]} for d in data]
        elif method == "dpo":
            cfg = DPOConfig(
                precompute_ref_log_probs=True, ref_cache_dir=os.path.join(args.tmp, "ref"), **common
            )
            trainer = DPOTrainer(model, cfg, dummy, tok, callbacks=[Timer()])
            rows = [
                {"sequences": [(d["x1"], d["y1"]), (d["x1"], d["y2"])], "ref_logps": [0.0, 0.0]} for d in data
            ]
        else:
            spb = {"iopo_naive": None, "iopo_lean2": 2, "iopo_lean1": 1, "iopo_lean1_acc": 1}[method]
            cfg = IOPOConfig(
                precompute_ref_log_probs=True, ref_cache_dir=os.path.join(args.tmp, "ref"),
                sequences_per_backward=spb, **common,
                lean_strategy="accumulate" if method == "iopo_lean1_acc" else "recompute",
            )  # fmt: skip
            trainer = IOPOTrainer(model, cfg, dummy, tok, callbacks=[Timer()])
            rows = [
                {
                    "sequences": [
                        (d["x1"], d["y1"]),
                        (d["x1"], d["y2"]),
                        (d["x2"], d["y2"]),
                        (d["x2"], d["y1"]),
                    ],
                    "ref_logps": [0.0] * 4,
                }
                for d in data
            ]
        trainer.train_dataset.rows = rows
    if cuda:
        torch.cuda.synchronize()
    held_before = torch.cuda.memory_allocated() if cuda else 0
    rss_before = (
        _rss_mib()
    )  # after imports, weights and trainer set-up: what the step itself adds is measured
    trainer.train()
    step_s = sorted(times)[len(times) // 2]  # median: robust to a stray slow step on a shared machine
    tokens = SEQUENCES[method] * (args.prompt_len + args.response_len)
    result: dict[str, float | str] = {
        "method": method,
        "s_per_example": step_s,
        "tokens_per_s": tokens / step_s,
        "model_tflop_per_example": model_flops_per_example(model.config, method, args.prompt_len,
                                                           args.response_len) / 1e12,
    }  # fmt: skip
    if cuda:
        result["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["peak_above_weights_gib"] = (torch.cuda.max_memory_allocated() - held_before) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result["peak_rss_above_model_mib"] = peak - rss_before
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--shape", default="small", help="toy_models shape: tiny, small, qwen2-0.5b")
    parser.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default=None, help="default: bf16 on cuda"
    )
    parser.add_argument("--prompt-len", type=int, default=256)
    parser.add_argument("--response-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="measured steps (one example each)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run all methods this many times, interleaved; keep each one's fastest",
    )
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--peak-tflops", type=float, help="device peak dense bf16 TFLOP/s for MFU")
    parser.add_argument("--json", help="also write the results and ratios to this JSON file")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--tmp", default="/tmp/iopo-train-step-bench", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    if args.child:
        print("RESULT " + json.dumps(child(args)), flush=True)
        return 0

    results: dict[str, dict[str, float]] = {}
    passthrough = ["--device", args.device, "--shape", args.shape, "--dtype", args.dtype, "--prompt-len",
                   str(args.prompt_len), "--response-len", str(args.response_len), "--steps", str(args.steps),
                   "--warmup", str(args.warmup), "--threads", str(args.threads), "--tmp", args.tmp]  # fmt: skip
    methods = args.methods.split(",")
    skipped: dict[str, str] = {}
    if "trl_dpo" in methods and importlib.util.find_spec("trl") is None:
        skipped["trl_dpo"] = "trl is not installed"
        methods.remove("trl_dpo")
    for _ in range(args.rounds):
        for method in methods:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", method, *passthrough], capture_output=True, text=True
            )
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if proc.returncode or line is None:
                print(f"{method}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
                return 1
            new = json.loads(line[len("RESULT ") :])
            if method not in results or new["s_per_example"] < results[method]["s_per_example"]:
                results[method] = new
    mem_key = "peak_gib" if args.device == "cuda" else "peak_rss_above_model_mib"
    unit = "GiB" if args.device == "cuda" else "MiB (RSS above model)"
    peak = peak_tflops(args.peak_tflops) if args.device == "cuda" else None
    print(
        f"device={args.device} shape={args.shape} dtype={args.dtype} prompt={args.prompt_len} "
        f"response={args.response_len} batch=1 steps={args.steps} rounds={args.rounds} threads={args.threads} "
        f"peak={peak or 'n/a'} TFLOP/s"
    )
    clock = "wall" if args.device == "cuda" else "cpu"
    print(
        f"{'method':<14} {'seqs':>4} {clock + ' s/example':>16} {'tokens/s':>10} {'peak ' + unit:>24} {'MFU':>6}"
    )
    for m, r in results.items():
        mfu = r["model_tflop_per_example"] / r["s_per_example"] / peak if peak else None
        r["mfu"] = mfu
        mfu_text = f"{100 * mfu:.1f}%" if mfu is not None else "n/a"
        print(
            f"{m:<14} {SEQUENCES[m]:>4} {r['s_per_example']:>16.3f} {r['tokens_per_s']:>10.0f} "
            f"{r[mem_key]:>24.1f} {mfu_text:>6}"
        )
    for m, why in skipped.items():
        print(f"{m:<14} skipped: {why}")

    def ratio(a: str, b: str, key: str) -> float | None:
        return results[a][key] / results[b][key] if a in results and b in results else None

    checks = [
        ("lean1 IOPO peak / our DPO peak", ratio("iopo_lean1", "dpo", mem_key), 1.0),
        ("lean1_acc IOPO peak / our DPO peak", ratio("iopo_lean1_acc", "dpo", mem_key), 1.0),
        ("lean1 IOPO peak / naive IOPO peak", ratio("iopo_lean1", "iopo_naive", mem_key), None),
        ("lean2 IOPO peak / naive IOPO peak", ratio("iopo_lean2", "iopo_naive", mem_key), None),
        ("lean1_acc IOPO time / naive time", ratio("iopo_lean1_acc", "iopo_naive", "s_per_example"), 1.1),
        ("lean1 IOPO time / naive IOPO time", ratio("iopo_lean1", "iopo_naive", "s_per_example"), None),
        ("lean2 IOPO time / naive IOPO time", ratio("iopo_lean2", "iopo_naive", "s_per_example"), None),
        ("our DPO time / TRL DPO time", ratio("dpo", "trl_dpo", "s_per_example"), 1.1),
        ("our DPO peak / TRL DPO peak", ratio("dpo", "trl_dpo", mem_key), None),
    ]
    print("ratios (goal in brackets):")
    for label, value, goal in checks:
        text = f"{value:.2f}" if value is not None else "n/a"
        verdict = "" if goal is None or value is None else ("  met" if value <= goal else "  NOT met")
        print(f"  {label:<36} {text:>5}" + (f"  (<= {goal:g}){verdict}" if goal is not None else ""))
    if args.json:
        blob = {
            "settings": {k: v for k, v in vars(args).items() if k not in ("child", "tmp", "json")},
            "peak_tflops": peak,
            "results": results,
            "skipped": skipped,
            "ratios": {label: {"value": value, "goal": goal} for label, value, goal in checks},
        }
        Path(args.json).write_text(json.dumps(blob, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
