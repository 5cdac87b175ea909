"""Train softMPCritic on several seeds at once, in one compiled program.

  python experiments/train.py --env=idp --seeds=5 --total_steps=20000 --out_dir=DIR

Every Config field is a flag (see --helpfull); unset ones keep the env preset.
Writes DIR/metrics.jsonl (one line per chunk), DIR/summary.json and
DIR/returns.png. The only Python loop runs once per chunk of steps.
"""

from __future__ import annotations

import json
import os
import time

from absl import app, flags, logging
import jax
import jax.numpy as jnp
import numpy as np

import cli
import devices
import smpc_jax as sj
from smpc_jax import sharding

flags.DEFINE_integer("seeds", 1, "Independent runs, vmapped in one program.")
flags.DEFINE_integer("seed", 0, "Base seed; run i uses PRNGKey(seed) split i ways.")
flags.DEFINE_string("out_dir", "runs/latest", "Where metrics, summary and plot go.")
flags.DEFINE_integer("eval_every", 0, "Evaluate every this many chunks (0: only at the end).")
cli.define_config_flags()
FLAGS = flags.FLAGS


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = cli.config_from_flags()
  if FLAGS.seeds < 1:
    cli.fail(f"seeds={FLAGS.seeds} is invalid; it must be an integer >= 1.")
  if FLAGS.eval_every < 0:
    cli.fail(f"eval_every={FLAGS.eval_every} is invalid; it must be >= 0.")
  mesh = devices.setup(FLAGS.seeds)  # None: one device; else seeds over a mesh.
  writer = sharding.is_writer()  # With several processes only process 0 writes.
  print_ = print if writer else (lambda *a, **k: None)
  out = cli.ensure_dir(FLAGS.out_dir) if writer else os.devnull
  n_seeds, chunk = FLAGS.seeds, min(config.chunk_steps, config.total_steps)
  print_(f"softMPCritic on {config.env}: {n_seeds} seed(s) x {config.total_steps} steps, "
         f"{devices.describe(mesh)}", flush=True)
  print_(config, flush=True)

  t0 = time.perf_counter()
  keys = sharding.seed_keys(jax.random.PRNGKey(FLAGS.seed), n_seeds, mesh)  # [S, 2]
  state = sharding.seed_jit(jax.vmap(lambda k: sj.init(config, k)), mesh)(keys)
  chunks = {}  # Steps per compiled chunk -> compiled program (at most two).

  def compiled(n):
    if n not in chunks:  # Lowered once; a Compiled refuses inputs sharded otherwise.
      chunks[n] = sharding.seed_jit(jax.vmap(lambda s: sj.run(s, n)), mesh,
                                    donate_argnums=0).lower(state).compile()
    return chunks[n]

  evaluate = sharding.seed_jit(
      jax.vmap(lambda s, k: sj.evaluate(s, k, config.eval_episodes)), mesh)
  eval_key = jax.random.PRNGKey(FLAGS.seed + 10_000)
  compiled(chunk)
  compile_s = time.perf_counter() - t0
  print_(f"compiled in {compile_s:.1f}s", flush=True)

  steps, curves, eval_points, run_s = [], [], [], 0.0
  done_steps = 0
  with open(os.path.join(out, "metrics.jsonl") if writer else os.devnull, "w") as log:
    chunk_index = 0
    while done_steps < config.total_steps:
      n = min(chunk, config.total_steps - done_steps)
      t = time.perf_counter()
      state, m = compiled(n)(state)
      m = sharding.gather(m)  # every leaf [S, n], numpy, on every process
      dt = time.perf_counter() - t
      run_s += dt
      done_steps += n
      chunk_index += 1
      finished = [m["episode_return"][i][m["done"][i]].tolist() for i in range(n_seeds)]
      mean_ret = [float(np.mean(r)) if r else float("nan") for r in finished]
      line = dict(step=done_steps, episode_returns=finished, mean_return=mean_ret,
                  q_loss=np.mean(m["q_loss"], 1).tolist(),
                  dyn_loss=np.mean(m["dyn_loss"], 1).tolist(),
                  q_mean=np.mean(m["q_mean"], 1).tolist(),
                  target_mean=np.mean(m["target_mean"], 1).tolist(),
                  online_ess=np.median(m["online_ess"], 1).tolist(), sps=n / dt)
      if FLAGS.eval_every and chunk_index % FLAGS.eval_every == 0:
        eval_key, k = jax.random.split(eval_key)
        r = sharding.gather(evaluate(state, sharding.seed_keys(k, n_seeds, mesh))).mean(1)
        line["eval_returns"] = r.tolist()
        eval_points.append((done_steps, r))
      log.write(json.dumps(line) + "\n")
      log.flush()
      steps.append(done_steps)
      curves.append(mean_ret)
      with np.errstate(all="ignore"):
        med = np.nanmedian(mean_ret) if np.any(np.isfinite(mean_ret)) else float("nan")
      print_(f"step {done_steps:>8d}  median train return {med:9.1f}  "
            f"q_loss {np.mean(line['q_loss']):9.3g}  dyn_loss {np.mean(line['dyn_loss']):8.3g}  "
            f"sps/seed {n / dt:7.1f}", flush=True)

  eval_key, k = jax.random.split(eval_key)
  t = time.perf_counter()
  final = sharding.gather(evaluate(state, sharding.seed_keys(k, n_seeds, mesh)))  # [S, episodes]
  eval_s = time.perf_counter() - t
  final_returns = final.mean(1)
  eval_points.append((done_steps, final_returns))
  summary = dict(
      env=config.env, seeds=n_seeds, total_steps=config.total_steps,
      final_returns=final_returns.tolist(),
      final_episode_returns=final.tolist(),
      final_return_iqm=cli.iqm(final_returns),
      final_return_iqm_ci95=cli.iqm_ci(final_returns),
      final_return_median=float(np.median(final_returns)),
      sps=config.total_steps / run_s, compile_s=compile_s, eval_s=eval_s,
      wall_s=time.perf_counter() - t0, backend=jax.devices()[0].platform,
      device=str(jax.devices()[0].device_kind), jax_version=jax.__version__,
      devices=jax.device_count() if mesh is not None else 1,
      processes=jax.process_count(), chunk_programs=len(chunks),
      config={k: v for k, v in config.__dict__.items()})
  if not writer:
    return
  cli.write_json(os.path.join(out, "summary.json"), summary)
  cli.plot_returns(os.path.join(out, "returns.png"), steps, np.array(curves).T, eval_points,
                   title=f"softMPCritic, {config.env}, {n_seeds} seeds")
  print(f"final evaluation returns per seed: {np.round(final_returns, 1).tolist()}")
  lo, hi = summary["final_return_iqm_ci95"]
  print(f"IQM {summary['final_return_iqm']:.1f} (95% CI {lo:.0f}-{hi:.0f} over seeds)  median {summary['final_return_median']:.1f}  "
        f"sps/seed {summary['sps']:.1f}  compile {compile_s:.1f}s  wall {summary['wall_s']:.1f}s")
  print(f"wrote {out}/metrics.jsonl, summary.json, returns.png")


if __name__ == "__main__":
  app.run(main)
