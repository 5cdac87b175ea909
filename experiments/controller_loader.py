"""Runs an exported softMPCritic controller with jax and numpy alone: no
smpc_jax, flax, optax, brax or mujoco. Copy this one file beside the
controller file.

  python controller_loader.py controller.bin [--steps=5]   # a few actions

  from controller_loader import load
  ctrl = load("controller.bin")
  plan = ctrl.initial_plan(key)                  # key: uint32[2], jax.random.PRNGKey(i)
  action, plan = ctrl.act(obs, plan, key)        # one control step

The file (written by `python -m experiments.export`) is a numpy .npz archive:
the two functions serialised by jax.export with the trained parameters inside
them, and a JSON description (env, sizes, control period, the run).
"""

from __future__ import annotations

import argparse
import json
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


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("path")
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  ctrl = load(args.path)
  m = ctrl.meta
  print(f"{m['env']}: obs {m['obs_size']}, action {m['action_size']}, horizon {m['horizon']}, "
        f"control period {m['dt']} s, control={m['control']}")
  key = jax.random.PRNGKey(0)
  plan = ctrl.initial_plan(key)
  obs = np.zeros(m["obs_size"], np.float32)
  for t in range(args.steps):
    action, plan = ctrl.act(obs, plan, jax.random.fold_in(key, t))
    print(f"action {t}: {np.round(np.asarray(action), 4).tolist()}")


if __name__ == "__main__":
  main()
