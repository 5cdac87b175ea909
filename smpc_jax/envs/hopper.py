"""Gymnasium's Hopper-v5 on MJX, with the x position kept in the observation
(`exclude_current_positions_from_observation=False`), as the paper uses it.

Same model (assets/hopper.xml: RK4, 0.002 s), 4 frames per step (0.008 s),
reset qpos + U(-5e-3, 5e-3) and qvel + U(-5e-3, 5e-3), observation
[qpos (6), clip(qvel, 10) (6)], reward (x' - x) / dt + healthy - 1e-3 |a|^2,
where healthy (1 or 0) requires z > 0.7, |angle| < 0.2 and every entry of
(qpos[2:], qvel) inside (-100, 100); termination when unhealthy.
"""

from __future__ import annotations

import jax.numpy as jnp

from smpc_jax.envs import mjx_env

FRAME_SKIP = 4
RESET_NOISE = 5e-3
CTRL_COST = 1e-3
# Contacts and joint limits; MuJoCo's 100 Newton iterations to 1e-8 cannot
# converge in float32 (tests/lib/test_parity.py measures the cap against Gymnasium).
# 3 Newton iterations with 1 line-search step pass it with the errors of
# 4 x 1 and 4 x 2 (the old 4 x 8 was not measured beside them); 2 do not
# (one-step errors 2.5e-3), whatever the line search. Fewer steps: a shorter
# serial chain of kernels (issue 18).
SOLVER = dict(iterations=3, ls_iterations=1)


def reset(model, key):
  """(qpos [6], qvel [6]) ~ Gymnasium v5's reset distribution."""
  return mjx_env.locomotion_reset(model, key, RESET_NOISE)


observation = mjx_env.locomotion_observation  # -> [12]


def observation_without_x(data):  # -> [11]: Gymnasium's default Hopper-v5 observation
  return mjx_env.locomotion_observation(data)[1:]


def _healthy(qpos, qvel):
  z, angle = qpos[1], qpos[2]
  state = jnp.concatenate([qpos[2:], qvel])
  ok = jnp.all((state > -100.0) & (state < 100.0)) & (z > 0.7) & (angle > -0.2) & (angle < 0.2)
  return ok.astype(jnp.float32)


def _reward(x, x_next, healthy, action, dt):
  return (x_next - x) / dt + healthy - CTRL_COST * jnp.sum(jnp.square(action))


def make_env_reward(dt):
  def env_reward(before, data, action):
    healthy = _healthy(data.qpos, data.qvel)
    return _reward(before.qpos[0], data.qpos[0], healthy, action, dt), 1.0 - healthy
  return env_reward


# --- What the planner knows: reward and termination as functions of (s, a, s').
# The observation clips velocities at 10, so a velocity beyond 100 (the
# env's unhealthy bound) is not seen; nowhere else do they differ.


def termination(s, a, s_next):
  del s, a
  return 1.0 - _healthy(s_next[:6], s_next[6:])


def termination_without_x(s, a, s_next):  # s_next [11]: x left out (health never reads it)
  del s, a
  return 1.0 - _healthy(jnp.concatenate([jnp.zeros(1), s_next[:5]]), s_next[5:])


def make_reward(dt):
  def reward(s, a, s_next):
    return _reward(s[0], s_next[0], _healthy(s_next[:6], s_next[6:]), a, dt)
  return reward


def make(frame_skip: int = 0, observe_x: bool = True) -> mjx_env.MjxTask:
  """The task; observe_x=False observes as Gymnasium's default Hopper-v5
  (x left out), what model-free baselines such as CleanRL's learned from."""
  model = mjx_env.load_model("hopper.xml", **SOLVER)
  frame_skip = frame_skip or FRAME_SKIP
  dt = float(model.opt.timestep) * frame_skip
  return mjx_env.MjxTask(model, frame_skip, lambda k: reset(model, k),
                         observation if observe_x else observation_without_x,
                         make_env_reward(dt))
