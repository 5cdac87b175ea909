"""Export a trained run's controller to one file that runs without this
package: MPPI over the learned ensemble with the learned terminal Q (or the
actor, for actor-controlled runs), serialised by jax.export with its
parameters.

  python -m experiments.export --run_dir=RUN --out=controller.bin [--seed_index=0]
      [--platforms=cpu,cuda] [--compute_dtype=bfloat16]
      [--gymnasium_episodes=20] [--latency_actions=1000]

Run it with experiments/controller_loader.py (jax and numpy alone). The
controller is `smpc_jax.controller.make(state)`, the one evaluation uses;
--compute_dtype sets its planner's products apart from the run's.

The checks run the written file through the loader, as a user would, and
write OUT with .json for .bin (commands, returns, statistics, timings):
- --gymnasium_episodes=N: N episodes of Gymnasium's own env (native MuJoCo)
  beside N episodes of MJX evaluation of the same checkpoint, the returns'
  medians and IQMs with 95% bootstrap intervals, and a Mann-Whitney test;
- --latency_actions=N: time per action at batch 1, median and p99, beside
  the env's control period.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import sys

from absl import flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments import controller_loader  # jax and numpy alone; gymnasium only when used
from experiments.harness import checkpoint_io, files, stats
from smpc_jax import config as config_lib
from smpc_jax import controller, evaluation
from smpc_jax.train import parts

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


@cli.once
def define_flags():
  flags.DEFINE_string("run_dir", None, "A run's OUT_DIR (holds checkpoints/).")
  flags.DEFINE_string("out", "controller.bin", "The controller file to write.")
  flags.DEFINE_integer("seed_index", 0, "Which of the run's seeds to export.")
  flags.DEFINE_list("platforms", ["cpu"], f"Where the file may run: {', '.join(PLATFORMS)}.")
  flags.DEFINE_string("compute_dtype", "", "The planner's products: float32 | bfloat16 "
                      "(default: the run's).")
  flags.DEFINE_integer("gymnasium_episodes", 0, "Episodes of Gymnasium's env and of MJX "
                       "evaluation to compare (0: none).")
  flags.DEFINE_integer("latency_actions", 0, "Actions to time at batch 1 (0: none).")


FLAGS = flags.FLAGS


def export_controller(state, platforms=("cpu",)) -> tuple[bytes, bytes, dict]:
  """(initial_plan, act) of one run's state, serialised by jax.export, and
  the description the loader reads."""
  config = state.config
  env = parts(config).environment
  ctrl = controller.make(state)
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  plan = jax.ShapeDtypeStruct((config.horizon + 1, env.action_size), jnp.float32)
  obs = jax.ShapeDtypeStruct((env.obs_size,), jnp.float32)
  init = jax.export.export(jax.jit(ctrl.initial_plan), platforms=platforms)(key)
  act = jax.export.export(jax.jit(ctrl.act), platforms=platforms)(obs, plan, key)
  meta = dict(env=config.env, obs_size=env.obs_size, action_size=env.action_size,
              horizon=config.horizon, action_low=env.action_low, action_high=env.action_high,
              dt=float(env.env.dt), control=config.control, platforms=list(platforms),
              config=dataclasses.asdict(config))
  return init.serialize(), act.serialize(), meta


def write(path, init: bytes, act: bytes, meta: dict):
  buffer = io.BytesIO()
  np.savez(buffer, initial_plan=np.frombuffer(init, np.uint8),
           act=np.frombuffer(act, np.uint8),
           meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
  with files.atomic(path) as tmp, open(tmp, "wb") as f:
    f.write(buffer.getvalue())


def compare_returns(path, state, episodes: int) -> dict:
  """Returns of the exported file in Gymnasium's env and of MJX evaluation
  of the same state, `episodes` each: both distributions and their
  statistics (Gymnasium's resets are seeded 0.., MJX's key is PRNGKey(0))."""
  from scipy.stats import mannwhitneyu
  gym = controller_loader.gymnasium_returns(controller_loader.load(path), episodes)
  mjx = jax.jit(evaluation.evaluate, static_argnums=2)(state, jax.random.PRNGKey(0), episodes)
  mjx = np.asarray(mjx, np.float64).tolist()
  summary = lambda r: dict(returns=r, median=float(np.median(r)), iqm=stats.iqm(r),
                           iqm_ci95=stats.iqm_ci(r))
  same = len(set(gym + mjx)) == 1
  return dict(episodes=episodes, gymnasium=summary(gym), mjx=summary(mjx),
              gymnasium_env=controller_loader.GYMNASIUM[state.config.env][0],
              mann_whitney_p=1.0 if same else float(mannwhitneyu(gym, mjx).pvalue))


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
  except (OSError, StopIteration):
    return "unknown"


def main(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  bad = [p for p in FLAGS.platforms if p not in PLATFORMS]
  if bad or not FLAGS.platforms:
    cli.fail(f"platforms={','.join(FLAGS.platforms)!r} is invalid; allowed: "
             f"{', '.join(PLATFORMS)}, comma separated.")
  if FLAGS.compute_dtype and FLAGS.compute_dtype not in config_lib.COMPUTE_DTYPES:
    cli.fail(f"compute_dtype={FLAGS.compute_dtype!r} is invalid; allowed: "
             f"{', '.join(config_lib.COMPUTE_DTYPES)}.")
  for name in ("gymnasium_episodes", "latency_actions"):
    if getattr(FLAGS, name) < 0:
      cli.fail(f"{name}={getattr(FLAGS, name)} is invalid; allowed: 0 or more.")
  checks = FLAGS.gymnasium_episodes or FLAGS.latency_actions
  if checks and "cpu" not in FLAGS.platforms:
    cli.fail(f"platforms={','.join(FLAGS.platforms)!r} leaves out cpu, where the checks "
             f"run; add cpu, or drop --gymnasium_episodes and --latency_actions.")
  files.check_out_file(FLAGS.out, "out", (".bin",) if checks else ("",))
  state, step = checkpoint_io.load_run(FLAGS.run_dir, FLAGS.seed_index)
  if FLAGS.gymnasium_episodes:
    if state.config.env not in controller_loader.GYMNASIUM:
      cli.fail(f"gymnasium_episodes: env={state.config.env!r} has no Gymnasium counterpart; "
               f"known: {', '.join(controller_loader.GYMNASIUM)}.")
  if FLAGS.compute_dtype:
    state = state.replace(config=dataclasses.replace(state.config,
                                                     compute_dtype=FLAGS.compute_dtype))
  init, act, meta = export_controller(state, tuple(FLAGS.platforms))
  meta.update(run=dict(run_dir=os.path.abspath(FLAGS.run_dir), seed_index=FLAGS.seed_index,
                       step=step))
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  write(FLAGS.out, init, act, meta)
  size = os.path.getsize(FLAGS.out)
  print(f"wrote {FLAGS.out} ({size / 2**20:.1f} MiB): the {meta['control']} controller of "
        f"{meta['env']}, seed {FLAGS.seed_index} at step {step} of {FLAGS.run_dir}, for "
        f"{', '.join(FLAGS.platforms)}; run it with experiments/controller_loader.py")
  if checks:
    report = dict(command=" ".join(["python -m experiments.export", *sys.argv[1:]]),
                  controller=meta["run"],
                  env=meta["env"], compute_dtype=state.config.compute_dtype,
                  cpu=cpu_model(), cores=os.cpu_count(), load_average=os.getloadavg())
    if FLAGS.gymnasium_episodes:
      r = report["returns"] = compare_returns(FLAGS.out, state, FLAGS.gymnasium_episodes)
      for name in ("gymnasium", "mjx"):
        print(f"{name}: median {r[name]['median']:.1f}, IQM {r[name]['iqm']:.1f} "
              f"(95% CI {r[name]['iqm_ci95'][0]:.1f} to {r[name]['iqm_ci95'][1]:.1f}) over "
              f"{r['episodes']} episodes")
      print(f"Mann-Whitney p = {r['mann_whitney_p']:.3g}")
    if FLAGS.latency_actions:
      t = report["latency"] = controller_loader.latency(controller_loader.load(FLAGS.out),
                                                        FLAGS.latency_actions)
      print(f"latency ({state.config.compute_dtype}): median {t['median_s'] * 1e3:.2f} ms, p99 "
            f"{t['p99_s'] * 1e3:.2f} ms over {t['actions']} actions; control period "
            f"{t['control_period_s'] * 1e3:g} ms, exceeded by {t['over_period']}")
    report_path = FLAGS.out[:-len(".bin")] + ".json"
    files.write_json(report_path, report)
    print(f"wrote {report_path}")


if __name__ == "__main__":
  cli.run(main, define_flags)
