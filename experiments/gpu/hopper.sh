#!/usr/bin/env bash
# The Hopper studies of issue 8 in one device call, highest priority first:
#   hopper     softMPCritic, uniform prior (Fig. 4), 200k steps x SEEDS
#   baselines  SAC and DDPG at 1M steps, softMPCritic at 200k, fig4.png
#   ablations  Fig. 3 on Hopper (Gaussian prior): five variants at SEED 0 (fig3/), fig3_paper.png
# Each study is a Makefile target (so the commands are those of `make`), run
# with PY (default: python) instead of the repository's .venv, into RESULTS.
# A study starts only while BUDGET_S seconds (default 540) have not passed;
# the drivers write metrics.jsonl per chunk, so one cut off keeps its curve.
#
#   STUDIES="hopper baselines ablations" SEEDS=10 bash experiments/gpu/hopper.sh
#   TINY=1 bash experiments/gpu/hopper.sh   # a few hundred steps each, on CPU
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-python}
RESULTS=${RESULTS:-results}
STUDIES=${STUDIES:-hopper baselines ablations}
BUDGET_S=${BUDGET_S:-540}
SEEDS=${SEEDS:-10}
STEPS=${STEPS:-200000}
BASELINE_STEPS=${BASELINE_STEPS:-1000000}
EVAL_EVERY=${EVAL_EVERY:-20}
ARGS=${ARGS:-}
SAC_ARGS=${SAC_ARGS:-}
DDPG_ARGS=${DDPG_ARGS---activation=relu --batch_size=256 --warmup_steps=25000 --actor_update_period=2}
if [[ "${TINY:-0}" == 1 ]]; then
  RESULTS=${TINY_RESULTS:-/tmp/hopper_gpu_tiny}
  SEEDS=2 STEPS=200 BASELINE_STEPS=400 EVAL_EVERY=1
  ARGS="--chunk_steps=100 --num_samples=8 --target_samples=4 --hidden_sizes=8 --batch_size=8 \
--eval_episodes=1 --episode_length=50"
  SAC_ARGS="--hidden_sizes=8 --episode_length=50 --eval_episodes=1 --eval_every=200 --min_replay_size=100"
  DDPG_ARGS="--activation=relu --warmup_steps=100 --actor_update_period=2"
fi
mkdir -p "$RESULTS"
start=$SECONDS
for study in $STUDIES; do
  if (( SECONDS - start > BUDGET_S )); then
    echo "hopper_gpu: skipping $study, ${BUDGET_S}s budget spent" | tee -a "$RESULTS/skipped.txt"
    continue
  fi
  echo "hopper_gpu: $study at $((SECONDS - start))s" >&2
  make -o install "$study" PY="$PY" RESULTS="$RESULTS" SEEDS="$SEEDS" STEPS="$STEPS" \
    BASELINE_STEPS="$BASELINE_STEPS" EVAL_EVERY="$EVAL_EVERY" ARGS="$ARGS" SAC_ARGS="$SAC_ARGS" \
    DDPG_ARGS="$DDPG_ARGS"
done
echo "hopper_gpu: done in $((SECONDS - start))s; results under $RESULTS" >&2
