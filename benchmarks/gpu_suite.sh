#!/usr/bin/env bash
# The trainer's and the generation backends' GPU figures (issue 14, item 6) in one prepared script: under
# 8 minutes on one GPU, no network, and on a bare machine (torch, transformers, accelerate, peft) at least
# its training half runs; every part has its own time limit and a part that cannot run says why.
#
#   benchmarks/gpu_suite.sh [--out DIR]            on the GPU machine, from the repository root
#   benchmarks/gpu_suite.sh --dry-run [--out DIR]  the same steps at tiny shapes on the CPU (CI runs this)
#
# 1. environment: GPU, driver, package versions.
# 2. benchmarks/train_step.py on the Qwen2-0.5B shape (random weights built from its config), 1,024 prompt +
#    1,024 response tokens: SFT, our DPO, TRL's DPO (if trl is installed), naive IOPO, lean IOPO; peak memory,
#    time per example, tokens/s, MFU, and the goals (lean IOPO memory <= DPO's, time <= 1.1x naive, our
#    DPO <= 1.1x TRL's) marked met / NOT met.                                               [limit 240 s]
# 3. generation throughput of `iopo-eval run --model vllm` vs `--model hf` on TRACE's 1,042 prompts, greedy,
#    max_gen_toks 256, no judge calls (--dry-run of the judge). Needs lm-eval (and vLLM for its row), the
#    data mirror ($IOPO_EVAL_DATA_MIRROR, ./shared/data or ../shared/data) and a model ($GEN_MODEL, default:
#    the embedded SmolLM2-135M-Instruct if it is cached); skipped with the reason otherwise.  [limit 110 s each]
#
# Results: $OUT/summary.txt (everything printed), $OUT/train_step.json, $OUT/generation.json.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY=0
OUTDIR=${OUT:-$PWD/gpu-suite-out}
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUTDIR=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_suite.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export IOPO_EVAL_CACHE=${IOPO_EVAL_CACHE:-$OUTDIR/cache}
exec > >(tee "$OUTDIR/summary.txt") 2>&1
START=$SECONDS
say() { printf '\n== %s (%ss elapsed)\n' "$1" "$((SECONDS - START))"; }

say "1. environment"
if [ $DRY = 1 ]; then echo "dry run: CPU, tiny shapes"; else nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "nvidia-smi: not available"; fi
"$PY" - <<'EOF'
import importlib, platform
print("python", platform.python_version())
for name in ("torch", "transformers", "accelerate", "peft", "trl", "lm_eval", "vllm", "deepspeed"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as exc:  # absent or broken: the parts that need it say so
        print(f"{name}: not importable ({type(exc).__name__})")
try:
    import torch
    print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
except Exception:
    pass
EOF

say "2. training step: SFT, DPO, TRL DPO, naive and lean IOPO"
if [ $DRY = 1 ]; then
  STEP_ARGS=(--device cpu --shape tiny --prompt-len 32 --response-len 32 --steps 1 --warmup 1 --methods sft,dpo,iopo_lean1)
else
  STEP_ARGS=(--device cuda --shape qwen2-0.5b --prompt-len 1024 --response-len 1024 --steps 5 --warmup 2)
fi
timeout 240 "$PY" "$ROOT/benchmarks/train_step.py" "${STEP_ARGS[@]}" --tmp "$OUTDIR/train-step-tmp" --json "$OUTDIR/train_step.json"
echo "train_step exit status: $?"
rm -rf "$OUTDIR/train-step-tmp"

say "3. generation throughput: iopo-eval run --model vllm vs --model hf on TRACE"
gen_skip() { echo "generation throughput skipped: $1"; "$PY" -c "import json,sys; json.dump({'skipped': sys.argv[1]}, open(sys.argv[2], 'w'))" "$1" "$OUTDIR/generation.json"; }
gen_part() {
  if ! "$PY" -c "import lm_eval" 2>/dev/null; then gen_skip "lm-eval is not installed on this machine"; return; fi
  if ! "$PY" -c "import lm_eval.tasks.iopo_eval" 2>/dev/null; then
    # iopo-eval's task folders live inside lm_eval.tasks once the package is installed (offline, no deps)
    "$PY" -m pip install -q --no-deps --no-index --no-build-isolation "$ROOT" >/dev/null 2>&1 \
      || { gen_skip "iopo-eval could not be installed offline (pip install --no-deps $ROOT failed)"; return; }
  fi
  local mirror=${IOPO_EVAL_DATA_MIRROR:-}
  for candidate in "$mirror" "$ROOT/shared/data" "$ROOT/../shared/data"; do
    if [ -n "$candidate" ] && [ -f "$candidate/trace/202409_trace_evaluation.jsonl" ]; then mirror=$candidate; break; fi
  done
  if [ ! -f "$mirror/trace/202409_trace_evaluation.jsonl" ]; then gen_skip "no data mirror with trace/ (set IOPO_EVAL_DATA_MIRROR)"; return; fi
  export IOPO_EVAL_DATA_MIRROR=$mirror
  local model=${GEN_MODEL:-} limit=() device=cuda toks=256 batch=64
  if [ $DRY = 1 ]; then
    model=$OUTDIR/tiny-gen-model limit=(--limit 2) device=cpu toks=8 batch=2
    "$PY" -c "
import sys
from iopo_eval.training.toy_models import random_model, tiny_tokenizer
tok = tiny_tokenizer(); random_model('tiny', vocab_size=len(tok)).save_pretrained(sys.argv[1]); tok.save_pretrained(sys.argv[1])" "$model" 2>/dev/null
  elif [ -z "$model" ]; then
    model=$("$PY" -c "from iopo_eval.embedded.model import ensure_hf_model; print(ensure_hf_model())" 2>/dev/null) \
      || { gen_skip "no model: set GEN_MODEL to an HF folder (the embedded model is not cached here)"; return; }
  fi
  local results=()
  for backend in hf vllm; do
    if [ $backend = vllm ] && ! "$PY" -c "import vllm" 2>/dev/null; then
      echo "vllm: skipped (vllm is not installed)"; results+=("\"vllm\": {\"skipped\": \"vllm is not installed\"}"); continue
    fi
    if [ $backend = vllm ]; then margs="pretrained=$model,dtype=bfloat16,gpu_memory_utilization=0.5"; bs=auto
    else margs="pretrained=$model"; [ $DRY = 0 ] && margs="$margs,dtype=bfloat16"; bs=$batch; fi
    local t0=$SECONDS
    timeout 110 "$PY" -c "import sys; from iopo_eval.cli import main; sys.exit(main())" run --tasks trace "${limit[@]}" \
      --model $backend --model-args "$margs" --batch-size $bs --device $device --gen-kwargs max_gen_toks=$toks \
      --output "$OUTDIR/gen-$backend" --judge-base-url http://127.0.0.1:9/v1 --judge-model none --dry-run \
      > "$OUTDIR/gen-$backend.log" 2>&1
    local rc=$? seconds=$((SECONDS - t0))
    local prompts
    prompts=$(cat "$OUTDIR"/gen-$backend/*/*items*.jsonl 2>/dev/null | wc -l)
    echo "$backend: exit $rc, $prompts prompts in ${seconds}s wall (model load included)"
    [ $rc = 0 ] || tail -5 "$OUTDIR/gen-$backend.log"
    results+=("\"$backend\": {\"exit\": $rc, \"prompts\": $prompts, \"wall_s\": $seconds}")
  done
  local IFS=,
  echo "{${results[*]}, \"max_gen_toks\": $toks, \"model\": \"$model\"}" > "$OUTDIR/generation.json"
  "$PY" -c "
import json, sys
g = json.load(open(sys.argv[1]))
hf, vl = g.get('hf', {}), g.get('vllm', {})
if hf.get('wall_s') and vl.get('wall_s') and hf.get('prompts') and vl.get('prompts'):
    print(f\"vllm / hf prompts per second: {(vl['prompts'] / vl['wall_s']) / (hf['prompts'] / hf['wall_s']):.2f}\")
" "$OUTDIR/generation.json"
}
gen_part

say "done"
