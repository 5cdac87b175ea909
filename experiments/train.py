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
import smpc_jax as sj

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
  out = cli.ensure_dir(FLAGS.out_dir)
  n_seeds, chunk = FLAGS.seeds, min(config.chunk_steps, config.total_steps)
  name = "DDPG" if not config.uses_model else "softMPCritic"
  print(f"{name} (control={config.control}, targets={config.targets}) on {config.env}: "
        f"{n_seeds} seed(s) x {config.total_steps} steps, {jax.devices()[0].platform} backend",
        flush=True)
  print(config, flush=True)

  t0 = time.perf_counter()
  keys = jax.random.split(jax.random.PRNGKey(FLAGS.seed), n_seeds)
  state = jax.jit(jax.vmap(lambda k: sj.init(config, k)))(keys)
  chunks = {}  # Steps per compiled chunk -> compiled program (at most two).

  def compiled(n):
    if n not in chunks:
      chunks[n] = jax.jit(jax.vmap(lambda s: sj.run(s, n)), donate_argnums=0).lower(
          state).compile()
    return chunks[n]

  evaluate = jax.jit(jax.vmap(lambda s, k: sj.evaluate(s, k, config.eval_episodes)))
  eval_key = jax.random.PRNGKey(FLAGS.seed + 10_000)
  compiled(chunk)
  compile_s = time.perf_counter() - t0
  print(f"compiled in {compile_s:.1f}s", flush=True)

  steps, curves, eval_points, run_s = [], [], [], 0.0
  done_steps = 0
  with open(os.path.join(out, "metrics.jsonl"), "w") as log:
    chunk_index = 0
    while done_steps < config.total_steps:
      n = min(chunk, config.total_steps - done_steps)
      t = time.perf_counter()
      state, m = compiled(n)(state)
      m = jax.device_get(m)  # every leaf [S, n]
      dt = time.perf_counter() - t
      run_s += dt
      done_steps += n
      chunk_index += 1
      finished = [m["episode_return"][i][m["done"][i]].tolist() for i in range(n_seeds)]
      mean_ret = [float(np.mean(r)) if r else float("nan") for r in finished]
      line = dict(step=done_steps, episode_returns=finished, mean_return=mean_ret)
      # Per-seed chunk means; dyn_loss, actor_q and online_ess only where the
      # run's control/targets switches use a model, an actor, the planner.
      for name in ("q_loss", "dyn_loss", "q_mean", "target_mean", "actor_q"):
        if name in m:
          line[name] = np.mean(m[name], 1).tolist()
      if "online_ess" in m:
        line["online_ess"] = np.median(m["online_ess"], 1).tolist()
      line["sps"] = n / dt
      if FLAGS.eval_every and chunk_index % FLAGS.eval_every == 0:
        eval_key, k = jax.random.split(eval_key)
        r = np.asarray(evaluate(state, jax.random.split(k, n_seeds))).mean(1)
        line["eval_returns"] = r.tolist()
        eval_points.append((done_steps, r))
      log.write(json.dumps(line) + "\n")
      log.flush()
      steps.append(done_steps)
      curves.append(mean_ret)
      with np.errstate(all="ignore"):
        med = np.nanmedian(mean_ret) if np.any(np.isfinite(mean_ret)) else float("nan")
      print(f"step {done_steps:>8d}  median train return {med:9.1f}  "
            f"q_loss {np.mean(line['q_loss']):9.3g}  "
            f"dyn_loss {np.mean(line.get('dyn_loss', np.nan)):8.3g}  "
            f"sps/seed {n / dt:7.1f}", flush=True)

  eval_key, k = jax.random.split(eval_key)
  t = time.perf_counter()
  final = np.asarray(evaluate(state, jax.random.split(k, n_seeds)))  # [S, episodes]
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
      config={k: v for k, v in config.__dict__.items()})
  cli.write_json(os.path.join(out, "summary.json"), summary)
  cli.plot_returns(os.path.join(out, "returns.png"), steps, np.array(curves).T, eval_points,
                   title=f"{name}, {config.env}, {n_seeds} seeds")
  print(f"final evaluation returns per seed: {np.round(final_returns, 1).tolist()}")
  lo, hi = summary["final_return_iqm_ci95"]
  print(f"IQM {summary['final_return_iqm']:.1f} (95% CI {lo:.0f}-{hi:.0f} over seeds)  median {summary['final_return_median']:.1f}  "
        f"sps/seed {summary['sps']:.1f}  compile {compile_s:.1f}s  wall {summary['wall_s']:.1f}s")
  print(f"wrote {out}/metrics.jsonl, summary.json, returns.png")


if __name__ == "__main__":
  app.run(main)
