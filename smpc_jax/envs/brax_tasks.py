"""brax's own `inverted_double_pendulum` and `hopper` (MJX backend), with their
known reward and termination: the environments of this project's results up
to the paper-exact tasks, kept as "idp_brax" and "hopper_brax" so those runs
stay reproducible. brax's variants differ from the paper's (Gymnasium v5):
Euler integration, 2 frames per idp step, 8 idp observations, other resets.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

# MuJoCo computes body positions before it integrates, so brax's rewards read
# positions from the start of the step's last physics substep. With the Euler
# integrator those are q' - h * qdot' (h the substep), which the known rewards
# rebuild from s'; they match the env wherever the observation's velocity
# clipping (at 10) is inactive.

# --- Double inverted pendulum -------------------------------------------------
# obs = [x, sin th1, sin th2, cos th1, cos th2, x_dot, th1_dot, th2_dot]; both
# poles are 0.6 long and hinge at the cart (z = 0).
_POLE = 0.6
_IDP_SUBSTEP = 0.01
_IDP_SOLVER_ITERATIONS = 4


def _rotate_back(sin, cos, angle):
  """(sin, cos) of (theta - angle) from those of theta."""
  sa, ca = jnp.sin(angle), jnp.cos(angle)
  return sin * ca - cos * sa, cos * ca + sin * sa


def _idp_tip(s):
  """Tip (x, height) where brax measures it: one substep back from s."""
  h = _IDP_SUBSTEP
  x = s[0] - h * s[5]
  s1, c1 = _rotate_back(s[1], s[3], h * s[6])
  s2, c2 = _rotate_back(s[2], s[4], h * s[7])
  s12 = s1 * c2 + c1 * s2  # sin(th1 + th2)
  c12 = c1 * c2 - s1 * s2  # cos(th1 + th2)
  return x + _POLE * (s1 + s12), _POLE * (c1 + c12)


def idp_termination(s, a, s_next):
  del s, a
  _, y = _idp_tip(s_next)
  return (y <= 1.0).astype(jnp.float32)


def idp_reward(s, a, s_next):
  x, y = _idp_tip(s_next)
  done = idp_termination(s, a, s_next)
  w1, w2 = s_next[6], s_next[7]
  dist_penalty = 0.01 * x**2 + (y - 2.0) ** 2
  vel_penalty = 1e-3 * w1**2 + 5e-3 * w2**2
  return (1.0 - done) * 10.0 - dist_penalty - vel_penalty


# --- Hopper ---------------------------------------------------------------------
# obs = [x, z, torso angle, thigh, leg, foot, 6 joint velocities clipped to 10].
_HOPPER_SUBSTEP = 0.002


def hopper_termination(s, a, s_next):
  del s, a
  z, angle = s_next[1], s_next[2]
  state = s_next[2:]
  healthy = jnp.all(jnp.abs(state) < 100.0)
  healthy &= z > 0.7
  healthy &= jnp.abs(angle) < 0.2
  return 1.0 - healthy.astype(jnp.float32)


def hopper_reward(s, a, s_next, dt=4 * _HOPPER_SUBSTEP):
  # The torso x one substep back, at both ends (the obs z is already so).
  x_next, x = s_next[0] - _HOPPER_SUBSTEP * s_next[6], s[0] - _HOPPER_SUBSTEP * s[6]
  forward = (x_next - x) / dt
  return forward + 1.0 - 1e-3 * jnp.sum(jnp.square(a))


def make(name: str, frame_skip: int = 0):
  """(brax env, reward_fn, termination_fn) for brax's "idp" or "hopper".

  frame_skip: physics substeps per env step; 0 keeps brax's default (idp 2,
  hopper 4).
  """
  from brax import envs as brax_envs  # Imported here: only these tasks need it.

  kwargs = {"n_frames": frame_skip} if frame_skip else {}
  if name == "idp":
    env = brax_envs.get_environment("inverted_double_pendulum", backend="mjx", **kwargs)
    assert abs(float(env.sys.opt.timestep) - _IDP_SUBSTEP) < 1e-9
    # The only constraint is the rail's limit, solved by one Newton step.
    # MuJoCo's defaults (100 iterations to a 1e-8 tolerance, 50 line-search
    # steps) never meet that tolerance in float32 and run to the cap whenever
    # the cart is at the rail; 4 and 8 give the same states
    # (tests/lib/test_envs.py) at a fraction of the cost.
    env.sys = env.sys.tree_replace({"opt.iterations": _IDP_SOLVER_ITERATIONS,
                                    "opt.ls_iterations": 2 * _IDP_SOLVER_ITERATIONS})
    return env, idp_reward, idp_termination
  if name == "hopper":
    env = brax_envs.get_environment(
        "hopper", backend="mjx", exclude_current_positions_from_observation=False,
        **kwargs)
    assert abs(float(env.sys.opt.timestep) - _HOPPER_SUBSTEP) < 1e-9
    return env, functools.partial(hopper_reward, dt=float(env.dt)), hopper_termination
  raise ValueError(f"brax task {name!r} is not known; allowed: idp, hopper.")
