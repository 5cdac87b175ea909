# Sourced by speed.sh and run.sh: how both run the authors'
# soft_mpcritic.py, on AUTHORS_ENV (idp, the default, or hopper).
# idp: the paper's defaults (equal to their Args defaults and run_exp.py,
# stated explicitly): MPPI horizon 4, 200 samples, temperature 0.1, noise
# variance 0.1, ensemble of 4 dynamics models, 20 target samples, 1
# warm-started target iteration, batch 32, gamma 0.99, tau 0.005, Gaussian
# prior.
# hopper: Fig. 4's setting as their HEAD plot filter and run_exp.py's
# commented block give it: uniform prior, 600 samples, variance 0.05,
# temperature 0.15, 60 target samples (their default, 10% of the samples);
# the rest as idp's (results/authors_versions.md).
# --no-track: no wandb (tyro bool flags, not "--track False").
AUTHORS_COMMON=(
  --no-track --no-cuda
  --horizon 4 --transition-ensemble-size 4
  --mppi-online-iterations 1 --mppi-target-warmstart
  --batch-size 32 --gamma 0.99 --tau 0.005
)
case "${AUTHORS_ENV:-idp}" in
  idp) AUTHORS_ARGS=(--env-id InvertedDoublePendulum-v5 "${AUTHORS_COMMON[@]}"
                     --mppi-prior gaussian --num-rollouts 200 --lambda_ 0.1 --var 0.1
                     --num-target-rollouts 20) ;;
  hopper) AUTHORS_ARGS=(--env-id Hopper-v5 "${AUTHORS_COMMON[@]}"
                        --mppi-prior uniform --num-rollouts 600 --lambda_ 0.15 --var 0.05
                        --num-target-rollouts 60) ;;
  *) echo "AUTHORS_ENV=${AUTHORS_ENV} is invalid; allowed: idp, hopper" >&2; exit 2 ;;
esac
# stdin to stdout, each line prefixed with a wall-clock timestamp ($1: python).
stamp() {
  "$1" -c 'import sys, time
for l in sys.stdin: print(f"{time.time():.3f} {l}", end="", flush=True)'
}
