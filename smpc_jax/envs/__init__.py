"""Environments with their known reward and termination as pure functions of
(s, a, s'), which the planner uses to score imagined transitions; only the
dynamics are learned.

Every task is a name in one registry: `register(name, make)`, where
`make(frame_skip)` returns an `Environment`; `names()` lists them (config
validation and the drivers' flags read it), `make(name)` builds one. Built in:

  "idp", "hopper", "walker" the paper's tasks and Walker2d: Gymnasium's
                            InvertedDoublePendulum-v5, Hopper-v5 and
                            Walker2d-v5 (x kept in the observation), rebuilt
                            on MJX (inverted_double_pendulum.py, hopper.py,
                            walker.py) and checked against Gymnasium
                            (tests/lib/test_parity.py).
  "idp_brax", "hopper_brax" brax's variants (brax_tasks.py), which earlier
                            results used.
  "hopper_gym"              Hopper-v5 as Gymnasium observes it by default
                            (x left out, 11 entries), which CleanRL's SAC and
                            DDPG learned from: for the model-free baselines
                            (control=actor, targets=actor; sac.py). It has no
                            known reward of (s, a, s'): the forward progress
                            needs x, so the planner cannot score on it.

A task of your own: an object with brax's reset/step API (an `MjxTask`, or a
MuJoCo Playground env through `playground.adapt`) and its reward and
termination of (s, a, s'), registered before `Config(env=...)` names it.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, NamedTuple

import jax
import jax.numpy as jnp
import mujoco

from smpc_jax.envs import hopper, inverted_double_pendulum, mjx_env, walker
from smpc_jax.envs.mjx_env import MjxTask, State
from smpc_jax.types import RewardFn, TerminationFn


class Environment(NamedTuple):
  name: str
  env: Any  # reset(key) -> state, step(state, action) -> state (brax-trainer API).
  obs_size: int
  action_size: int
  action_low: float
  action_high: float
  # Equals env.step(...).reward (tests/lib/test_envs.py); None for a task that
  # only model-free methods run on (registered with known_reward=False).
  reward_fn: RewardFn | None
  termination_fn: TerminationFn  # 1.0 where env.step(...).done is 1.0.
  mj_model: mujoco.MjModel  # For rendering.


# (frame_skip) -> Environment; frame_skip 0 means the task's own.
MakeFn = Callable[[int], Environment]
_REGISTRY: Dict[str, MakeFn] = {}
_NO_KNOWN_REWARD = set()


def register(name: str, make_fn: MakeFn, known_reward: bool = True) -> None:
  """Makes `name` a task: `make_fn(frame_skip)` builds its `Environment`
  (frame_skip 0: the task's own). A name is registered once. known_reward=False:
  its reward_fn is None, so the planner cannot run on it; only DDPG
  (control=actor, targets=actor) trains there (Config validation says so)."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"env name {name!r} is invalid; it must be a non-empty string.")
  if name in _REGISTRY:
    raise ValueError(f"env={name!r} is already registered; registered: {', '.join(names())}.")
  if not callable(make_fn):
    raise TypeError(f"envs.register({name!r}, {make_fn!r}): make_fn must be a function "
                    "(frame_skip) -> Environment.")
  _REGISTRY[name] = make_fn
  if not known_reward:
    _NO_KNOWN_REWARD.add(name)


def has_known_reward(name: str) -> bool:
  """Whether the planner can score transitions on task `name` (registered)."""
  return name not in _NO_KNOWN_REWARD


def names() -> tuple:
  """The registered task names, in registration order."""
  return tuple(_REGISTRY)


def check_name(name) -> None:
  """Raises one ValueError naming the allowed tasks unless `name` is one."""
  if name not in _REGISTRY:
    raise ValueError(f"env={name!r} is not known; allowed: {', '.join(names())}.")


def make(name: str, frame_skip: int = 0) -> Environment:
  """The environment `name` (one of names()), built once per process.

  frame_skip: physics steps per env step; 0 keeps the task's own (idp 5,
  hopper and walker 4 as Gymnasium; brax's idp 2 and hopper 4).
  """
  check_name(name)
  return _build(_REGISTRY[name], name, frame_skip)


@functools.lru_cache(maxsize=None)
def _build(make_fn: MakeFn, name: str, frame_skip: int) -> Environment:
  """Cached per make function: the name is checked against the registry
  first, on every call. Built with concrete arrays even when first asked for
  inside a trace, so the cached object never holds a tracer."""
  with jax.ensure_compile_time_eval():
    environment = make_fn(frame_skip)
  if not isinstance(environment, Environment):
    raise TypeError(f"env={name!r}: its make returned {type(environment).__name__}, "
                    "not an Environment.")
  _check_scalars(environment, name)
  return environment._replace(name=name)


def _check_scalars(e: Environment, name: str) -> None:
  """One ValueError unless the task's rewards and terminations are one
  number per step: the planner's reward_fn and termination_fn for one
  (s, a, s'), and the reward and done of the env's reset and step (shapes
  only, traced once; the built-in tasks are tested, so only users' are)."""
  s = jax.ShapeDtypeStruct((e.obs_size,), jnp.float32)
  a = jax.ShapeDtypeStruct((e.action_size,), jnp.float32)
  shapes = {"termination_fn(s, a, s')": lambda: jax.eval_shape(e.termination_fn, s, a, s)}
  if has_known_reward(name):
    shapes["reward_fn(s, a, s')"] = lambda: jax.eval_shape(e.reward_fn, s, a, s)
  if name not in _BUILT_IN:
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    first = lambda: jax.eval_shape(e.env.reset, key)
    after = lambda: jax.eval_shape(lambda k, u: e.env.step(e.env.reset(k), u), key, a)
    shapes.update({"the env's reset reward": lambda: first().reward,
                   "the env's step reward": lambda: after().reward,
                   "the env's step done": lambda: after().done})
  for what, shape_of in shapes.items():
    shape = shape_of().shape
    if shape != ():
      raise ValueError(f"env={name!r}: {what} has shape {shape}; it must be a scalar, "
                       "one number per step (shape ()).")


def from_task(name: str, task: MjxTask, reward_fn: RewardFn,
              termination_fn: TerminationFn) -> Environment:
  """The `Environment` of an `MjxTask` (actions in [-1, 1])."""
  return Environment(name, task, task.observation_size, task.action_size, -1.0, 1.0,
                     reward_fn, termination_fn, task.mj_model)


def _idp(frame_skip):
  task = inverted_double_pendulum.make(frame_skip)
  return from_task("idp", task, inverted_double_pendulum.reward,
                   inverted_double_pendulum.termination)


def _hopper(frame_skip):
  task = hopper.make(frame_skip)
  return from_task("hopper", task, hopper.make_reward(task.dt), hopper.termination)


def _hopper_gym(frame_skip):
  task = hopper.make(frame_skip, observe_x=False)
  return from_task("hopper_gym", task, None, hopper.termination_without_x)


def _walker(frame_skip):
  task = walker.make(frame_skip)
  return from_task("walker", task, walker.make_reward(task.dt), walker.termination)


def _brax(name):
  def make_fn(frame_skip):
    from smpc_jax.envs import brax_tasks  # brax is imported only for these.
    env, reward_fn, termination_fn = brax_tasks.make(name, frame_skip)
    return Environment(f"{name}_brax", env, env.observation_size, env.action_size, -1.0,
                       1.0, reward_fn, termination_fn, env.sys.mj_model)
  return make_fn


register("idp", _idp)
register("hopper", _hopper)
register("walker", _walker)
register("idp_brax", _brax("idp"))
register("hopper_brax", _brax("hopper"))
register("hopper_gym", _hopper_gym, known_reward=False)
_BUILT_IN = frozenset(names())

__all__ = ["Environment", "MakeFn", "RewardFn", "TerminationFn", "register", "names",
           "check_name", "has_known_reward", "make", "from_task", "MjxTask", "State", "mjx_env"]
