#!/usr/bin/env bash
# Speed of this tree against a git ref, measured back to back on one machine
# (shared machines are noisy: compare the ratio within one run, not figures
# from different days).
#   experiments/bench_vs.sh REF [ROUNDS]     e.g. experiments/bench_vs.sh HEAD~1 2
set -euo pipefail
ref=${1:?usage: experiments/bench_vs.sh REF [ROUNDS]}
rounds=${2:-2}
cd "$(dirname "$0")/.."
py=${PY:-.venv/bin/python}
base=$(mktemp -d)
trap 'git worktree remove --force "$base" >/dev/null 2>&1 || true' EXIT
git worktree add -q --detach "$base" "$ref"
for i in $(seq "$rounds"); do
  printf '%s (round %d): ' "$ref" "$i"
  (cd "$base" && PYTHONPATH="$base" "$OLDPWD/$py" experiments/bench.py --steps=1000 --repeats=5 2>/dev/null | tail -1)
  printf 'this tree (round %d): ' "$i"
  "$py" experiments/bench.py --steps=1000 --repeats=5 2>/dev/null | tail -1
done
