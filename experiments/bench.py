"""Env steps per second of the paper's configuration, per vmapped seed count.

  python experiments/bench.py --env=idp --seeds=1,4,16,64 [--steps=2000 --repeats=5]
      [--out=results/bench_<backend>.json] [--shape_bound] [--tiny] [--CONFIG_FIELD=VALUE...]

Every Config field is a flag, as in train.py (e.g. --compute_dtype=bfloat16,
--num_samples=400); unset ones keep the env's preset.

For each seed count: compiles one chunk of --steps training steps (the
compile time is reported), runs it --repeats times after a warm-up and reports
the median rate per seed and in aggregate, and the device's peak memory
(device.memory_stats(); n/a where the backend has none, as on CPU). What bounds
it: the FLOPs of one step (an analytic count of its matmuls) over this
device's measured matmul rate. --shape_bound adds a tighter bound (one more
compile per seed count): the time of the same step with 8-wide networks (what
the networks' FLOPs do not explain) plus each part's FLOPs at the measured
rate of the matrix shape it multiplies. The targets of issue 10 are printed
beside the figures when their seed counts are measured.
--tiny measures the step at tiny widths (`TINY`: 8 online samples, 2 per
target, 8-wide networks, batch 2), where the arithmetic is negligible and the
time is that of the step's chain of kernels, on a CPU too.
The last line printed is `sps=<env steps per second per seed, first seed count>`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time

from absl import flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import config_flags, files, stats
import smpc_jax as sj
from smpc_jax import envs

def env_names() -> tuple:
  """The registered env names. bench_vs.sh also runs this file against older
  packages, from before the registry (envs.NAMES then)."""
  return tuple(envs.names()) if hasattr(envs, "names") else tuple(envs.NAMES)


@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  config_flags.define_config_flags()  # --env and every Config field
  flags.DEFINE_list("seeds", ["1"], "Seed counts to measure, comma separated (e.g. 1,4,16,64).")
  flags.DEFINE_integer("steps", 2000, "Training steps per timed chunk.")
  flags.DEFINE_integer("repeats", 5, "Timed chunks; the median is reported.")
  flags.DEFINE_boolean("shape_bound", False, "Also measure the tighter shape-rate bound.")
  flags.DEFINE_string("out", "auto", "JSON file for the figures, rewritten after each seed "
                      "count; auto: results/bench_<backend>[_<env>].json; empty: none.")
  flags.DEFINE_string("table", "", "Also write the figures as a markdown table to this file.")
  flags.DEFINE_boolean("tiny", False, "Measure the step at tiny widths (TINY), where its time is "
                       "that of its serial chain of kernels.")


FLAGS = flags.FLAGS

# The tiny-width step (issue 18): the preset's structure, negligible arithmetic.
TINY = dict(num_samples=8, target_samples=2, hidden_sizes=(8, 8), batch_size=2)

# Issue 10's targets: on one H100-class GPU, idp at 16 seeds.
TARGET_AGGREGATE_16 = 10_000.0  # env steps/s, all 16 seeds together
TARGET_PER_SEED_RATIO_16 = 0.5  # per-seed rate at 16 seeds / at 1 seed


def parse_flags() -> list:
  """The seed counts, or one line naming the bad flag and exit 2."""
  if FLAGS.env not in env_names():
    cli.fail(f"env={FLAGS.env!r} is not known; allowed: {', '.join(env_names())}.")
  try:
    seeds = [int(s) for s in FLAGS.seeds]
  except ValueError:
    cli.fail(f"seeds={','.join(FLAGS.seeds)!r} is invalid; they must be integers >= 1.")
  if not seeds or any(s < 1 for s in seeds):
    cli.fail(f"seeds={','.join(FLAGS.seeds)!r} is invalid; give one or more integers >= 1.")
  if FLAGS.steps < 1:
    cli.fail(f"steps={FLAGS.steps} is invalid; it must be an integer >= 1.")
  if FLAGS.repeats < 1:
    cli.fail(f"repeats={FLAGS.repeats} is invalid; it must be an integer >= 1.")
  if FLAGS.out not in ("auto", ""):  # checked now, not after minutes of measuring
    files.check_out_file(FLAGS.out, "out", (".json",))
  if FLAGS.table:
    files.check_out_file(FLAGS.table, "table", (".md",))
  return seeds


def bench_config():
  """The preset of --env with the Config flags given (at tiny widths with
  --tiny), long enough that the buffer holds every timed step."""
  config = config_flags.config_from_flags()
  try:
    return sj.validate(config.replace(total_steps=FLAGS.steps * (FLAGS.repeats + 1),
                                      **(TINY if FLAGS.tiny else {})))
  except ValueError as e:
    cli.fail(str(e))


def config_args() -> list:
  """The Config flags given on the command line, as --name=value words."""
  words = []
  for field in dataclasses.fields(sj.Config):
    value = getattr(FLAGS, field.name)
    if field.name != "env" and value is not None:
      words.append(f"--{field.name}={','.join(map(str, value)) if isinstance(value, list) else value}")
  return words


def _times(f, *args, repeats=5):
  jax.block_until_ready(f(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(f(*args))
    times.append(time.perf_counter() - t)
  return np.asarray(times)


def matmul_rate(rows=640, members=1, width=256, loops=200):
  """Sustained f32 GFLOP/s of `members` stacked [rows, width] @ [width, width]
  products, each followed by SiLU: a hidden layer of the ensemble with
  `rows` samples per member. Default: the step's largest shape. The best of
  7 timings, since it serves as a bound (these machines are noisy)."""
  x = jnp.ones((members, rows, width))
  w = jnp.full((members, width, width), 1e-3)
  f = jax.jit(lambda x: jax.lax.fori_loop(
      0, loops, lambda i, x: jax.nn.silu(jnp.einsum("emk,ekn->emn", x, w)), x))
  return 2 * members * rows * width * width * loops / _times(f, x, repeats=7).min() / 1e9


def step_parts_flops(config) -> dict:
  """Matmul FLOPs of one training step by part, and the rows each ensemble
  member (or the Q-network) multiplies at once in that part."""
  env = sj.train.parts(config).environment
  obs, act, hid = env.obs_size, env.action_size, list(config.hidden_sizes)
  dyn = mlp_flops([obs + act] + hid + [obs])
  q = mlp_flops([obs + act] + hid + [1])
  rollout = config.horizon * dyn + q
  e = config.ensemble_size
  n_targets = config.batch_size * config.target_samples
  return {
      "online": (config.num_samples * rollout, config.num_samples // e),
      "targets": (n_targets * config.target_iterations * rollout, n_targets // e),
      "updates": (3 * config.batch_size * (q + e * dyn), config.batch_size),
  }


def ms_per_step(config, steps, seeds):
  """Wall time of one training step, in ms: the best of 3 chunks of `steps`."""
  keys = jax.random.split(jax.random.PRNGKey(0), seeds)
  state = jax.jit(jax.vmap(lambda k: sj.init(config, k)))(keys)
  chunk = jax.jit(jax.vmap(lambda s: sj.run(s, steps)[0]))
  state = chunk(state)
  return 1e3 * _times(chunk, state, repeats=3).min() / steps


def mlp_flops(sizes):
  """Multiply-adds x 2 of one forward pass through dense layers `sizes`."""
  return 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def step_flops(config) -> float:
  """Matmul FLOPs of one training step (XLA's cost analysis does not look
  inside loops on CPU): online plan, target plans, Q and dynamics updates
  (backward ~ 2 x forward)."""
  return float(sum(flops for flops, _ in step_parts_flops(config).values()))


def peak_memory_bytes():
  """Peak bytes in use on device 0 since start, or None where the backend
  keeps no statistics (CPU)."""
  try:
    stats = jax.devices()[0].memory_stats()
  except Exception:  # Not implemented on some backends.
    return None
  return None if not stats else stats.get("peak_bytes_in_use")


def measure(config, seeds: int, steps: int, repeats: int) -> dict:
  """Compile time, per-seed and aggregate env steps/s of `seeds` vmapped runs."""
  keys = jax.random.split(jax.random.PRNGKey(0), seeds)
  state = jax.jit(jax.vmap(lambda k: sj.init(config, k)))(keys)
  t = time.perf_counter()
  chunk = jax.jit(jax.vmap(lambda s: sj.run(s, steps)), donate_argnums=0).lower(state).compile()
  compile_s = time.perf_counter() - t
  state, _ = chunk(state)  # Warm-up: first touches of the buffer pages.
  jax.block_until_ready(state)
  times = []
  for i in range(repeats):
    t = time.perf_counter()
    state, _ = chunk(state)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t)
    print(f"  seeds {seeds} chunk {i}: {steps / times[-1]:.1f} env steps/s per seed", flush=True)
  sps = steps / float(np.median(times))
  del state
  return dict(seeds=seeds, sps_per_seed=sps, sps_aggregate=sps * seeds,
              sps_per_seed_all=[steps / t for t in times], compile_s=compile_s,
              peak_memory_bytes=peak_memory_bytes())


def targets(env: str, rows: list) -> list:
  """Issue 10's targets, as measured here (only those whose seed counts ran)."""
  by = {r["seeds"]: r for r in rows}
  out = []
  if env == "idp" and 16 in by:
    got = by[16]["sps_aggregate"]
    out.append(dict(target="aggregate env steps/s at 16 seeds on idp (one H100-class GPU)",
                    wanted=f">= {TARGET_AGGREGATE_16:.0f}", measured=got,
                    met=bool(got >= TARGET_AGGREGATE_16)))
  if 1 in by and 16 in by:
    ratio = by[16]["sps_per_seed"] / by[1]["sps_per_seed"]
    out.append(dict(target=f"per-seed rate at 16 seeds / at 1 seed ({env})",
                    wanted=f">= {TARGET_PER_SEED_RATIO_16:.2f}", measured=ratio,
                    met=bool(ratio >= TARGET_PER_SEED_RATIO_16)))
  return out


def main(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  seed_counts = parse_flags()
  config = bench_config()
  device = jax.devices()[0]
  print(f"bench {FLAGS.env}{' (tiny widths)' if FLAGS.tiny else ''} "
        f"{' '.join(config_args())}{' ' if config_args() else ''}"
        f"(compute_dtype {getattr(config, 'compute_dtype', 'float32')}) on {device.platform} "
        f"({device.device_kind}), seeds "
        f"{seed_counts}, {FLAGS.steps} steps x {FLAGS.repeats} repeats", flush=True)
  flops_per_step = step_flops(config)
  rows = []
  for seeds in seed_counts:
    try:
      row = measure(config, seeds, FLAGS.steps, FLAGS.repeats)
    except KeyboardInterrupt:  # SIGINT (Ctrl-C, or a time limit's `timeout -s INT`)
      done = ", ".join(str(r["seeds"]) for r in rows) or "none"
      path = write(rows, seed_counts, flops_per_step) if rows else None
      print(f"stopped by SIGINT while measuring {seeds} seeds; seed counts measured: {done}"
            + (f" (in {path})" if path else ""), flush=True)
      sys.exit(130)
    # The bound: all seeds' matmul FLOPs at the rate this device sustains on
    # the step's largest product, seeds x 640 rows (vmapped, they stack).
    rate = matmul_rate(rows=640 * seeds, loops=max(10, 200 // seeds))
    bound = rate * 1e9 / flops_per_step  # env steps/s, all seeds together
    row.update(matmul_gflops=rate, sps_aggregate_bound_at_matmul_rate=bound,
               fraction_of_bound=row["sps_aggregate"] / bound)
    if FLAGS.shape_bound:
      # Everything but the networks' FLOPs (physics, planner bookkeeping,
      # replay), plus each part's FLOPs at the rate of the shape it multiplies.
      floor_ms = ms_per_step(config.replace(hidden_sizes=(8, 8)), FLAGS.steps, seeds)
      parts = step_parts_flops(config)
      shape_rates = {k: matmul_rate(r, config.ensemble_size if k != "updates" else 1)
                     for k, (_, r) in parts.items()}
      network_ms = sum(1e3 * f * seeds / (shape_rates[k] * 1e9) for k, (f, _) in parts.items())
      row.update(floor_ms_per_step=floor_ms, shape_gflops=shape_rates,
                 rows_per_member={k: r for k, (_, r) in parts.items()},
                 sps_per_seed_bound_at_shape_rates=1e3 / (floor_ms + network_ms))
    rows.append(row)
    mem = row["peak_memory_bytes"]
    print(f"seeds {seeds:>3d}: {row['sps_per_seed']:9.1f} env steps/s per seed, "
          f"{row['sps_aggregate']:10.1f} aggregate; compile {row['compile_s']:.1f}s; peak memory "
          + (f"{mem / 2**20:.0f} MiB" if mem is not None else "n/a") + "; "
          f"{100 * row['fraction_of_bound']:.0f}% of the matmul bound {bound:.0f} "
          f"({rate:.0f} GFLOP/s)"
          + (f"; shape bound {row['sps_per_seed_bound_at_shape_rates']:.0f}/seed"
             if FLAGS.shape_bound else ""), flush=True)
    write(rows, seed_counts, flops_per_step)
  checks = targets(FLAGS.env, rows)
  for c in checks:
    print(f"TARGET {c['target']}: wanted {c['wanted']}, measured {c['measured']:.2f} -> "
          f"{'met' if c['met'] else 'NOT met'}"
          + ("" if device.platform == "gpu" else " (not a GPU: for reference only)"))
  print(f"{flops_per_step / 1e6:.0f} MFLOP per env step (per seed)")
  path = write(rows, seed_counts, flops_per_step)
  if path:
    print(f"wrote {path}")
  if FLAGS.table:
    write_table(FLAGS.table, rows)
    print(f"wrote {FLAGS.table}")
  print(f"sps={rows[0]['sps_per_seed']:.1f}")


def write_table(path, rows):
  device = jax.devices()[0]
  lines = [f"| seeds | env steps/s per seed | aggregate | compile s | peak memory | "
           f"% of matmul bound |", "|---:|---:|---:|---:|---:|---:|"]
  for r in rows:
    mem = r["peak_memory_bytes"]
    lines.append(f"| {r['seeds']} | {r['sps_per_seed']:.1f} | {r['sps_aggregate']:.1f} | "
                 f"{r['compile_s']:.1f} | {'n/a' if mem is None else f'{mem / 2**20:.0f} MiB'} | "
                 f"{100 * r['fraction_of_bound']:.0f}% |")
  lines += ["", f"{FLAGS.env} on {device.platform} ({device.device_kind}, {os.cpu_count()} "
            f"cpus), jax {jax.__version__}; {FLAGS.steps} steps per timed chunk, median of "
            f"{FLAGS.repeats}."]
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def out_path() -> str:
  if FLAGS.out != "auto":
    return FLAGS.out
  suffix = ("" if FLAGS.env == "idp" else f"_{FLAGS.env}") + ("_tiny" if FLAGS.tiny else "")
  return os.path.join("results", f"bench_{jax.devices()[0].platform}{suffix}.json")


def write(rows, seed_counts, flops_per_step) -> str:
  """The figures so far (and the targets they meet) as JSON; returns the path."""
  path = out_path()
  if not path:
    return ""
  device = jax.devices()[0]
  result = dict(
      env=FLAGS.env, tiny=FLAGS.tiny, config_flags=config_args(), sps=rows[0]["sps_per_seed"],
      runs=rows,
      targets=targets(FLAGS.env, rows),
      steps_per_chunk=FLAGS.steps, repeats=FLAGS.repeats,
      flops_per_step=flops_per_step, matmul_gflops=rows[0]["matmul_gflops"],
      sps_bound_at_matmul_rate=rows[0]["sps_aggregate_bound_at_matmul_rate"] / rows[0]["seeds"],
      backend=device.platform, device=device.device_kind, devices=jax.device_count(),
      cpus=os.cpu_count(), machine=platform.processor() or platform.machine(),
      jax_version=jax.__version__, xla_flags=os.environ.get("XLA_FLAGS", ""),
      command=" ".join(["python experiments/bench.py", f"--env={FLAGS.env}",
                        f"--seeds={','.join(map(str, seed_counts))}", f"--steps={FLAGS.steps}",
                        f"--repeats={FLAGS.repeats}"] + (["--shape_bound"] if FLAGS.shape_bound else [])
                       + (["--tiny"] if FLAGS.tiny else []) + config_args()))
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
    f.write("\n")
  return path


if __name__ == "__main__":
  cli.run(main, define_flags)
