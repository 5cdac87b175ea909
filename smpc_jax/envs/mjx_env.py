"""A MuJoCo task on MJX, stepped as Gymnasium's MuJoCo environments step.

`MjxTask` holds a compiled model and a few pure functions of the physics data;
`reset` and `step` are pure and jittable. The state carries the fields brax's
training wrappers read (`pipeline_state`, `obs`, `reward`, `done`, `metrics`,
`info`), so brax's trainers (the SAC baseline) accept these environments as
they accept MuJoCo Playground's. Nothing here uses brax's environment layer.

Episodes have no time limit here: the training step truncates at
`Config.episode_length` (1000, as Gymnasium's TimeLimit), and brax's
`EpisodeWrapper` does the same for its trainers.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict

import flax.struct
import jax
import jax.numpy as jnp
import mujoco

from mujoco import mjx  # its "Failed to import warp" notices: see smpc_jax/_quiet.py

ASSETS = os.path.join(os.path.dirname(__file__), "assets")


@flax.struct.dataclass
class State:
  pipeline_state: Any  # mjx.Data after the step (brax's name for it).
  obs: jax.Array  # [obs]
  reward: jax.Array  # []
  done: jax.Array  # [] 1.0 on termination (never on truncation).
  metrics: Dict[str, jax.Array] = flax.struct.field(default_factory=dict)
  info: Dict[str, Any] = flax.struct.field(default_factory=dict)


# (key) -> (qpos [nq], qvel [nv]): the task's reset distribution.
ResetFn = Callable[[jax.Array], tuple]
# (data) -> obs [obs]
ObsFn = Callable[[Any], jax.Array]
# (data before, data after, action [act]) -> (reward [], terminated [])
TaskRewardFn = Callable[[Any, Any, jax.Array], tuple]


class MjxTask:
  """A Gymnasium MuJoCo task on MJX: model, frames per step and three pure
  functions (reset distribution, observation, reward and termination)."""

  def __init__(self, mj_model: mujoco.MjModel, frame_skip: int, reset_fn: ResetFn,
               obs_fn: ObsFn, reward_fn: TaskRewardFn):
    self.mj_model = mj_model
    # On this process's own device: mjx's default is jax.devices()[0], which
    # in a multi-process run belongs to process 0 alone.
    device = jax.local_devices()[0]
    self.sys = mjx.put_model(mj_model, device=device)
    self.frame_skip = frame_skip
    self._reset_fn, self._obs_fn, self._reward_fn = reset_fn, obs_fn, reward_fn
    self._data0 = mjx.make_data(mj_model, device=device)

  @property
  def dt(self) -> float:
    """Seconds per env step: frame_skip physics steps."""
    return float(self.mj_model.opt.timestep) * self.frame_skip

  @property
  def observation_size(self) -> int:
    return int(jax.eval_shape(self._obs_fn, self._data0).shape[-1])

  @property
  def action_size(self) -> int:
    return int(self.mj_model.nu)

  @property
  def backend(self) -> str:
    return "mjx"

  def init_state(self, qpos, qvel) -> State:
    """The state at (qpos [nq], qvel [nv]) after `mj_forward`, as Gymnasium's
    `set_state` leaves it; reward and done are zero."""
    data = mjx.forward(self.sys, self._data0.replace(qpos=qpos, qvel=qvel))
    zero = jnp.zeros(())
    return State(data, self._obs_fn(data), zero, zero)

  def reset(self, rng) -> State:
    qpos, qvel = self._reset_fn(rng)
    return self.init_state(qpos, qvel)

  def reset_for_step(self, rng) -> State:
    """The draw of `reset(rng)` without its `mj_forward`, for a state that is
    only stepped (the training step's auto-reset): `step` begins with a
    forward that recomputes every derived field from (qpos, qvel), so the
    step from here equals the step from `reset(rng)` bit for bit, and the
    observation equals `reset`'s where it reads only qpos, qvel and
    constraint forces that are zero at every reset (idp's rail limit is 0.9
    away; hopper reads no forces): tests/lib/test_envs.py checks both. The
    pipeline state's derived fields (positions, forces) are left at zero."""
    qpos, qvel = self._reset_fn(rng)
    data = self._data0.replace(qpos=qpos, qvel=qvel)
    zero = jnp.zeros(())
    return State(data, self._obs_fn(data), zero, zero)

  def step(self, state: State, action) -> State:
    """frame_skip physics steps with ctrl = action (MuJoCo clamps it to the
    actuators' ctrlrange), then the task's observation, reward and termination."""
    before = state.pipeline_state
    data = before.replace(ctrl=action)
    data = jax.lax.fori_loop(0, self.frame_skip, lambda _, d: mjx.step(self.sys, d), data)
    reward, terminated = self._reward_fn(before, data, action)
    return state.replace(pipeline_state=data, obs=self._obs_fn(data), reward=reward,
                         done=terminated.astype(jnp.float32))


# --- Gymnasium's locomotion tasks (Hopper-v5, Walker2d-v5) share these two.

def locomotion_reset(model, key, noise: float):
  """(qpos [nq], qvel [nv]): qpos0 + U(-noise, noise) and U(-noise, noise),
  Gymnasium v5's reset distribution for Hopper and Walker2d."""
  k_pos, k_vel = jax.random.split(key)
  qpos = model.qpos0 + jax.random.uniform(k_pos, (model.nq,), minval=-noise, maxval=noise)
  qvel = jax.random.uniform(k_vel, (model.nv,), minval=-noise, maxval=noise)
  return jnp.asarray(qpos, jnp.float32), qvel


def locomotion_observation(data):  # -> [nq + nv]: x kept, velocities clipped at 10
  return jnp.concatenate([data.qpos, jnp.clip(data.qvel, -10.0, 10.0)])


def load_model(filename: str, **options) -> mujoco.MjModel:
  """The model in assets/`filename`, with `options` set on `opt` (solver caps)."""
  model = mujoco.MjModel.from_xml_path(os.path.join(ASSETS, filename))
  for name, value in options.items():
    setattr(model.opt, name, value)
  return model
