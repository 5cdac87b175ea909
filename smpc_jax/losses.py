"""Losses: fitted soft Q-iteration with MPPI targets (eq. 7) and next-step
MSE for the dynamics ensemble."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def soft_bellman_target(reward, terminated, next_value, gamma):
  """y = r + (1 - terminated) * gamma * V_MPPI(s'), held fixed.

  All [B]. Truncated episodes are not terminated: they still bootstrap.
  """
  return jax.lax.stop_gradient(reward + (1.0 - terminated) * gamma * next_value)


def q_loss(q_apply, params, obs, action, target):
  """Eq. (7): MSE(Q(s, a), y). obs [B, obs], action [B, act], target [B]."""
  q = q_apply(params, obs, action)  # [B]
  return jnp.mean(jnp.square(q - target)), q


def dynamics_loss(delta_fn, params, scales, obs, action, next_obs):
  """Ensemble next-step MSE on s' - s, standardised, summed over members.

  params: stacked [E, ...]; obs, next_obs [E, B, obs]; action [E, B, act]:
  each member trains on its own batch. `scales.delta` standardises the
  observed change, so each coordinate weighs alike.
  """
  pred = jax.vmap(delta_fn, (0, None, 0, 0))(params, scales, obs, action)  # [E, B, obs]
  target = (next_obs - obs - scales.delta.mean) / scales.delta.std
  per_member = jnp.mean(jnp.square(pred - target), axis=(1, 2))  # [E]
  return jnp.sum(per_member), per_member
