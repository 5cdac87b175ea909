#!/usr/bin/env bash
# Which of the authors' code's choices matter, on the paper's pendulum at the
# paper's defaults (issue 7). One run per variant, SEEDS seeds vmapped. Every
# variant names all six switches, so none depends on the preset (whose
# choices are the replica's since 2026-11-27):
#   ours           our own choices (Config's defaults; the idp preset's until
#                  results/choices50k)
#   no_masking     --nomask_terminations: imagined trajectories run on past a
#                  predicted termination
#   random_plans   --initial_plan=random: episodes and cold targets start from
#                  a draw of N(0, Sigma), not zeros
#   shared_raw     --dynamics_batch=shared --nostandardise_model: every member
#                  fits one batch, in raw units
#   authors        all three
#   replica        all three, and the authors' last two choices too (the
#                  idp preset now):
#                  --network_init=torch (PyTorch's nn.Linear initialisation)
#                  and --nokeep_plan_tail (the stored plan's last action reset
#                  to 0 at each write-back)
# Each is evaluated every EVAL_EVERY chunks; then experiments/plot.py writes
# the overlay and the table of final IQM (95% intervals). Variants already
# finished in OUT are skipped.
#   SEEDS=3 STEPS=20000 OUT=results/choices experiments/studies/choices.sh   (= make choices)
# On a many-core machine, PARALLEL=k runs k variants at once, each pinned to
# CORES cores (taskset); BUDGET_S stops every run (SIGINT: it saves its
# summary) that many seconds after the start. ONLY="ours replica" runs just
# the variants named; FIRST_CORE=k pins from core k on.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-3}
STEPS=${STEPS:-20000}
EVAL_EVERY=${EVAL_EVERY:-10}
OUT=${OUT:-results/choices}
PARALLEL=${PARALLEL:-1}
CORES=${CORES:-0}
BUDGET_S=${BUDGET_S:-0}
ARGS=${ARGS:-}
ONLY=${ONLY:-}
FIRST_CORE=${FIRST_CORE:-0}
mkdir -p "$OUT"
{
  echo "command: make choices SEEDS=$SEEDS STEPS=$STEPS (experiments/studies/choices.sh; PARALLEL=$PARALLEL CORES=$CORES ARGS=$ARGS)"
  echo "started: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo n/a)"
  echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), JAX_PLATFORMS=${JAX_PLATFORMS:-default}"
} > "$OUT/command.txt"
OURS="--mask_terminations --initial_plan=zeros --dynamics_batch=per_member --standardise_model --network_init=flax --keep_plan_tail"
VARIANTS=(  # absl: a later flag overrides an earlier one
  "ours:$OURS"
  "no_masking:$OURS --nomask_terminations"
  "random_plans:$OURS --initial_plan=random"
  "shared_raw:$OURS --dynamics_batch=shared --nostandardise_model"
  "authors:$OURS --nomask_terminations --initial_plan=random --dynamics_batch=shared --nostandardise_model"
  "replica:$OURS --nomask_terminations --initial_plan=random --dynamics_batch=shared --nostandardise_model --network_init=torch --nokeep_plan_tail"
)
run_one() {  # index, name, flags
  local i=$1 name=$2 flags=$3 pin=() stop=()
  if [ "$CORES" -gt 0 ]; then pin=(taskset -c "$(( FIRST_CORE + i * CORES ))-$(( FIRST_CORE + i * CORES + CORES - 1 ))"); fi
  if [ "$BUDGET_S" -gt 0 ]; then stop=(timeout -s INT -k 60 "$(( BUDGET_S - SECONDS ))"); fi
  # shellcheck disable=SC2086
  "${stop[@]}" "${pin[@]}" $PY experiments/train.py --env=idp --seeds="$SEEDS" \
    --total_steps="$STEPS" --eval_every="$EVAL_EVERY" --checkpoint_every=0 $flags $ARGS \
    --out_dir="$OUT/$name" --overwrite > "$OUT/$name.log" 2>&1 || true
  echo "$name: $(grep -v -i 'warp\|warn' "$OUT/$name.log" | tail -n 1)"
}
i=0
for v in "${VARIANTS[@]}"; do
  name=${v%%:*}
  if [ -n "$ONLY" ] && [[ " $ONLY " != *" $name "* ]]; then continue; fi
  if $PY -c "import json, sys; sys.exit(not json.load(open(sys.argv[1])).get('finished'))" \
       "$OUT/$name/summary.json" 2>/dev/null; then
    echo "$name: done already"; continue
  fi
  run_one $(( i % PARALLEL )) "$name" "${v#*:}" &
  i=$(( i + 1 ))
  if (( i % PARALLEL == 0 )); then wait; fi
done
wait
names=(); for v in "${VARIANTS[@]}"; do
  [ -n "$ONLY" ] && [[ " $ONLY " != *" ${v%%:*} "* ]] && continue
  [ -f "$OUT/${v%%:*}/summary.json" ] && names+=("${v%%:*}"); done
$PY experiments/plot.py "${names[@]/#/$OUT/}" --labels="$(IFS=,; echo "${names[*]}")" \
  --out="$OUT/choices.png" --title="The authors' choices, paper's pendulum, $SEEDS seeds"
