#!/usr/bin/env bash
# Development install: editable package plus the lm-eval task folder linked file by file into
# lm_eval/tasks (lm-eval globs only its own folder; it follows file symlinks but not a folder symlink).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
"$VENV/bin/pip" install -q --no-deps --no-build-isolation -e .
tasks_dir=$("$VENV/bin/python" -c "import lm_eval.tasks, os; print(os.path.dirname(lm_eval.tasks.__file__))")/iopo_eval
rm -rf "$tasks_dir"
mkdir -p "$tasks_dir"
(cd tasks && find . -type f \( -name '*.py' -o -name '*.yaml' -o -name '*_yaml' -o -name '*.md' \) -not -path '*/__pycache__/*') | while read -r f; do
  mkdir -p "$tasks_dir/$(dirname "$f")"
  ln -sf "$PWD/tasks/$f" "$tasks_dir/$f"
done
echo "linked tasks into $tasks_dir"
