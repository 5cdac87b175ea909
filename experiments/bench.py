"""Env steps per second of the paper's double-pendulum configuration.

  python experiments/bench.py [--steps=2000 --repeats=5 --seeds=1]

Compiles one chunk of --steps training steps, runs it --repeats times and
reports the median. Also reports what bounds it: the FLOPs of one step (an
analytic count of its matmuls) over this machine's measured matmul rate.
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

import smpc_jax as sj

flags.DEFINE_integer("steps", 2000, "Training steps per timed chunk.")
flags.DEFINE_integer("repeats", 5, "Timed chunks; the median is reported.")
flags.DEFINE_integer("seeds", 1, "Seeds vmapped in the program.")
flags.DEFINE_string("out", "", "Write the figures to this JSON file too.")
FLAGS = flags.FLAGS


def matmul_rate(repeats=5):
  """Sustained f32 GFLOP/s of the step's dominant shape, [640, 256] @ [256, 256]."""
  x, w = jnp.ones((640, 256)), jnp.full((256, 256), 1e-3)

  @jax.jit
  def f(x):
    return jax.lax.fori_loop(0, 200, lambda i, x: jax.nn.silu(x @ w), x)

  f(x).block_until_ready()
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    f(x).block_until_ready()
    times.append(time.perf_counter() - t)
  return 2 * 640 * 256 * 256 * 200 / np.median(times) / 1e9


def mlp_flops(sizes):
  """Multiply-adds x 2 of one forward pass through dense layers `sizes`."""
  return 2 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def step_flops(config) -> float:
  """Matmul FLOPs of one training step (XLA's cost analysis does not look
  inside loops on CPU): online plan, target plans, Q and dynamics updates
  (backward ~ 2 x forward)."""
  env = sj.train.parts(config).environment
  obs, act, hid = env.obs_size, env.action_size, list(config.hidden_sizes)
  dyn = mlp_flops([obs + act] + hid + [obs])
  q = mlp_flops([obs + act] + hid + [1])
  rollout = config.horizon * dyn + q
  online = config.num_samples * rollout
  targets = config.batch_size * config.target_samples * config.target_iterations * rollout
  updates = 3 * config.batch_size * (q + config.ensemble_size * dyn)
  return float(online + targets + updates)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
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
  result = dict(
      sps=sps, sps_all=[FLAGS.steps / t for t in times], seeds=FLAGS.seeds,
      steps_per_chunk=FLAGS.steps, compile_s=compile_s,
      flops_per_step=flops_per_step, matmul_gflops=rate,
      sps_bound_at_matmul_rate=bound, fraction_of_bound=sps / bound,
      backend=jax.devices()[0].platform, device=jax.devices()[0].device_kind,
      cpus=os.cpu_count(), machine=platform.processor() or platform.machine(),
      jax_version=jax.__version__,
      command=f"python experiments/bench.py --steps={FLAGS.steps} "
              f"--repeats={FLAGS.repeats} --seeds={FLAGS.seeds}")
  print(f"compile {compile_s:.1f}s; {flops_per_step / 1e6:.0f} MFLOP per env step; "
        f"matmul rate {rate:.0f} GFLOP/s -> bound {bound:.0f} steps/s; "
        f"reached {100 * sps / bound:.0f}% of it")
  if FLAGS.out:
    os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
    with open(FLAGS.out, "w") as f:
      json.dump(result, f, indent=2)
      f.write("\n")
  print(f"sps={sps:.1f}")


if __name__ == "__main__":
  app.run(main)
