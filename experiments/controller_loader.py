"""Runs an exported softMPCritic controller with jax and numpy alone: no
smpc_jax, flax, optax, brax or mujoco. Copy this one file beside the
controller file.

  python controller_loader.py controller.bin [--steps=5]   # a few actions
  python controller_loader.py controller.bin --gymnasium=10 # episodes of Gymnasium's env
  python controller_loader.py controller.bin --latency=1000 # time per action, batch 1

  from controller_loader import load
  ctrl = load("controller.bin")
  plan = ctrl.initial_plan(key)                  # key: uint32[2], jax.random.PRNGKey(i)
  action, plan = ctrl.act(obs, plan, key)        # one control step

The file (written by `python -m experiments.export`) is a numpy .npz archive:
the two functions serialised by jax.export with the trained parameters inside
them, and a JSON description (env, sizes, control period, the run).
`--gymnasium` needs `pip install "gymnasium[mujoco]"` too (imported there only).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import NamedTuple

import jax
from jax import export
import numpy as np


class LoadedController(NamedTuple):
  meta: dict  # env, obs_size, action_size, horizon, dt, platforms, config, run
  initial_plan_fn: export.Exported
  act_fn: export.Exported

  def initial_plan(self, key):
    """The plan [H+1, act] an episode starts from (key: uint32[2])."""
    return self.initial_plan_fn.call(np.asarray(key, np.uint32))

  def act(self, obs, plan, key):
    """(action [act], the plan to warm-start the next call [H+1, act])."""
    return self.act_fn.call(np.asarray(obs, np.float32), np.asarray(plan, np.float32),
                            np.asarray(key, np.uint32))


def load(path: str) -> LoadedController:
  with np.load(path) as archive:
    meta = json.loads(archive["meta"].tobytes().decode())
    init = export.deserialize(bytearray(archive["initial_plan"].tobytes()))
    act = export.deserialize(bytearray(archive["act"].tobytes()))
  return LoadedController(meta, init, act)


# Gymnasium's env of each of our tasks, whose observation is ours (the package's
# tests/lib/test_parity.py checks the physics, rewards and observations).
GYMNASIUM = {
    "idp": ("InvertedDoublePendulum-v5", {}),
    "hopper": ("Hopper-v5", {"exclude_current_positions_from_observation": False}),
    "walker": ("Walker2d-v5", {"exclude_current_positions_from_observation": False}),
}


def gymnasium_returns(ctrl: LoadedController, episodes: int, seed: int = 0) -> list:
  """Undiscounted returns of `episodes` whole episodes of Gymnasium's own env
  (native MuJoCo), reset with seeds seed, seed+1, ..., as long as the run's
  evaluation episodes (or until termination). The controller's keys of
  episode i are splits of PRNGKey(seed + i), as its plan is warm-started
  from one action to the next."""
  import gymnasium as gym  # only here: the controller itself needs jax and numpy alone
  env_name, steps = ctrl.meta["env"], ctrl.meta["config"]["episode_length"]
  if env_name not in GYMNASIUM:
    raise ValueError(f"env={env_name!r} has no Gymnasium counterpart; known: "
                     f"{', '.join(GYMNASIUM)}.")
  env_id, kwargs = GYMNASIUM[env_name]
  env = gym.make(env_id, max_episode_steps=steps, **kwargs)
  returns = []
  for i in range(episodes):
    obs, _ = env.reset(seed=seed + i)
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed + i), steps + 1))  # [T+1, 2]
    plan, total = ctrl.initial_plan(keys[-1]), 0.0
    for t in range(steps):
      action, plan = ctrl.act(obs, plan, keys[t])
      obs, reward, terminated, truncated, _ = env.step(np.asarray(action, np.float64))
      total += float(reward)
      if terminated or truncated:
        break
    returns.append(total)
  env.close()
  return returns


def latency(ctrl: LoadedController, actions: int = 1000, warmup: int = 20) -> dict:
  """Wall time of one control step at batch 1, from an observation in numpy
  to the action in numpy (what a control loop pays), over `actions` steps
  after `warmup`, each warm-started from the last: seconds, median, p99 and
  max, and how many actions took longer than the env's control period."""
  obs = np.zeros(ctrl.meta["obs_size"], np.float32)
  keys = np.asarray(jax.random.split(jax.random.PRNGKey(0), warmup + actions))
  plan, times = ctrl.initial_plan(keys[0]), []
  for i, key in enumerate(keys):
    start = time.perf_counter()
    action, plan = ctrl.act(obs, plan, key)
    np.asarray(action)
    if i >= warmup:
      times.append(time.perf_counter() - start)
  times, period = np.asarray(times), ctrl.meta["dt"]
  return dict(actions=actions, median_s=float(np.median(times)),
              p99_s=float(np.percentile(times, 99)), max_s=float(times.max()),
              control_period_s=period, over_period=int(np.sum(times > period)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("path")
  parser.add_argument("--steps", type=int, default=5, help="actions to print")
  parser.add_argument("--gymnasium", type=int, default=0, metavar="N",
                      help="run N episodes of Gymnasium's env and print the returns")
  parser.add_argument("--latency", type=int, default=0, metavar="N",
                      help="time N actions at batch 1 and print the median and p99")
  args = parser.parse_args()
  for name in ("steps", "gymnasium", "latency"):
    if getattr(args, name) < 0:
      parser.error(f"--{name}={getattr(args, name)} is invalid; allowed: 0 or more.")
  if not os.path.isfile(args.path):
    parser.error(f"{args.path!r} is not a file; give a controller written by experiments.export.")
  ctrl = load(args.path)
  if args.gymnasium and ctrl.meta["env"] not in GYMNASIUM:
    parser.error(f"--gymnasium: env={ctrl.meta['env']!r} has no Gymnasium counterpart; known: "
                 f"{', '.join(GYMNASIUM)}.")
  m = ctrl.meta
  print(f"{m['env']}: obs {m['obs_size']}, action {m['action_size']}, horizon {m['horizon']}, "
        f"control period {m['dt']} s, control={m['control']}")
  key = jax.random.PRNGKey(0)
  plan = ctrl.initial_plan(key)
  obs = np.zeros(m["obs_size"], np.float32)
  for t in range(args.steps):
    action, plan = ctrl.act(obs, plan, jax.random.fold_in(key, t))
    print(f"action {t}: {np.round(np.asarray(action), 4).tolist()}")
  if args.gymnasium:
    returns = gymnasium_returns(ctrl, args.gymnasium)
    print(f"Gymnasium {GYMNASIUM[m['env']][0]}, {len(returns)} episodes: median "
          f"{np.median(returns):.1f}, returns {np.round(returns, 1).tolist()}")
  if args.latency:
    t = latency(ctrl, args.latency)
    print(f"latency over {t['actions']} actions at batch 1: median {t['median_s'] * 1e3:.2f} ms, "
          f"p99 {t['p99_s'] * 1e3:.2f} ms; control period {t['control_period_s'] * 1e3:g} ms, "
          f"exceeded by {t['over_period']}")


if __name__ == "__main__":
  main()
