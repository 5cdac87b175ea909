#!/usr/bin/env bash
# The GPU check, one command of at most 9 minutes on a fresh GPU machine:
#   1. installs what the image lacks (brax, mujoco, mujoco-mjx, ...) from .whl/
#      (fill it first, where pip works: experiments/gpu/wheels.sh);
#   2. benchmarks idp and hopper (seeds 1,16,64; compile time, peak memory and
#      XLA_FLAGS in each JSON), alone on the GPU: bench_gpu.json,
#      bench_gpu_hopper.json; hopper at 16 seeds with the other compute dtype
#      (bench_gpu_hopper_<dtype>.json, in runs.tar.gz); idp at 16 seeds once more without the command
#      buffer flags (bench_gpu_nocmdbuf.json); the step's serial kernels as
#      XLA:GPU compiles them (serial_gpu_idp.json, step_ops.py --serial);
#   3. three learning runs side by side for the time left (metrics.jsonl grows
#      by one line per chunk): Hopper 200k steps x 16 seeds, and the paper's
#      pendulum 30k steps x 8 seeds with each ensemble branching (runs.tar.gz);
#   4. prints the targets beside the measurements.
# With the device tool:
#   run(command="GPU_CHECK_BUDGET_S=565 bash experiments/gpu/check.sh",
#       carry=[".whl", ".gl"], timeout_s=600)
# Results go to $OUT (which the device tool brings back; at most 8 files) or,
# where OUT is unset, to results/gpu_check/.
# GPU_CHECK_TINY=1 runs the same stages at a tiny size (to test this script on CPU).
# GPU_CHECK_BUDGET_S (default 470): seconds for the whole script.
# On a GPU it appends GPU_XLA_FLAGS to XLA_FLAGS (default: command buffers,
# i.e. CUDA graphs, also around while loops and conditionals, which XLA's
# default list leaves out; BUILD.md); GPU_XLA_FLAGS= sets none.
set -uo pipefail
cd "$(dirname "$0")/../.."
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
    echo "error: brax/mujoco are missing and .whl/ holds no wheels; run experiments/gpu/wheels.sh where pip works and carry .whl" >&2
    exit 2
  fi
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
# EGL for rendering (stage 3): the device tool's README has the .gl/ debs
# carried and unpacked where the image lacks the loaders.
if ls .gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q 'libEGL.so.1'; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
fi
[ -d /usr/local/nvidia/share/glvnd ] && \
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
"$py" -c "import jax, brax, mujoco; print('jax', jax.__version__, jax.devices(), 'brax', brax.__version__, 'mujoco', mujoco.__version__)" 2>&1 | grep -v -i warp | tee -a "$log"
backend=$("$py" -c "import jax; print(jax.devices()[0].platform)" 2>/dev/null)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee -a "$log"
base_xla_flags=${XLA_FLAGS:-}
if [ "$backend" = gpu ]; then
  gpu_xla_flags=${GPU_XLA_FLAGS---xla_gpu_enable_command_buffer=+WHILE,+CONDITIONAL}
  export XLA_FLAGS="${base_xla_flags:+$base_xla_flags }$gpu_xla_flags"
fi
say "XLA_FLAGS=${XLA_FLAGS:-}"

if [ "${GPU_CHECK_TINY:-0}" = 1 ]; then
  bench_idp=(--seeds=1,2 --steps=20 --repeats=1)
  bench_hop=(--seeds=1,2 --steps=20 --repeats=1)
  bench_ctl=(--seeds=2 --steps=20 --repeats=1)
  learn=(--seeds=2 --total_steps=60 --chunk_steps=20 --num_samples=8 --target_samples=4
         --hidden_sizes=16 --batch_size=4 --eval_episodes=1 --episode_length=20)
  idp_learn=("${learn[@]}" --eval_every=2)
  t_idp=400; t_hop=400; t_ctl=200; t_ser=300
else
  bench_idp=(--seeds=1,16,64 --steps=500 --repeats=3)
  bench_hop=(--seeds=1,16,64 --steps=300 --repeats=3)
  bench_ctl=(--seeds=16 --steps=500 --repeats=3)
  learn=(--seeds=16 --total_steps=200000 --chunk_steps=1000 --eval_every=50)
  idp_learn=(--seeds=8 --total_steps=30000 --chunk_steps=1000 --eval_every=10)
  t_idp=120; t_hop=110; t_ctl=50; t_ser=60
fi

# 2. Benchmarks (each writes its JSON after every seed count).
say "bench idp ${bench_idp[*]} (at most ${t_idp}s)"
timeout -s INT -k 20 "$t_idp" "$py" experiments/bench.py --env=idp "${bench_idp[@]}" \
  --out="$out/bench_${backend}.json" 2>&1 | grep -v -i "warp\|warn" | tee -a "$log"
say "bench hopper ${bench_hop[*]} (at most ${t_hop}s)"
timeout -s INT -k 20 "$t_hop" "$py" experiments/bench.py --env=hopper "${bench_hop[@]}" \
  --out="$out/bench_${backend}_hopper.json" 2>&1 | grep -v -i "warp\|warn" | tee -a "$log"
if [ "$backend" = gpu ] && [ -n "${gpu_xla_flags:-}" ]; then
  say "bench idp ${bench_ctl[*]} without $gpu_xla_flags (at most ${t_ctl}s)"
  XLA_FLAGS=$base_xla_flags timeout -s INT -k 20 "$t_ctl" "$py" experiments/bench.py --env=idp \
    "${bench_ctl[@]}" --out="$out/bench_${backend}_nocmdbuf.json" 2>&1 | grep -v -i "warp\|warn" | tee -a "$log"
fi
# The hopper preset's step with the other compute dtype (issue 31: bfloat16
# products with float32 accumulation against float32), at 16 seeds.
# Its JSON travels in runs.tar.gz ($OUT holds at most 8 files).
runs_root=${GPU_CHECK_RUN_DIR:-/tmp/gpu_check_runs}
mkdir -p "$runs_root"
other=$("$py" -c "import smpc_jax as sj; print({'float32': 'bfloat16'}.get(sj.preset('hopper').compute_dtype, 'float32'))" 2>/dev/null)
say "bench hopper ${bench_ctl[*]} --compute_dtype=$other (at most ${t_ctl}s)"
timeout -s INT -k 20 "$t_ctl" "$py" experiments/bench.py --env=hopper "${bench_ctl[@]}" \
  --compute_dtype="$other" --out="$runs_root/bench_${backend}_hopper_${other}.json" 2>&1 | grep -v -i "warp\|warn" | tee -a "$log"
say "serial kernels of the idp step as this backend compiles it (at most ${t_ser}s)"
timeout -k 10 "$t_ser" "$py" experiments/step_ops.py --env=idp --serial \
  --out="$out/serial_${backend}_idp.json" 2>&1 | grep -v -i "warp\|warn" | sed -n 2,4p | tee -a "$log"

# 3. Learning runs for the time left, side by side on the one GPU (each
# process may take a quarter of its memory; the benchmarks ran alone):
#   hopper16        Hopper, 200k steps, 16 seeds (this issue; issue 8's scale);
#   idp_per_step,   the paper's pendulum, 8 seeds x 30k steps, evaluated every
#   idp_per_sample  10k: which ensemble branching reproduces the paper (issue 7).
# SIGINT stops each after its current chunk with a summary (KILL 30 s later if
# a chunk runs long); 120 s are kept for that, the renders and the report.
# Their small files come back in runs.tar.gz (the device tool returns at most
# 8 files); checkpoints stay behind.
t_learn=$(( $(left) - 120 ))
if [ "$t_learn" -gt 30 ]; then
  learn_one() {  # name, flags...
    local name=$1; shift
    say "learning run $name: $* (at most ${t_learn}s)"
    XLA_PYTHON_CLIENT_MEM_FRACTION=0.25 timeout -s INT -k 30 "$t_learn" \
      "$py" experiments/train.py "$@" --checkpoint_every=0 --overwrite \
      --out_dir="$runs_root/$name" > "$runs_root/$name.log" 2>&1
    echo "$name exited $?" >> "$runs_root/$name.log"
  }
  mkdir -p "$runs_root"
  learn_one hopper16 --env=hopper "${learn[@]}" &
  learn_one idp_per_step --env=idp --branching=per_step "${idp_learn[@]}" &
  learn_one idp_per_sample --env=idp --branching=per_sample "${idp_learn[@]}" &
  wait
  # The best seed of two runs, rendered from their final checkpoints (GIF).
  render_best() {  # name, steps
    local seed
    seed=$("$py" -c "import json,sys; s=json.load(open(sys.argv[1])); r=s.get('final_returns') or [0]; print(max(range(len(r)), key=r.__getitem__))" "$runs_root/$1/summary.json" 2>/dev/null || echo 0)
    MUJOCO_GL=egl timeout -k 10 75 "$py" experiments/render.py --run_dir="$runs_root/$1" \
      --seed_index="$seed" --steps="$2" --out="$out/$1_agent.gif" 2>&1 | grep -v -i "warp\|warn" | tail -n 3 | sed "s/^/[render $1] /" | tee -a "$log"
  }
  render_best idp_per_step 200 &
  render_best hopper16 300 &
  wait
  for name in hopper16 idp_per_step idp_per_sample; do
    grep -v -i "warp\|warn" "$runs_root/$name.log" | tail -n 4 | sed "s/^/[$name] /" | tee -a "$log"
    rm -rf "$runs_root/$name/checkpoints"
    mv "$runs_root/$name.log" "$runs_root/$name/log.txt" 2>/dev/null
  done
  tar -C "$runs_root" -czf "$out/runs.tar.gz" hopper16 idp_per_step idp_per_sample \
    "bench_${backend}_hopper_${other}.json" 2>/dev/null
else
  say "no time left for the learning runs"
fi

# 4. The targets, as measured.
say "targets (issue 10) against this machine's figures:"
"$py" - "$out" "$runs_root" <<'PY' 2>&1 | tee -a "$log"
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
root = sys.argv[2]
for name in ("hopper16", "idp_per_step", "idp_per_sample"):
  run = os.path.join(root, name)
  s = (json.load(open(os.path.join(run, "summary.json")))
       if os.path.exists(os.path.join(run, "summary.json")) else {})
  lines = ([json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))]
           if os.path.exists(os.path.join(run, "metrics.jsonl")) else [])
  evals = [(l["step"], l["eval_returns"]) for l in lines if "eval_returns" in l]
  for step, r in evals:
    r = sorted(r)
    print(f"  {name}: evaluation at step {step}: median {r[len(r) // 2]:.1f} over {len(r)} seeds")
  if s.get("finished"):
    print(f"  {name} finished: {s['total_steps']} steps x {s['seeds']} seeds, final IQM "
          f"{s['final_return_iqm']:.1f} (95% CI {s['final_return_iqm_ci95'][0]:.0f}-"
          f"{s['final_return_iqm_ci95'][1]:.0f}), {s['sps']:.1f} env steps/s per seed")
  elif lines:
    last = lines[-1]
    rets = sorted(r for r in last["mean_return"] if r == r)
    med = rets[len(rets) // 2] if rets else float("nan")
    print(f"  {name} stopped at step {last['step']} of {s.get('total_steps', '?')} (time "
          f"budget); median train return in its last chunk {med:.1f}; "
          f"{last['sps']:.1f} env steps/s per seed")
  else:
    print(f"  {name}: no chunk finished")
PY
say "done; results in $out"
