#!/usr/bin/env bash
# Env steps per second of the authors' PyTorch Soft MPCritic (soft_mpcritic.py)
# on InvertedDoublePendulum-v5 at the paper's default configuration, CPU only.
#   experiments/authors/speed.sh [AUTHORS_DIR] [STEPS]   (defaults: /work/authors 3000)
# AUTHORS_DIR is a checkout of NPLawrence/soft-mpcritic with a venv in .venv
# (override the interpreter with PY=...). Threads: THREADS (default 2).
# Writes nothing outside a temporary directory; last line: authors_sps=<number>.
set -euo pipefail
source "$(dirname "$0")/args.sh"
dir=$(cd "${1:-/work/authors}" && pwd)
steps=${2:-3000}
py=${PY:-$dir/.venv/bin/python}
threads=${THREADS:-2}
(( steps >= 300 )) || { echo "need STEPS >= 300 (SPS is logged every 100 steps)" >&2; exit 2; }

# 2 intra-op torch threads. PASSIVE stops the OpenMP workers spin-waiting: on a
# busy machine the default spinning made 2 threads ~15x slower than 1 thread.
export OMP_NUM_THREADS=$threads MKL_NUM_THREADS=$threads
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export PYTHONUNBUFFERED=1

# Their script writes runs/<name>/ (tensorboard) into the cwd: use a temp dir.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

# Seed 0 as in run_exp.py; each stdout line gets a wall-clock timestamp.
"$py" "$dir/soft_mpcritic.py" "${AUTHORS_ARGS[@]}" --total-timesteps "$steps" --seed 0 \
  | stamp "$py" \
  | tee log.txt | grep --line-buffered 'SPS' >&2 || true

# They print "SPS: <cumulative since just before the first env step>" after
# steps 100, 200, ... . Steady-state rate: steps between the first and the last
# of those prints over the wall time between them (drops start-up and the
# first 100 steps).
awk '$2 == "SPS:" { n++; t[n] = $1; own = $3 }
  END {
    if (n < 2) { print "no SPS lines: run failed" > "/dev/stderr"; exit 1 }
    printf "their cumulative SPS at the end: %s\n", own > "/dev/stderr"
    printf "authors_sps=%.2f\n", 100 * (n - 1) / (t[n] - t[1])
  }' log.txt
