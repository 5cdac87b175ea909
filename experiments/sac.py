"""SAC baseline (the paper's Fig. 4) through brax's own trainer, on the same
MJX environment object softMPCritic trains on.

  python experiments/sac.py --env=hopper --seeds=5 --total_steps=1000000 --out_dir=DIR

Writes what experiments/train.py writes, so experiments/plot.py overlays both:
DIR/metrics.jsonl (one line per evaluation point: step, eval_returns per seed)
and DIR/summary.json (final_returns per seed, IQM and its 95% interval).

Matched to our harness:
- one environment (num_envs=1) and one gradient update of batch 32 per env
  step (grad_updates_per_step=1, batch_size=32): the same replay ratio and the
  same number of Q updates as softMPCritic, whose Q takes one Adam step on a
  batch of 32 per env step; no random warm-up (min_replay_size=0, as ours
  trains from step 1). Adam 3e-4, gamma 0.99, tau 0.005, 256-256 MLPs.
- evaluation: the mean of --eval_episodes episodes of up to episode_length
  steps with SAC's deterministic (mean) action, as our evaluation runs full
  episodes with the online controller.

Where brax's trainer does not fit, adapted at the edge:
- wrappers: we pass brax's `envs.training.wrap` as wrap_env_fn explicitly, so
  the trainer's Vmap/Episode/AutoReset wrappers also go around an env that
  only has brax's interface (reset/step, observation_size, action_size and a
  State with pipeline_state/obs/reward/done/metrics/info) without
  subclassing brax.envs.Env;
- episodes: brax's EpisodeWrapper truncates at episode_length and flags it
  in info["truncation"]; its SAC loss drops truncated transitions instead of
  bootstrapping through them (ours bootstraps), one transition in 1000;
- logging: brax's progress_fn(step, metrics) is the only hook; it collects
  'eval/episode_reward' at each of brax's num_evals points (one every
  --eval_every env steps, plus step 0), and the files are rewritten after each
  seed, so a cut-off study keeps its finished seeds;
- seeds: brax's train is its own jit around pmap and a Python loop, so seeds
  run one after another (each recompiles);
- jax: brax 0.14.2 still calls jax.device_put_replicated, which jax 0.10
  removed; `_restore_device_put_replicated` supplies it (stack one copy per
  device, sharded over them), only where jax lacks it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

from absl import flags, logging
import cli  # noqa: I001  (first: it checks the environment before mujoco loads)
from brax.envs import training as brax_training
from brax.training.agents.sac import networks as sac_networks
from brax.training.agents.sac import train as sac
import jax
import numpy as np

from smpc_jax import envs
from smpc_jax.config import ENVS, check_seed, float32_problem

flags.DEFINE_string("env", "hopper", f"Environment: {' | '.join(ENVS)}.")
flags.DEFINE_integer("seeds", 1, "Independent runs, one after another.")
flags.DEFINE_integer("seed", 0, "Base seed; run i uses seed + i.")
flags.DEFINE_integer("total_steps", 1_000_000, "Environment steps per run.")
flags.DEFINE_integer("episode_length", 1000, "Steps before truncation.")
flags.DEFINE_integer("eval_every", 10_000, "Environment steps between evaluations.")
flags.DEFINE_integer("eval_episodes", 4, "Evaluation episodes per point (brax's num_eval_envs).")
flags.DEFINE_integer("batch_size", 32, "SAC batch per gradient update (ours: 32).")
flags.DEFINE_integer("grad_updates_per_step", 1, "Gradient updates per env step (ours: 1).")
flags.DEFINE_integer("min_replay_size", 0, "Prefill steps before updates (ours: 0).")
flags.DEFINE_float("learning_rate", 3e-4, "Adam, actor and critic.")
flags.DEFINE_float("gamma", 0.99, "Discount.")
flags.DEFINE_float("tau", 0.005, "Polyak rate of the target critic.")
flags.DEFINE_list("hidden_sizes", ["256", "256"], "Actor and critic MLP widths.")
flags.DEFINE_string("out_dir", "runs/sac", "Where metrics.jsonl and summary.json go.")
flags.DEFINE_boolean("overwrite", False, "Replace a previous run in --out_dir.")
FLAGS = flags.FLAGS


def _restore_device_put_replicated():
  """brax's SAC replicates its state with jax.device_put_replicated, gone from
  jax 0.10: put it back as one stacked copy per device, sharded over them."""
  if hasattr(jax, "device_put_replicated"):
    return

  def device_put_replicated(x, devices):
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("d",)),
                                          jax.sharding.PartitionSpec("d"))
    return jax.tree.map(
        lambda a: jax.device_put(np.stack([np.asarray(a)] * len(devices)), sharding), x)

  jax.device_put_replicated = device_put_replicated


def check_flags() -> tuple:
  """Exits with one line naming a bad flag; returns the hidden sizes."""
  if FLAGS.env not in ENVS:
    cli.fail(f"env={FLAGS.env!r} is not known; allowed: {', '.join(ENVS)}.")
  for name in ("seeds", "total_steps", "episode_length", "eval_every", "eval_episodes",
               "batch_size", "grad_updates_per_step"):
    if getattr(FLAGS, name) < 1:
      cli.fail(f"{name}={getattr(FLAGS, name)} is invalid; it must be an integer >= 1.")
  if not 0 <= FLAGS.min_replay_size < FLAGS.total_steps:
    cli.fail(f"min_replay_size={FLAGS.min_replay_size} is invalid; it must lie in "
             f"[0, total_steps={FLAGS.total_steps}).")
  if FLAGS.eval_every > FLAGS.total_steps:
    cli.fail(f"eval_every={FLAGS.eval_every} is invalid; it must be <= total_steps="
             f"{FLAGS.total_steps}.")
  for name, top in (("learning_rate", None), ("gamma", 1), ("tau", 1)):
    v = getattr(FLAGS, name)
    problem = float32_problem(v, positive=True)  # as Config's: finite, > 0 in float32
    if top is not None and math.isfinite(v) and not 0 < v <= top:
      problem = f"it must lie in (0, {top}]"
    if problem:
      cli.fail(f"{name}={v} is invalid; {problem}.")
  try:
    check_seed(FLAGS.seed, FLAGS.seeds)
  except ValueError as e:
    cli.fail(str(e))
  try:
    hidden = tuple(int(h) for h in FLAGS.hidden_sizes)
  except ValueError:
    hidden = ()
  if not hidden or min(hidden) < 1:
    cli.fail(f"hidden_sizes={','.join(FLAGS.hidden_sizes)!r} is invalid; "
             "it must be one or more integers >= 1.")
  return hidden


def run_seed(env, seed: int, hidden) -> list:
  """One brax SAC run; returns [(step, eval return, training metrics)]."""
  points = []

  def progress(step, metrics):
    points.append((int(step), float(metrics["eval/episode_reward"]),
                   {k.split("/", 1)[1]: float(v) for k, v in metrics.items()
                    if k.startswith("training/")}))
    print(f"  seed {seed} step {int(step):>8d}  eval return "
          f"{float(metrics['eval/episode_reward']):9.1f}", flush=True)

  sac.train(
      environment=env,
      num_timesteps=FLAGS.total_steps,
      episode_length=FLAGS.episode_length,
      wrap_env_fn=brax_training.wrap,
      num_envs=1,
      num_eval_envs=FLAGS.eval_episodes,
      learning_rate=FLAGS.learning_rate,
      discounting=FLAGS.gamma,
      tau=FLAGS.tau,
      seed=seed,
      batch_size=FLAGS.batch_size,
      grad_updates_per_step=FLAGS.grad_updates_per_step,
      min_replay_size=FLAGS.min_replay_size,
      max_replay_size=min(1_000_000, FLAGS.total_steps),
      num_evals=FLAGS.total_steps // FLAGS.eval_every + 1,
      deterministic_eval=True,
      network_factory=functools.partial(sac_networks.make_sac_networks,
                                        hidden_layer_sizes=hidden),
      progress_fn=progress,
  )
  return points


def write_outputs(out, runs, wall_s, sps, hidden):
  """metrics.jsonl: one line per evaluation point over the finished seeds;
  summary.json: the last point's returns per seed, their IQM and interval."""
  with open(os.path.join(out, "metrics.jsonl"), "w") as f:
    for i, (step, _, _) in enumerate(runs[0]):
      line = dict(step=step, eval_returns=[r[i][1] for r in runs])
      for name in ("critic_loss", "actor_loss", "alpha"):
        if name in runs[0][i][2]:
          line[name] = [r[i][2][name] for r in runs]
      f.write(json.dumps(line) + "\n")
  final = np.array([r[-1][1] for r in runs])
  cli.write_json(os.path.join(out, "summary.json"), dict(
      algorithm="sac (brax.training.agents.sac)", env=FLAGS.env, seeds=len(runs),
      total_steps=runs[0][-1][0], final_returns=final.tolist(),
      final_return_iqm=cli.iqm(final), final_return_iqm_ci95=cli.iqm_ci(final),
      final_return_median=float(np.median(final)), sps=sps, wall_s=wall_s,
      backend=jax.devices()[0].platform, device=str(jax.devices()[0].device_kind),
      jax_version=jax.__version__,
      config=dict(num_envs=1, batch_size=FLAGS.batch_size,
                  grad_updates_per_step=FLAGS.grad_updates_per_step,
                  min_replay_size=FLAGS.min_replay_size, learning_rate=FLAGS.learning_rate,
                  gamma=FLAGS.gamma, tau=FLAGS.tau, hidden_sizes=list(hidden),
                  episode_length=FLAGS.episode_length, eval_every=FLAGS.eval_every,
                  eval_episodes=FLAGS.eval_episodes, deterministic_eval=True)))


def main(argv):
  with cli.write_faults(f"What was written before is kept in {FLAGS.out_dir}."):
    train(argv)


def train(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  hidden = check_flags()
  _restore_device_put_replicated()
  out = FLAGS.out_dir
  cli.claim_run_dir(out, "sac.py", overwrite=FLAGS.overwrite)
  env = envs.make(FLAGS.env).env
  print(f"SAC (brax) on {FLAGS.env}: {FLAGS.seeds} seed(s) x {FLAGS.total_steps} steps, "
        f"batch {FLAGS.batch_size} x {FLAGS.grad_updates_per_step} update(s) per env step, "
        f"{jax.devices()[0].platform} backend", flush=True)
  t0, runs = time.perf_counter(), []
  for i in range(FLAGS.seeds):
    t = time.perf_counter()
    runs.append(run_seed(env, FLAGS.seed + i, hidden))
    wall = time.perf_counter() - t0
    sps = [p[2].get("sps", np.nan) for p in runs[-1][1:]]
    write_outputs(out, runs, wall, float(np.nanmedian(sps)) if sps else float("nan"), hidden)
    print(f"seed {FLAGS.seed + i}: final eval return {runs[-1][-1][1]:.1f} "
          f"({time.perf_counter() - t:.0f}s)", flush=True)
  summary = json.load(open(os.path.join(out, "summary.json")))
  lo, hi = summary["final_return_iqm_ci95"]
  print(f"final evaluation returns per seed: {np.round(summary['final_returns'], 1).tolist()}")
  print(f"IQM {summary['final_return_iqm']:.1f} (95% CI {lo:.0f}-{hi:.0f} over seeds)  "
        f"wall {summary['wall_s']:.0f}s")
  print(f"wrote {out}/metrics.jsonl, summary.json")


if __name__ == "__main__":
  cli.run(main)
