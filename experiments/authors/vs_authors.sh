#!/usr/bin/env bash
# One seed of ours against the authors' PyTorch code (soft_mpcritic.py), the
# paper's double pendulum at paper defaults, alternated ROUNDS times on one
# machine so that both see the same load; prints the per-seed ratio per round
# and the median. Needs a checkout of NPLawrence/soft-mpcritic with a venv
# (see experiments/authors/speed.sh).
#   experiments/authors/vs_authors.sh [AUTHORS_DIR] [ROUNDS]   (defaults: /work/authors 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${1:-/work/authors}
rounds=${2:-3}
py=${PY:-.venv/bin/python}
ratios=()
for i in $(seq "$rounds"); do
  ours=$("$py" experiments/bench.py --env=idp --seeds=1 --steps=300 --repeats=3 \
           --out=/tmp/vs_authors_ours.json 2>/dev/null | sed -n 's/^sps=//p')
  theirs=$(THREADS=2 OMP_WAIT_POLICY=ACTIVE bash experiments/authors/speed.sh "$dir" 1500 \
             2>/dev/null | sed -n 's/^authors_sps=//p')
  ratio=$(python3 -c "print(f'{$ours / $theirs:.2f}')")
  echo "round $i: ours $ours env steps/s, authors $theirs env steps/s, ratio $ratio"
  ratios+=("$ratio")
done
python3 -c "import statistics, sys; print('median ratio', statistics.median(map(float, sys.argv[1:])))" "${ratios[@]}"
