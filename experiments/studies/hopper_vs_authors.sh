#!/usr/bin/env bash
# Hopper side by side with the authors' code (issue 17), same machine, same
# day: our variants, SEEDS seeds vmapped each, and the authors'
# soft_mpcritic.py at Fig. 4's setting (authors_args.sh), one process per
# seed. Every run is started at once, in the background, pinned round-robin
# to the machine's cores; each writes as its chunks (ours) or episodes
# (theirs) finish, so a run stopped early still leaves its windows.
#   ours      the hopper preset as it was (our implementation choices)
#   choices   the authors' five choices (config.AUTHORS_CHOICES)
#   choices2  the five choices and 2 ensemble updates per env step, each on a
#             fresh batch (their Fig. 4 script, ddpg_continuous_action_v2.py)
#   experiments/studies/hopper_vs_authors.sh   (OUT=results/hopper_vs_authors STEPS=100000 SEEDS=2
#                                       AUTHORS_SEEDS="1 2" ONLY="ours choices choices2 authors")
# Then: python experiments/studies/train_returns.py --windows=... OUT/<variant> OUT/authors/seed*.log
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-2}
STEPS=${STEPS:-100000}
EVAL_EVERY=${EVAL_EVERY:-50}
OUT=${OUT:-results/hopper_vs_authors}
AUTHORS_SEEDS=${AUTHORS_SEEDS:-1 2}
ONLY=${ONLY:-ours choices choices2 authors}
mkdir -p "$OUT/authors"
OURS="--mask_terminations --initial_plan=zeros --dynamics_batch=per_member --standardise_model --network_init=flax --keep_plan_tail"
CHOICES="--nomask_terminations --initial_plan=random --dynamics_batch=shared --nostandardise_model --network_init=torch --nokeep_plan_tail"
declare -A VARIANT=([ours]="$OURS" [choices]="$CHOICES" [choices2]="$CHOICES --dynamics_updates=2")
{
  echo "command: experiments/studies/hopper_vs_authors.sh (SEEDS=$SEEDS STEPS=$STEPS EVAL_EVERY=$EVAL_EVERY AUTHORS_SEEDS=$AUTHORS_SEEDS ONLY=$ONLY)"
  echo "started: $(date -u +%FT%TZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo n/a)"
  echo "machine: $(uname -srm), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
} >> "$OUT/command.txt"
core=0
next_core() { core=$(( (core + 1) % $(nproc) )); }
for name in $ONLY; do
  if [ "$name" = authors ]; then
    for seed in $AUTHORS_SEEDS; do
      echo "authors seed $seed: AUTHORS_ENV=hopper CORE=$core experiments/authors/run.sh $seed $STEPS $OUT/authors" >> "$OUT/command.txt"
      AUTHORS_ENV=hopper CORE=$core nohup experiments/authors/run.sh "$seed" "$STEPS" "$OUT/authors" \
        > "$OUT/authors/seed$seed.stderr" 2>&1 &
      next_core
    done
    continue
  fi
  flags=${VARIANT[$name]:?"unknown variant $name; allowed: ${!VARIANT[*]} authors"}
  cmd="$PY experiments/train.py --env=hopper --seeds=$SEEDS --total_steps=$STEPS --eval_every=$EVAL_EVERY $flags --out_dir=$OUT/$name --overwrite"
  echo "$name: taskset -c $core $cmd" >> "$OUT/command.txt"
  mkdir -p "$OUT/$name"
  nohup taskset -c "$core" $cmd > "$OUT/$name.log" 2>&1 &
  next_core
done
wait
echo "finished: $(date -u +%FT%TZ)" >> "$OUT/command.txt"
