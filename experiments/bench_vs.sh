#!/usr/bin/env bash
# Speed of this tree against a git ref, measured in one run on one machine
# (shared machines are noisy: compare the ratio within one run, not figures
# from different days).
#   experiments/bench_vs.sh REF [ROUNDS]     e.g. experiments/bench_vs.sh HEAD~1 3
#   REF_ARGS=--compute_dtype=float32 TREE_ARGS=--compute_dtype=bfloat16 \
#     ENV=hopper experiments/bench_vs.sh . 3     # two settings of this tree
# Each round measures every mode for REF, then for this tree (alternated, so
# a load that comes and goes hits both); the summary gives, per mode, the
# median over rounds of the ratio this tree / REF. Both sides run this tree's
# experiments/bench.py, each with its own package on PYTHONPATH, so a REF
# older than a bench flag (e.g. --tiny) is measured the same way. REF "."
# is this tree itself (no checkout): with REF_ARGS and TREE_ARGS it compares
# two settings (any bench.py or Config flags) in one run.
#   MODES   modes to measure, space separated (default "paper"):
#           paper  the preset's step (the paper's configuration)
#           tiny   the step at tiny widths (bench.py --tiny): its serial chain
#   ENV     the preset (default idp); STEPS, REPEATS: per bench.py run
#   REF_ARGS, TREE_ARGS: extra bench.py flags for the REF side and this tree's
#   PY      the Python (default .venv/bin/python)
set -euo pipefail
ref=${1:?usage: experiments/bench_vs.sh REF [ROUNDS]}
rounds=${2:-2}
modes=${MODES:-paper}
env=${ENV:-idp}
steps=${STEPS:-1000}
repeats=${REPEATS:-5}
cd "$(dirname "$0")/.."
here=$PWD
py=${PY:-.venv/bin/python}
case $py in /*) ;; *) py=$here/$py ;; esac
for mode in $modes; do
  case $mode in paper|tiny) ;; *) echo "error: MODES='$modes' is invalid; allowed: paper, tiny." >&2; exit 2 ;; esac
done
log=$(mktemp)
if [ "$ref" = . ]; then
  base=$here
  trap 'rm -f "$log"' EXIT
else
  base=$(mktemp -d)
  trap 'git worktree remove --force "$base" >/dev/null 2>&1 || true; rm -f "$log"' EXIT
  git worktree add -q --detach "$base" "$ref"
fi
bench() {  # bench ROOT MODE ARGS -> prints the sps of one bench.py run
  local flag="" sps
  [ "$2" = tiny ] && flag=--tiny
  # shellcheck disable=SC2086  # ARGS are words
  sps=$(PYTHONPATH="$1" nice "$py" "$here/experiments/bench.py" --env="$env" --steps="$steps" \
    --repeats="$repeats" --out= $flag $3 2>/dev/null | tail -1)
  case $sps in sps=*) echo "${sps#sps=}" ;;
    *) echo "error: bench.py failed for $1 ($3): run it by hand to see why" >&2; return 1 ;; esac
}
for i in $(seq "$rounds"); do
  for mode in $modes; do
    a=$(bench "$base" "$mode" "${REF_ARGS:-}")
    b=$(bench "$here" "$mode" "${TREE_ARGS:-}")
    echo "round $i $mode: $ref sps=$a  this tree sps=$b  ratio $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.3f", b/a}')"
    echo "$mode $a $b" >>"$log"
  done
done
echo "summary ($env, $rounds rounds, $steps steps x $repeats repeats per run, $(date -u +%FT%TZ)${REF_ARGS:+, REF_ARGS=$REF_ARGS}${TREE_ARGS:+, TREE_ARGS=$TREE_ARGS}):"
for mode in $modes; do
  awk -v m="$mode" -v ref="$ref" '$1 == m {n++; r[n] = $3 / $2; a[n] = $2; b[n] = $3}
    function median(x, n,   i, j, t) {
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (x[j] < x[i]) {t = x[i]; x[i] = x[j]; x[j] = t}
      return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2 }
    END {printf "%s: median ratio this tree / %s = %.3f (median sps %.1f vs %.1f)\n", m, ref,
         median(r, n), median(b, n), median(a, n)}' "$log"
done
