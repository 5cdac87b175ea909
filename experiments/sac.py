"""SAC baseline (the paper's Fig. 4) through brax's own trainer, on the same
MJX environment object softMPCritic trains on.

  python experiments/sac.py --env=hopper --seeds=5 --total_steps=1000000 --out_dir=DIR

Writes what experiments/train.py writes, so experiments/plot.py overlays both:
DIR/metrics.jsonl (one line per evaluation point: step, eval_returns per seed)
and DIR/summary.json (final_returns per seed, IQM and its 95% interval).

Defaults: the authors' baseline, CleanRL's SAC, where brax's trainer can
express it: one environment, one gradient update of batch 256 per env step,
5000 prefill steps before any update (--min_replay_size), a target entropy
of -|A| (--target_entropy=-1 per action dimension, set through
brax_sac.target_entropy), ReLU 256-256 MLPs (brax's default), gamma 0.99,
tau 0.005. What brax cannot express, and what we use instead:
- CleanRL's prefill acts uniformly at random; brax's acts with the initial
  (untrained) policy;
- CleanRL's learning rates are 1e-3 (Q), 3e-4 (policy), 1e-3 (alpha); brax has
  one --learning_rate for Q and policy (3e-4 here) and alpha at 3e-4;
- CleanRL updates the actor twice every second step; brax once every step.
- the observation: Fig. 4's SAC (`make fig4-sac`) runs on `--env=hopper`,
  which keeps the x position, as softMPCritic and the authors' own baseline
  script do (CleanRL's SAC on Hopper-v5 with
  exclude_current_positions_from_observation=False); `--env=hopper_gym` is
  Gymnasium's default observation without x, from which CleanRL's published
  SAC returns were learned (`BASELINE_ENV=hopper_gym`).
The settings before these (matched to softMPCritic's own harness: batch 32,
no prefill, brax's -0.5 |A|) are `--batch_size=32 --min_replay_size=0
--target_entropy=-0.5`.
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
  'eval/episode_reward' at each of brax's num_evals points
  (total_steps // eval_every + 1): step 0, then evenly over the steps after
  brax's prefill of min_replay_size random steps, which it counts, at
  min_replay_size + k * ceil((total_steps - min_replay_size) / (num_evals - 1))
  (e.g. 24500, 44000, .., 200000 for 200k steps, every 20k, prefill 5000);
  the files are rewritten after each seed, so a cut-off study keeps its
  finished seeds;
- seeds: brax's train is its own jit around pmap and a Python loop, so seeds
  run one after another (each recompiles);
- jax: brax 0.14.2 still calls jax.device_put_replicated, which jax 0.10
  removed; `brax_sac.restore_device_put_replicated` supplies it, only where
  jax lacks it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import time

from absl import flags, logging
from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import files, stats
import smpc_jax  # noqa: F401  (before brax: its _quiet keeps mujoco's warp notices out)
from brax.envs import training as brax_training
from brax.training.agents.sac import networks as sac_networks
from brax.training.agents.sac import train as sac
import jax
import numpy as np

from experiments.harness import brax_sac
from smpc_jax import envs
from smpc_jax.config import check_seed, float32_problem

@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_string("env", "hopper", f"Environment: {' | '.join(envs.names())}.")
  flags.DEFINE_integer("seeds", 1, "Independent runs, one after another.")
  flags.DEFINE_integer("seed", 0, "Base seed; run i uses seed + i.")
  flags.DEFINE_integer("total_steps", 1_000_000, "Environment steps per run.")
  flags.DEFINE_integer("episode_length", 1000, "Steps before truncation.")
  flags.DEFINE_integer("eval_every", 10_000, "Environment steps between evaluations.")
  flags.DEFINE_integer("eval_episodes", 4, "Evaluation episodes per point (brax's num_eval_envs).")
  flags.DEFINE_integer("batch_size", 256, "SAC batch per gradient update (CleanRL's 256; ours: 32).")
  flags.DEFINE_integer("grad_updates_per_step", 1, "Gradient updates per env step (ours: 1).")
  flags.DEFINE_integer("min_replay_size", 5000,
                       "Prefill steps before updates (CleanRL's 5000; ours: 0).")
  flags.DEFINE_float("target_entropy", -1.0,
                     "SAC's target entropy per action dimension (CleanRL's -1; brax's -0.5).")
  flags.DEFINE_float("learning_rate", 3e-4, "Adam, actor and critic.")
  flags.DEFINE_float("gamma", 0.99, "Discount.")
  flags.DEFINE_float("tau", 0.005, "Polyak rate of the target critic.")
  flags.DEFINE_list("hidden_sizes", ["256", "256"], "Actor and critic MLP widths.")
  flags.DEFINE_string("out_dir", "runs/sac", "Where metrics.jsonl and summary.json go.")
  flags.DEFINE_boolean("overwrite", False, "Replace a previous run in --out_dir.")


FLAGS = flags.FLAGS


def check_flags() -> tuple:
  """Exits with one line naming a bad flag; returns the hidden sizes."""
  try:
    envs.check_name(FLAGS.env)
  except ValueError as e:
    cli.fail(str(e))
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
  if not FLAGS.target_entropy < 0:
    cli.fail(f"target_entropy={FLAGS.target_entropy} is invalid; it must be < 0 (per action "
             "dimension: -1 CleanRL's, -0.5 brax's).")
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


def trainer_settings() -> dict:
  """brax's sac.train arguments the flags set (recorded in summary.json)."""
  return dict(num_timesteps=FLAGS.total_steps, episode_length=FLAGS.episode_length,
              num_envs=1, num_eval_envs=FLAGS.eval_episodes,
              learning_rate=FLAGS.learning_rate, discounting=FLAGS.gamma, tau=FLAGS.tau,
              batch_size=FLAGS.batch_size, grad_updates_per_step=FLAGS.grad_updates_per_step,
              min_replay_size=FLAGS.min_replay_size,
              max_replay_size=min(1_000_000, FLAGS.total_steps),
              num_evals=FLAGS.total_steps // FLAGS.eval_every + 1, deterministic_eval=True)


def run_seed(env, seed: int, hidden) -> list:
  """One brax SAC run; returns [(step, eval return, training metrics)]."""
  points = []

  def progress(step, metrics):
    points.append((int(step), float(metrics["eval/episode_reward"]),
                   {k.split("/", 1)[1]: float(v) for k, v in metrics.items()
                    if k.startswith("training/")}))
    print(f"  seed {seed} step {int(step):>8d}  eval return "
          f"{float(metrics['eval/episode_reward']):9.1f}", flush=True)

  with brax_sac.target_entropy(FLAGS.target_entropy):
    sac.train(
        environment=env,
        wrap_env_fn=brax_training.wrap,
        seed=seed,
        network_factory=functools.partial(sac_networks.make_sac_networks,
                                          hidden_layer_sizes=hidden),
        progress_fn=progress,
        **trainer_settings(),
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
  files.write_json(os.path.join(out, "summary.json"), dict(
      algorithm="sac (brax.training.agents.sac)", env=FLAGS.env, seeds=len(runs),
      total_steps=runs[0][-1][0], final_returns=final.tolist(),
      final_return_iqm=stats.iqm(final), final_return_iqm_ci95=stats.iqm_ci(final),
      final_return_median=float(np.median(final)), sps=sps, wall_s=wall_s,
      backend=jax.devices()[0].platform, device=str(jax.devices()[0].device_kind),
      jax_version=jax.__version__,
      config=dict(trainer_settings(), target_entropy_per_action_dim=FLAGS.target_entropy,
                  hidden_sizes=list(hidden), eval_every=FLAGS.eval_every)))


def main(argv):
  with cli.write_faults(f"What was written before is kept in {FLAGS.out_dir}."):
    train(argv)


def train(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  hidden = check_flags()
  brax_sac.restore_device_put_replicated()
  out = FLAGS.out_dir
  files.claim_run_dir(out, "sac.py", overwrite=FLAGS.overwrite)
  env = envs.make(FLAGS.env).env
  print(f"SAC (brax) on {FLAGS.env}: {FLAGS.seeds} seed(s) x {FLAGS.total_steps} steps, "
        f"batch {FLAGS.batch_size} x {FLAGS.grad_updates_per_step} update(s) per env step, "
        f"observation {env.observation_size}, {jax.devices()[0].platform} backend", flush=True)
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
  cli.run(main, define_flags)
