#!/usr/bin/env bash
# The paper's Fig. 2 on its double pendulum: warm or cold-started target MPPI
# (1 iteration each, the paper's default) x the ensemble or one dynamics model,
# SEEDS seeds vmapped in one program per configuration, paper defaults
# otherwise. Configurations already finished in OUT are skipped, so a cut-off
# study continues where it stopped. Then the figure and the table.
#   SEEDS=3 STEPS=50000 OUT=results/fig2 experiments/studies/fig2.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-50000}
OUT=${OUT:-results/fig2}
mkdir -p "$OUT"
{
  echo "command: make fig2 SEEDS=$SEEDS STEPS=$STEPS (experiments/studies/fig2.sh)"
  echo "started: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo n/a)"
  echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} > "$OUT/command.txt"
for cfg in "warm_ensemble:--warm_start --ensemble_size=4" \
           "cold_ensemble:--nowarm_start --ensemble_size=4" \
           "warm_one:--warm_start --ensemble_size=1" \
           "cold_one:--nowarm_start --ensemble_size=1"; do
  name=${cfg%%:*}
  if [ -f "$OUT/$name/summary.json" ]; then echo "$name: done already"; continue; fi
  # shellcheck disable=SC2086
  $PY experiments/train.py --env=idp --seeds="$SEEDS" --total_steps="$STEPS" ${cfg#*:} \
    --out_dir="$OUT/$name" --overwrite 2>&1 | grep --line-buffered -v "mujoco_warp" | tee "$OUT/$name.log"
done
$PY experiments/studies/fig2_plot.py --dir="$OUT"
