#!/usr/bin/env bash
# One training run of the authors' PyTorch Soft MPCritic (soft_mpcritic.py)
# on InvertedDoublePendulum-v5 at the paper's defaults, CPU only, for the
# reference distribution of its training returns (issue 7).
#   experiments/authors_run.sh SEED [STEPS] [OUT]
#     (defaults: STEPS=50000, OUT=results/authors; AUTHORS_DIR=/work/authors)
# AUTHORS_DIR is a checkout of NPLawrence/soft-mpcritic with a venv in .venv
# (PY=... overrides the interpreter). THREADS torch threads (default 1), CORE
# pins it to one core (taskset). Writes OUT/seed<SEED>.log: their stdout, each
# line prefixed with a wall-clock timestamp ("global_step=..,
# episodic_return=.." per finished episode). experiments/authors_table.py
# summarises the logs as plot.py does ours.
set -euo pipefail
seed=${1:?usage: authors_run.sh SEED [STEPS] [OUT]}
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
# The same flags as authors_speed.sh: the paper's defaults, stated explicitly.
"${pin[@]}" "$py" "$dir/soft_mpcritic.py" \
  --env-id InvertedDoublePendulum-v5 --total-timesteps "$steps" --seed "$seed" \
  --no-track --no-cuda --mppi-prior gaussian \
  --horizon 4 --num-rollouts 200 --lambda_ 0.1 --var 0.1 \
  --transition-ensemble-size 4 --num-target-rollouts 20 \
  --mppi-online-iterations 1 --mppi-target-warmstart \
  --batch-size 32 --gamma 0.99 --tau 0.005 \
  | "$py" -c 'import sys, time
for l in sys.stdin: print(f"{time.time():.3f} {l}", end="", flush=True)' \
  > "$out/seed$seed.log"
