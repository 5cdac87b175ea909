"""A deterministic DDPG-style actor mu_theta(s), for the paper's ablations
(Fig. 3, right) and its DDPG baseline (Fig. 4).

`make_actor` returns pure functions: `init`, `apply` (the greedy action),
`explore` (Gaussian exploration noise, clipped to the action box) and `loss`
(maximise Q(s, mu(s)) under the online Q). `bootstrap_target` is the Bellman
target y = r + (1 - terminated) * gamma * Q_target(s', mu_target(s')).
`smpc_jax.train` consumes them through the `control` and `targets` switches.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from smpc_jax import losses
from smpc_jax.networks import MLP


class Actor(NamedTuple):
  init: Callable  # (key) -> params
  apply: Callable  # (params, s [..., obs]) -> a [..., act], inside the action box
  # (params, key, s [obs], noise_std) -> clip(mu(s) + noise_std * N(0, I)) [act]
  explore: Callable
  # (params, q_apply, q_params, s [B, obs]) -> (-mean_b Q(s_b, mu(s_b)), mean Q)
  loss: Callable


def make_actor(obs_size: int, action_size: int, hidden_sizes: Sequence[int],
               action_low: float, action_high: float, scheme: str = "flax",
               activation: str = "silu") -> Actor:
  """An MLP (the Q-network's activation) whose tanh output is scaled to the box."""
  net = MLP(tuple(hidden_sizes), action_size, scheme, activation)
  mid, half = (action_high + action_low) / 2, (action_high - action_low) / 2

  def init(key):
    return net.init(key, jnp.zeros((obs_size,)))

  def apply(params, s):
    return mid + half * nn.tanh(net.apply(params, s))

  def explore(params, key, s, noise_std):
    a = apply(params, s) + noise_std * jax.random.normal(key, (action_size,))
    return jnp.clip(a, action_low, action_high)

  def loss(params, q_apply, q_params, s):
    q = q_apply(q_params, s, apply(params, s))  # [B]
    return -jnp.mean(q), jnp.mean(q)

  return Actor(init, apply, explore, loss)


def bootstrap_target(actor: Actor, q_apply, actor_target, q_target, reward, terminated,
                     next_obs, gamma):
  """y = r + (1 - terminated) * gamma * Q_target(s', mu_target(s')), held fixed.
  reward, terminated [B]; next_obs [B, obs] -> [B]."""
  next_value = q_apply(q_target, next_obs, actor.apply(actor_target, next_obs))  # [B]
  return losses.soft_bellman_target(reward, terminated, next_value, gamma)
