# Sourced by authors_speed.sh and authors_run.sh: how both run the authors'
# soft_mpcritic.py. The paper's defaults (equal to their Args defaults and
# run_exp.py, stated explicitly): MPPI horizon 4, 200 samples, temperature
# 0.1, noise variance 0.1, ensemble of 4 dynamics models, 20 target samples, 1
# warm-started target iteration, batch 32, gamma 0.99, tau 0.005, Gaussian
# prior. --no-track: no wandb (tyro bool flags, not "--track False").
AUTHORS_ARGS=(
  --env-id InvertedDoublePendulum-v5
  --no-track --no-cuda --mppi-prior gaussian
  --horizon 4 --num-rollouts 200 --lambda_ 0.1 --var 0.1
  --transition-ensemble-size 4 --num-target-rollouts 20
  --mppi-online-iterations 1 --mppi-target-warmstart
  --batch-size 32 --gamma 0.99 --tau 0.005
)
# stdin to stdout, each line prefixed with a wall-clock timestamp ($1: python).
stamp() {
  "$1" -c 'import sys, time
for l in sys.stdin: print(f"{time.time():.3f} {l}", end="", flush=True)'
}
