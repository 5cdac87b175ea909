"""Gymnasium's Walker2d-v5 on MJX, with the x position kept in the observation
(`exclude_current_positions_from_observation=False`), as hopper.py keeps it:
the known reward needs x before and after the step.

Same model (assets/walker2d_v5.xml: RK4, 0.002 s), 4 frames per step
(0.008 s), reset qpos + U(-5e-3, 5e-3) and qvel + U(-5e-3, 5e-3), observation
[qpos (9), clip(qvel, 10) (9)], reward (x' - x) / dt + healthy - 1e-3 |a|^2,
where healthy (1 or 0) requires 0.8 < z < 2 and -1 < angle < 1 (v5 has no
state-range check, unlike Hopper); termination when unhealthy.
"""

from __future__ import annotations

import jax.numpy as jnp

from smpc_jax.envs import mjx_env

FRAME_SKIP = 4
RESET_NOISE = 5e-3
CTRL_COST = 1e-3
HEALTHY_Z = (0.8, 2.0)
HEALTHY_ANGLE = (-1.0, 1.0)
# Contacts and joint limits, as Hopper: MuJoCo's 100 Newton iterations to
# 1e-8 cannot converge in float32 (tests/lib/test_parity.py measures the cap).
SOLVER = dict(iterations=4, ls_iterations=8)
NQ = 9


def reset(model, key):
  """(qpos [9], qvel [9]) ~ Gymnasium v5's reset distribution."""
  return mjx_env.locomotion_reset(model, key, RESET_NOISE)


observation = mjx_env.locomotion_observation  # -> [18]


def _healthy(qpos):
  z, angle = qpos[1], qpos[2]
  ok = ((z > HEALTHY_Z[0]) & (z < HEALTHY_Z[1]) & (angle > HEALTHY_ANGLE[0])
        & (angle < HEALTHY_ANGLE[1]))
  return ok.astype(jnp.float32)


def _reward(x, x_next, healthy, action, dt):
  return (x_next - x) / dt + healthy - CTRL_COST * jnp.sum(jnp.square(action))


def make_env_reward(dt):
  def env_reward(before, data, action):
    healthy = _healthy(data.qpos)
    return _reward(before.qpos[0], data.qpos[0], healthy, action, dt), 1.0 - healthy
  return env_reward


# --- What the planner knows: reward and termination as functions of (s, a, s').
# Both read qpos only, which the observation holds unclipped: they equal the env's.


def termination(s, a, s_next):
  del s, a
  return 1.0 - _healthy(s_next[:NQ])


def make_reward(dt):
  def reward(s, a, s_next):
    return _reward(s[0], s_next[0], _healthy(s_next[:NQ]), a, dt)
  return reward


def make(frame_skip: int = 0) -> mjx_env.MjxTask:
  model = mjx_env.load_model("walker2d_v5.xml", **SOLVER)
  frame_skip = frame_skip or FRAME_SKIP
  dt = float(model.opt.timestep) * frame_skip
  return mjx_env.MjxTask(model, frame_skip, lambda k: reset(model, k), observation,
                         make_env_reward(dt))
