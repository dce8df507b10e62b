#!/usr/bin/env bash
# mypy on the iopo_eval package as it is imported: the core (iopo_eval/), judges/, leaderboard/ and
# training/ (installed as iopo_eval.judges, .leaderboard, .training). mypy cannot follow the editable
# install's import hook, so the namespace is laid out here as a tree of links (build/typecheck/).
# Scope and exceptions: [tool.mypy] in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
root=build/typecheck
rm -rf "$root"
mkdir -p "$root/iopo_eval"
for entry in iopo_eval/*; do
  ln -s "$PWD/$entry" "$root/iopo_eval/"
done
for folder in judges leaderboard training; do
  ln -s "$PWD/$folder" "$root/iopo_eval/$folder"
done
cd "$root"
exec "$OLDPWD/$VENV/bin/mypy" --config-file "$OLDPWD/pyproject.toml" --cache-dir "$OLDPWD/build/mypy-cache" \
  --python-executable "$OLDPWD/$VENV/bin/python" -p iopo_eval
