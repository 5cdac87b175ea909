"""Env steps per second of the paper's double-pendulum configuration.

  python experiments/bench.py [--steps=2000 --repeats=5 --seeds=1]

Compiles one chunk of --steps training steps, runs it --repeats times and
reports the median. Also reports what bounds it: the FLOPs of one step (an
analytic count of its matmuls) over this machine's measured matmul rate, and
a tighter bound: the time of the same step with 8-wide networks (what the
networks' FLOPs do not explain) plus each part's FLOPs (online plan, target
plans, updates) at the measured rate of the matrix shape it multiplies.
The last line printed is `sps=<env steps per second per seed>`.
"""

from __future__ import annotations

import json
import os
import platform
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

import cli
import smpc_jax as sj

flags.DEFINE_integer("steps", 2000, "Training steps per timed chunk.")
flags.DEFINE_integer("repeats", 5, "Timed chunks; the median is reported.")
flags.DEFINE_integer("seeds", 1, "Seeds vmapped in the program.")
flags.DEFINE_string("out", "", "Write the figures to this JSON file too.")
FLAGS = flags.FLAGS


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


def main(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  for name in ("steps", "repeats", "seeds"):
    if getattr(FLAGS, name) < 1:
      cli.fail(f"{name}={getattr(FLAGS, name)} is invalid; it must be an integer >= 1.")
  config = sj.preset("idp", total_steps=FLAGS.steps * (FLAGS.repeats + 1))
  keys = jax.random.split(jax.random.PRNGKey(0), FLAGS.seeds)
  state = jax.jit(jax.vmap(lambda k: sj.init(config, k)))(keys)
  t = time.perf_counter()
  lowered = jax.jit(jax.vmap(lambda s: sj.run(s, FLAGS.steps)), donate_argnums=0).lower(state)
  chunk = lowered.compile()
  compile_s = time.perf_counter() - t
  flops_per_step = step_flops(config)
  state, _ = chunk(state)  # Warm-up: first touches of the buffer pages.
  jax.block_until_ready(state)
  times = []
  for i in range(FLAGS.repeats):
    t = time.perf_counter()
    state, _ = chunk(state)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t)
    print(f"chunk {i}: {FLAGS.steps / times[-1]:.1f} env steps/s per seed", flush=True)
  sps = FLAGS.steps / float(np.median(times))
  rate = matmul_rate()
  bound = rate * 1e9 / flops_per_step
  # A tighter bound: the same step with 8-wide networks (physics, planner
  # bookkeeping, replay: everything but the networks' FLOPs), plus each
  # part's FLOPs at the rate of the shape it multiplies.
  floor_ms = ms_per_step(config.replace(hidden_sizes=(8, 8)), FLAGS.steps, FLAGS.seeds)
  parts = step_parts_flops(config)
  shape_rates = {k: matmul_rate(rows, config.ensemble_size if k != "updates" else 1)
                 for k, (_, rows) in parts.items()}
  network_ms = sum(1e3 * flops * FLAGS.seeds / (shape_rates[k] * 1e9)
                   for k, (flops, _) in parts.items())
  shape_bound = 1e3 / (floor_ms + network_ms)
  result = dict(
      sps=sps, sps_all=[FLAGS.steps / t for t in times], seeds=FLAGS.seeds,
      steps_per_chunk=FLAGS.steps, compile_s=compile_s,
      flops_per_step=flops_per_step, matmul_gflops=rate,
      sps_bound_at_matmul_rate=bound, fraction_of_bound=sps / bound,
      floor_ms_per_step=floor_ms,
      rows_per_member={k: rows for k, (_, rows) in parts.items()},
      shape_gflops=shape_rates, sps_bound_at_shape_rates=shape_bound,
      backend=jax.devices()[0].platform, device=jax.devices()[0].device_kind,
      cpus=os.cpu_count(), machine=platform.processor() or platform.machine(),
      jax_version=jax.__version__,
      command=f"python experiments/bench.py --steps={FLAGS.steps} "
              f"--repeats={FLAGS.repeats} --seeds={FLAGS.seeds}")
  print(f"compile {compile_s:.1f}s; {flops_per_step / 1e6:.0f} MFLOP per env step; "
        f"matmul rate {rate:.0f} GFLOP/s -> bound {bound:.0f} steps/s; "
        f"reached {100 * sps / bound:.0f}% of it")
  print(f"without the networks' FLOPs a step takes {floor_ms:.2f} ms; at the rates of "
        f"the shapes the step multiplies ("
        + ", ".join(f"{k} {shape_rates[k]:.0f}" for k in parts)
        + f" GFLOP/s) the bound is {shape_bound:.0f} steps/s; reached "
        f"{100 * sps / shape_bound:.0f}% of it")
  if FLAGS.out:
    os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
    with open(FLAGS.out, "w") as f:
      json.dump(result, f, indent=2)
      f.write("\n")
  print(f"sps={sps:.1f}")


if __name__ == "__main__":
  app.run(main)
