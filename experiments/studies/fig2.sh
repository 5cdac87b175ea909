#!/usr/bin/env bash
# The paper's Fig. 2 on its double pendulum: warm or cold-started target MPPI
# (1 iteration each, the paper's default) x the ensemble or one dynamics model,
# SEEDS seeds vmapped in one program per configuration, paper defaults
# otherwise. Configurations already finished in OUT are skipped, and one that
# was stopped (summary.json with finished: false) resumes from its checkpoint,
# so a cut-off study continues where it stopped. ONLY="warm_one cold_one" runs just those;
# CORE=k pins them to core k (taskset), so two halves can share 2 cores. Then
# the figure and the table, once all four are done.
#   SEEDS=3 STEPS=50000 OUT=results/fig2 experiments/studies/fig2.sh
set -euo pipefail
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-50000}
OUT=${OUT:-results/fig2}
ONLY=${ONLY:-}
CORE=${CORE:-}
ARGS=${ARGS:-}  # extra flags for every run (the tests' tiny sizes)
pin=()
if [ -n "$CORE" ]; then pin=(taskset -c "$CORE"); fi
mkdir -p "$OUT"
finished() {  # finished RUN_DIR: its summary.json says the run finished
  $PY -c "import json, sys; sys.exit(not json.load(open(sys.argv[1])).get('finished'))" \
    "$1/summary.json" 2>/dev/null
}
{
  echo "command: make fig2 SEEDS=$SEEDS STEPS=$STEPS (experiments/studies/fig2.sh; ONLY=$ONLY CORE=$CORE ARGS=$ARGS)"
  echo "started: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo n/a)"
  echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} >> "$OUT/command.txt"
for cfg in "warm_ensemble:--warm_start --ensemble_size=4" \
           "cold_ensemble:--nowarm_start --ensemble_size=4" \
           "warm_one:--warm_start --ensemble_size=1" \
           "cold_one:--nowarm_start --ensemble_size=1"; do
  name=${cfg%%:*}
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  if finished "$OUT/$name"; then echo "$name: done already"; continue; fi
  start=--overwrite append=()
  if [ -n "$(ls -A "$OUT/$name/checkpoints" 2>/dev/null)" ]; then
    start=--resume append=(-a); echo "$name: stopped before its end; resuming it"
  fi
  # shellcheck disable=SC2086
  "${pin[@]}" $PY experiments/train.py --env=idp --seeds="$SEEDS" --total_steps="$STEPS" ${cfg#*:} $ARGS \
    --out_dir="$OUT/$name" $start 2>&1 | grep --line-buffered -v "mujoco_warp" | tee "${append[@]}" "$OUT/$name.log"
done
for cfg in warm_ensemble cold_ensemble warm_one cold_one; do
  finished "$OUT/$cfg" || { echo "the figure waits for $cfg"; exit 0; }
done
$PY experiments/studies/fig2_plot.py --dir="$OUT"
