#!/usr/bin/env bash
# Issue 10's GPU check, one command of at most 8 minutes on a fresh GPU machine:
#   1. installs what the image lacks (brax, mujoco, mujoco-mjx, ...) from .whl/
#      (fill it first, where pip works: experiments/gpu_wheels.sh);
#   2. benchmarks idp (seeds 1,16,64,4) and hopper (seeds 1,16): bench_gpu.json,
#      bench_gpu_hopper.json;
#   3. one learning run, Hopper, 200k steps, 16 seeds, for as long as the time
#      left allows: its metrics.jsonl grows by one line per chunk;
#   4. prints issue 10's targets beside the measurements.
# With the device tool:
#   run(command="bash experiments/gpu_check.sh", carry=[".whl"], timeout_s=540)
# Results go to $OUT (which the device tool brings back; at most 8 files) or,
# where OUT is unset, to results/gpu_check/.
# GPU_CHECK_TINY=1 runs the same stages at a tiny size (to test this script on CPU).
# GPU_CHECK_BUDGET_S (default 470): seconds for the whole script.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${GPU_CHECK_BUDGET_S:-470}
py=${PY:-python3}
out=${OUT:-results/gpu_check}
mkdir -p "$out"
log="$out/gpu_check.log"
export PYTHONUNBUFFERED=1
left() { echo $(( budget - SECONDS )); }
say() { echo "[gpu_check $(printf '%3d' "$SECONDS")s] $*" | tee -a "$log"; }

# 1. Install what is missing, into /tmp/site (the image's jax stays).
if ! "$py" -c "import brax, mujoco.mjx" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "error: brax/mujoco are missing and .whl/ holds no wheels; run experiments/gpu_wheels.sh where pip works and carry .whl" >&2
    exit 2
  fi
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$py" -c "import jax, brax, mujoco; print('jax', jax.__version__, jax.devices(), 'brax', brax.__version__, 'mujoco', mujoco.__version__)" 2>&1 | grep -v -i warp | tee -a "$log"
backend=$("$py" -c "import jax; print(jax.devices()[0].platform)" 2>/dev/null)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$log"

if [ "${GPU_CHECK_TINY:-0}" = 1 ]; then
  bench_idp=(--seeds=1,2 --steps=20 --repeats=1)
  bench_hop=(--seeds=1,2 --steps=20 --repeats=1)
  learn=(--seeds=2 --total_steps=60 --chunk_steps=20 --num_samples=8 --target_samples=4
         --hidden_sizes=16 --batch_size=4 --eval_episodes=1 --episode_length=20)
  t_idp=400; t_hop=400
else
  bench_idp=(--seeds=1,16,64,4 --steps=1000 --repeats=3)
  bench_hop=(--seeds=1,16 --steps=500 --repeats=3)
  learn=(--seeds=16 --total_steps=200000 --chunk_steps=1000)
  t_idp=170; t_hop=130
fi

# 2. Benchmarks (each writes its JSON after every seed count).
say "bench idp ${bench_idp[*]} (at most ${t_idp}s)"
timeout -s INT -k 20 "$t_idp" "$py" experiments/bench.py --env=idp "${bench_idp[@]}" \
  --out="$out/bench_${backend}.json" 2>&1 | grep -v -i "warp\|warn" | tee -a "$log"
say "bench hopper ${bench_hop[*]} (at most ${t_hop}s)"
timeout -s INT -k 20 "$t_hop" "$py" experiments/bench.py --env=hopper "${bench_hop[@]}" \
  --out="$out/bench_${backend}_hopper.json" 2>&1 | grep -v -i "warp\|warn" | tee -a "$log"

# 3. Learning run for the time left. SIGINT stops it after the current chunk
# with a checkpoint and a summary (KILL 30 s later if a chunk runs long);
# a 40 s margin is kept for that and the report below.
t_learn=$(( $(left) - 40 ))
run_dir=${GPU_CHECK_RUN_DIR:-/tmp/gpu_check_hopper16}
if [ "$t_learn" -gt 30 ]; then
  say "learning run: hopper ${learn[*]} (at most ${t_learn}s)"
  timeout -s INT -k 30 "$t_learn" "$py" experiments/train.py --env=hopper "${learn[@]}" \
    --checkpoint_every=0 --overwrite --out_dir="$run_dir" 2>&1 | grep -v -i "warp\|warn" | tee -a "$log"
  # The run's small files only (its checkpoint stays behind: the device tool
  # brings back at most 8 files).
  mkdir -p "$out/hopper16"
  cp "$run_dir"/metrics.jsonl "$run_dir"/summary.json "$run_dir"/returns.png "$out/hopper16/" 2>/dev/null
else
  say "no time left for the learning run"
fi

# 4. The targets, as measured.
say "targets (issue 10) against this machine's figures:"
"$py" - "$out" <<'PY' 2>&1 | tee -a "$log"
import glob, json, os, sys
out = sys.argv[1]
for path in sorted(glob.glob(os.path.join(out, "bench_*.json"))):
  b = json.load(open(path))
  for r in b["runs"]:
    mem = r["peak_memory_bytes"]
    print(f"  {b['env']:6s} seeds {r['seeds']:3d}: {r['sps_per_seed']:9.1f}/seed "
          f"{r['sps_aggregate']:10.1f} aggregate, compile {r['compile_s']:.0f}s, peak "
          + (f"{mem / 2**30:.2f} GiB" if mem else "n/a"))
  for t in b["targets"]:
    print(f"  TARGET {t['target']}: wanted {t['wanted']}, measured {t['measured']:.2f}: "
          f"{'met' if t['met'] else 'NOT met'}")
  if not any("16 seeds on idp" in t["target"] for t in b["targets"]) and b["env"] == "idp":
    print("  TARGET aggregate >= 10000 env steps/s at 16 seeds on idp: not measured")
run = os.path.join(out, "hopper16")
s = (json.load(open(os.path.join(run, "summary.json")))
     if os.path.exists(os.path.join(run, "summary.json")) else {})
if s.get("finished"):
  print(f"  learning run finished: {s['total_steps']} steps x {s['seeds']} seeds, final IQM "
        f"{s['final_return_iqm']:.1f}, {s['sps']:.1f} env steps/s per seed")
elif os.path.exists(os.path.join(run, "metrics.jsonl")):
  lines = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
  if lines:
    last = lines[-1]
    rets = [r for r in last["mean_return"] if r == r]
    med = sorted(rets)[len(rets) // 2] if rets else float("nan")
    print(f"  learning run stopped at step {last['step']} of 200000 (time budget); median "
          f"train return in the last chunk {med:.1f}; {last['sps']:.1f} env steps/s per seed")
else:
  print("  learning run: no chunk finished")
PY
say "done; results in $out"
