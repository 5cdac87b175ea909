"""Where a step's time goes, by compute dtype (issue 31): the online planner
and the batch of target planners of a preset, alone, each with float32 and
bfloat16 products, and with 8-wide networks (the time that is not the
networks' arithmetic).

  python -m experiments.studies.precision_parts --env=hopper [--rounds=3] [--out=FILE.md]

Each part runs 20 times in one compiled loop at the preset's initial state;
the median of --rounds timings, the variants alternated round by round.
"""

from __future__ import annotations

import time

from absl import flags
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import files
import jax
import jax.numpy as jnp
import smpc_jax as sj
from smpc_jax import envs, train


@cli.once
def define_flags():
  flags.DEFINE_string("env", "hopper", f"Preset: {' | '.join(envs.names())}.")
  flags.DEFINE_integer("rounds", 3, "Timings per part and variant; the median is reported.")
  flags.DEFINE_string("out", "", "Markdown table to write (optional).")


FLAGS = flags.FLAGS
LOOPS = 20
VARIANTS = (("float32", {}), ("bfloat16", dict(compute_dtype="bfloat16")),
            ("8-wide networks", dict(hidden_sizes=(8, 8))))


def programs(config):
  """(online, targets): jitted loops of LOOPS planner calls at the initial state."""
  state = jax.jit(lambda k: sj.init(config, k))(jax.random.PRNGKey(0))
  obs = state.env_state.obs
  b = config.batch_size

  def online(s, key):
    return jax.lax.fori_loop(0, LOOPS, lambda i, p: train.plan(
        s, jax.random.fold_in(key, i), obs, p, s.q_params,
        num_samples=config.num_samples).plan, s.plan)

  def targets(s, key):
    def body(i, p):
      k = jax.random.fold_in(key, i)
      return jax.vmap(lambda kk, u: train.plan(
          s, kk, obs, u, s.q_target, num_samples=config.target_samples,
          model_key=jax.random.fold_in(k, 1)).plan)(jax.random.split(k, b), p)
    return jax.lax.fori_loop(0, LOOPS, body, jnp.zeros((b,) + s.plan.shape))

  return state, jax.jit(online), jax.jit(targets)


def main(argv):
  cli.no_positional(argv)
  if FLAGS.env not in envs.names():
    cli.fail(f"env={FLAGS.env!r} is not known; allowed: {', '.join(envs.names())}.")
  if FLAGS.rounds < 1:
    cli.fail(f"rounds={FLAGS.rounds} is invalid; it must be an integer >= 1.")
  if FLAGS.out:
    files.check_out_file(FLAGS.out, "out", (".md",))
  built = {name: programs(sj.preset(FLAGS.env, **kw)) for name, kw in VARIANTS}
  key = jax.random.PRNGKey(1)
  for state, online, targets in built.values():  # compile and warm up
    jax.block_until_ready((online(state, key), targets(state, key)))
  times = {(name, part): [] for name, _ in VARIANTS for part in ("online", "targets")}
  for _ in range(FLAGS.rounds):
    for name, (state, online, targets) in built.items():
      for part, f in (("online", online), ("targets", targets)):
        t = time.perf_counter()
        jax.block_until_ready(f(state, key))
        times[name, part].append((time.perf_counter() - t) / LOOPS * 1e3)
  ms = {k: float(np.median(v)) for k, v in times.items()}
  lines = [f"{FLAGS.env}: ms per call, median of {FLAGS.rounds} alternated rounds of {LOOPS} "
           f"calls ({jax.devices()[0].platform})", "",
           "| part | float32 | bfloat16 | ratio | 8-wide networks |", "|---|---:|---:|---:|---:|"]
  for part in ("online", "targets"):
    f32, bf16, floor = (ms[name, part] for name, _ in VARIANTS)
    lines.append(f"| {part} | {f32:.2f} | {bf16:.2f} | {f32 / bf16:.2f} | {floor:.2f} |")
  print("\n".join(lines))
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      f.write("\n".join(lines) + "\n")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main, define_flags)
