"""MuJoCo Playground tasks as `Environment`s: `adapt(name, env, reward_fn,
termination_fn)` wraps any object with Playground's `MjxEnv` interface
(reset(rng) -> State with data, obs, reward, done, metrics, info;
step(state, action) -> State; observation_size, action_size, dt, mj_model);
`load(env_name, ...)` builds one from Playground's registry (the optional
extra: pip install -e '.[playground]').

The planner needs the task's reward and termination as functions of
(s, a, s'), which Playground does not expose: the caller writes them from
the env's code (tests/lib/test_user_env.py does so for CartpoleBalance).
Playground's `done` is taken as termination; episodes are truncated by
`Config.episode_length`, as for every task here.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax

from smpc_jax.envs import Environment, mjx_env


class PlaygroundTask:
  """A Playground `MjxEnv` behind this package's env API: the state is
  `mjx_env.State` (pipeline_state = Playground's `data`), so the training
  step, rendering and brax's trainers read it as they read our own tasks."""

  def __init__(self, env: Any):
    self.env = env
    example = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    if isinstance(example.obs, Mapping):
      raise ValueError(f"{type(env).__name__}: observations are a dict "
                       f"({', '.join(example.obs)}); only a flat array is supported.")
    self._state_type = type(example)  # Playground's State, rebuilt for its step.

  @property
  def mj_model(self):
    return self.env.mj_model

  @property
  def dt(self) -> float:
    return float(self.env.dt)

  @property
  def observation_size(self) -> int:
    return int(self.env.observation_size)

  @property
  def action_size(self) -> int:
    return int(self.env.action_size)

  @property
  def backend(self) -> str:
    return "mjx"

  @staticmethod
  def _ours(s) -> mjx_env.State:
    return mjx_env.State(s.data, s.obs, s.reward, s.done, s.metrics, s.info)

  def reset(self, rng) -> mjx_env.State:
    return self._ours(self.env.reset(rng))

  def step(self, state: mjx_env.State, action) -> mjx_env.State:
    theirs = self._state_type(data=state.pipeline_state, obs=state.obs, reward=state.reward,
                              done=state.done, metrics=state.metrics, info=state.info)
    return self._ours(self.env.step(theirs, action))


def adapt(name: str, env: Any, reward_fn, termination_fn, action_low: float = -1.0,
          action_high: float = 1.0):
  """The `Environment` of a Playground env (actions in [action_low, action_high])."""
  task = PlaygroundTask(env)
  return Environment(name, task, task.observation_size, task.action_size, action_low,
                     action_high, reward_fn, termination_fn, task.mj_model)


def load(env_name: str, reward_fn, termination_fn, frame_skip: int = 0,
         config_overrides: dict | None = None, name: str | None = None):
  """Playground's `env_name` from its registry, on MJX's JAX backend
  (Playground defaults to Warp, which needs the warp-lang package and, for
  speed, a CUDA GPU). frame_skip > 0 sets ctrl_dt = frame_skip * sim_dt."""
  from mujoco_playground import registry  # the optional extra
  overrides = dict(impl="jax", **(config_overrides or {}))
  if frame_skip:
    overrides["ctrl_dt"] = frame_skip * float(registry.get_default_config(env_name).sim_dt)
  env = registry.load(env_name, config_overrides=overrides)
  return adapt(name or env_name, env, reward_fn, termination_fn)
