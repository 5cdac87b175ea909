#!/usr/bin/env bash
# One training run of the authors' PyTorch Soft MPCritic (soft_mpcritic.py)
# on InvertedDoublePendulum-v5 at the paper's defaults (AUTHORS_ENV=hopper:
# Hopper-v5 at Fig. 4's, see authors_args.sh), CPU only, for the reference
# distribution of its training returns.
#   experiments/authors/run.sh SEED [STEPS] [OUT]
#   AUTHORS_ENV=hopper experiments/authors/run.sh 1 100000 results/hopper_vs_authors/authors
#     (defaults: STEPS=50000, OUT=results/authors; AUTHORS_DIR=/work/authors)
# AUTHORS_DIR is a checkout of NPLawrence/soft-mpcritic with a venv in .venv
# (PY=... overrides the interpreter). THREADS torch threads (default 1), CORE
# pins it to one core (taskset). Writes OUT/seed<SEED>.log: their stdout, each
# line prefixed with a wall-clock timestamp ("global_step=..,
# episodic_return=.." per finished episode). experiments/authors_table.py
# summarises the logs as plot.py does ours.
set -euo pipefail
source "$(dirname "$0")/args.sh"
seed=${1:?usage: run.sh SEED [STEPS] [OUT]}
steps=${2:-50000}
out=$(mkdir -p "${3:-results/authors}" && cd "${3:-results/authors}" && pwd)
dir=$(cd "${AUTHORS_DIR:-/work/authors}" && pwd)
py=${PY:-$dir/.venv/bin/python}
threads=${THREADS:-1}
pin=(); [ -n "${CORE:-}" ] && pin=(taskset -c "$CORE")
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
work=$(mktemp -d)  # their script writes runs/<name>/ (tensorboard) into the cwd
trap 'rm -rf "$work"' EXIT
cd "$work"
"${pin[@]}" "$py" "$dir/soft_mpcritic.py" "${AUTHORS_ARGS[@]}" \
  --total-timesteps "$steps" --seed "$seed" \
  | stamp "$py" \
  > "$out/seed$seed.log"
