"""A vmapped hyperparameter sweep: values x seeds, one compiled program.

  python experiments/sweep.py --env=idp --param=tau --values=0.005,0.02 \
      --seeds=2 --total_steps=20000 --out_dir=DIR

--param is one of the hyperparameters held as array leaves of the state
(temperature, noise_var, gamma, tau, learning_rate); every other Config field
is a flag as in train.py. Writes DIR/summary.json (final evaluation returns
per value and seed, their IQM and median) and DIR/returns.png.
"""

from __future__ import annotations

import os
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

import cli
import smpc_jax as sj

SWEEPABLE = ("temperature", "noise_var", "gamma", "tau", "learning_rate")
flags.DEFINE_string("param", "tau", f"What to sweep: {', '.join(SWEEPABLE)}.")
flags.DEFINE_list("values", ["0.005", "0.02"], "Values of --param, comma separated.")
flags.DEFINE_integer("seeds", 2, "Seeds per value.")
flags.DEFINE_integer("seed", 0, "Base seed.")
flags.DEFINE_string("out_dir", "runs/sweep", "Where summary and plot go.")
cli.define_config_flags()
FLAGS = flags.FLAGS


def with_value(state: sj.TrainState, param: str, value) -> sj.TrainState:
  """`state` with hyperparameter `param` set to `value` (a traced scalar)."""
  if param == "learning_rate":
    def set_lr(opt):  # optax.inject_hyperparams keeps it in the optimiser state
      return opt._replace(hyperparams={**opt.hyperparams,
                                       "learning_rate": jnp.asarray(value, jnp.float32)})
    return state.replace(q_opt=set_lr(state.q_opt), dyn_opt=set_lr(state.dyn_opt))
  return state.replace(hparams=state.hparams.replace(**{param: jnp.asarray(value, jnp.float32)}))


def main(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  config = cli.config_from_flags()
  if FLAGS.param not in SWEEPABLE:
    cli.fail(f"param={FLAGS.param!r} is invalid; allowed: {', '.join(SWEEPABLE)}.")
  if not FLAGS.values:
    cli.fail("values='' is invalid; give one or more numbers, comma separated.")
  try:
    values = [float(v) for v in FLAGS.values]
  except ValueError:
    cli.fail(f"values={','.join(FLAGS.values)!r} is invalid; they must be numbers.")
  for v in values:  # The same checks as the Config's own field.
    try:
      sj.validate(config.replace(**{FLAGS.param: v}))
    except ValueError as e:
      cli.fail(str(e))
  if FLAGS.seeds < 1:
    cli.fail(f"seeds={FLAGS.seeds} is invalid; it must be an integer >= 1.")
  out = cli.ensure_dir(FLAGS.out_dir)
  n_runs = len(values) * FLAGS.seeds
  print(f"sweep {FLAGS.param} over {values} x {FLAGS.seeds} seeds = {n_runs} runs in one "
        f"program, {config.total_steps} steps each", flush=True)

  keys = jax.random.split(jax.random.PRNGKey(FLAGS.seed), FLAGS.seeds)
  keys = jnp.tile(keys, (len(values), 1))  # run i: value i // seeds, seed i % seeds
  swept = jnp.repeat(jnp.asarray(values, jnp.float32), FLAGS.seeds)
  init = jax.vmap(lambda k, v: with_value(sj.init(config, k), FLAGS.param, v))
  state = jax.jit(init)(keys, swept)
  chunk = min(config.chunk_steps, config.total_steps)
  t0 = time.perf_counter()
  run = jax.jit(jax.vmap(lambda s: sj.run(s, chunk)), donate_argnums=0)
  steps, curves, done = [], [], 0
  while done < config.total_steps:  # total_steps is rounded up to whole chunks
    state, m = run(state)
    m = jax.device_get(m)
    done += chunk
    rets = [m["episode_return"][i][m["done"][i]] for i in range(n_runs)]
    curves.append([float(np.mean(r)) if len(r) else float("nan") for r in rets])
    steps.append(done)
    by_value = np.nanmedian(np.reshape(curves[-1], (len(values), -1)), 1)
    print(f"step {done:>8d}  median train return per value "
          f"{np.round(by_value, 0).tolist()}  ({time.perf_counter() - t0:.0f}s)", flush=True)
  evaluate = jax.jit(jax.vmap(lambda s, k: sj.evaluate(s, k, config.eval_episodes)))
  final = np.asarray(evaluate(state, jax.random.split(jax.random.PRNGKey(FLAGS.seed + 10_000),
                                                      n_runs))).mean(1)
  final = final.reshape(len(values), FLAGS.seeds)
  summary = dict(
      env=config.env, param=FLAGS.param, values=values, seeds=FLAGS.seeds,
      total_steps=done, final_returns=final.tolist(),
      final_return_iqm=[cli.iqm(r) for r in final],
      final_return_iqm_ci95=[cli.iqm_ci(r) for r in final],
      final_return_median=[float(np.median(r)) for r in final],
      wall_s=time.perf_counter() - t0, backend=jax.devices()[0].platform,
      config={k: v for k, v in config.__dict__.items()})
  cli.write_json(os.path.join(out, "summary.json"), summary)
  curves = np.asarray(curves).T.reshape(len(values), FLAGS.seeds, -1)
  cli.plot_sweep(os.path.join(out, "returns.png"), steps, curves, values,
                 title=f"softMPCritic, {config.env}: {FLAGS.param} sweep, {FLAGS.seeds} seeds each")
  for v, r in zip(values, final):
    print(f"{FLAGS.param}={v:g}: final evaluation returns {np.round(r, 1).tolist()}  "
          f"IQM {cli.iqm(r):.1f} (95% CI {cli.iqm_ci(r)[0]:.0f}-{cli.iqm_ci(r)[1]:.0f})")
  print(f"wrote {out}/summary.json, returns.png")


if __name__ == "__main__":
  app.run(main)
