"""Environments with their known reward and termination as pure functions of
(s, a, s'), which the planner uses to score imagined transitions; only the
dynamics are learned.

  "idp", "hopper"           the paper's tasks: Gymnasium's
                            InvertedDoublePendulum-v5 and Hopper-v5 (x kept in
                            the observation), rebuilt on MJX
                            (inverted_double_pendulum.py, hopper.py) and
                            checked against Gymnasium (tests/test_parity.py).
  "idp_brax", "hopper_brax" brax's variants (brax_tasks.py), which earlier
                            results used.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax
import mujoco

from smpc_jax.envs import hopper, inverted_double_pendulum, mjx_env
from smpc_jax.envs.mjx_env import MjxTask, State

NAMES = ("idp", "hopper", "idp_brax", "hopper_brax")

# (s [obs], a [act], s' [obs]) -> scalar.
RewardFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
TerminationFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class Environment(NamedTuple):
  name: str
  env: Any  # reset(key) -> state, step(state, action) -> state (brax-trainer API).
  obs_size: int
  action_size: int
  action_low: float
  action_high: float
  reward_fn: RewardFn  # Equals env.step(...).reward (tests/test_envs.py).
  termination_fn: TerminationFn  # 1.0 where env.step(...).done is 1.0.
  mj_model: mujoco.MjModel  # For rendering.


@functools.lru_cache(maxsize=None)
def make(name: str, frame_skip: int = 0) -> Environment:
  """The environment `name` (one of NAMES), built once per process.

  frame_skip: physics steps per env step; 0 keeps the task's own (idp 5 and
  hopper 4 as Gymnasium; brax's idp 2 and hopper 4).

  Built with concrete arrays even when first asked for inside a trace, so the
  cached object never holds a tracer.
  """
  if name not in NAMES:
    raise ValueError(f"env={name!r} is not known; allowed: {', '.join(NAMES)}.")
  with jax.ensure_compile_time_eval():
    if name == "idp":
      env = inverted_double_pendulum.make(frame_skip)
      reward_fn = inverted_double_pendulum.reward
      termination_fn = inverted_double_pendulum.termination
      mj_model = env.mj_model
    elif name == "hopper":
      env = hopper.make(frame_skip)
      reward_fn, termination_fn = hopper.make_reward(env.dt), hopper.termination
      mj_model = env.mj_model
    else:
      from smpc_jax.envs import brax_tasks
      env, reward_fn, termination_fn = brax_tasks.make(name[:-len("_brax")], frame_skip)
      mj_model = env.sys.mj_model
  return Environment(name, env, env.observation_size, env.action_size, -1.0, 1.0,
                     reward_fn, termination_fn, mj_model)


__all__ = ["NAMES", "Environment", "make", "MjxTask", "State", "mjx_env"]
