"""The learned parts: a soft Q-network and an ensemble of residual dynamics
models with stacked parameters (leading axis = member)."""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
  hidden_sizes: Sequence[int]
  out_size: int

  @nn.compact
  def __call__(self, x):  # [..., in] -> [..., out]
    for h in self.hidden_sizes:
      x = nn.silu(nn.Dense(h)(x))
    return nn.Dense(self.out_size)(x)


class QNetwork(NamedTuple):
  init: Callable  # (key) -> params
  apply: Callable  # (params, s [..., obs], a [..., act]) -> Q [...], reward units


class Ensemble(NamedTuple):
  init: Callable  # (key) -> params, every leaf [E, ...]
  delta: Callable  # (member params, s [..., obs], a [..., act]) -> s' - s
  predict: Callable  # (params, key, s [N, obs], a [N, act]) -> s' [N, obs]


def make_q(obs_size: int, action_size: int, hidden_sizes: Sequence[int]) -> QNetwork:
  net = MLP(tuple(hidden_sizes), 1)

  def init(key):
    return net.init(key, jnp.zeros((obs_size + action_size,)))

  def apply(params, s, a):
    return net.apply(params, jnp.concatenate([s, a], axis=-1))[..., 0]

  return QNetwork(init, apply)


def make_ensemble(obs_size: int, action_size: int, hidden_sizes: Sequence[int],
                  ensemble_size: int) -> Ensemble:
  """E residual models s' = s + f_e(s, a), trained on s' - s."""
  net = MLP(tuple(hidden_sizes), obs_size)

  def init(key):
    x = jnp.zeros((obs_size + action_size,))
    return jax.vmap(lambda k: net.init(k, x))(jax.random.split(key, ensemble_size))

  def delta(params_e, s, a):
    return net.apply(params_e, jnp.concatenate([s, a], axis=-1))

  def predict(params, key, s, a):
    """Each of the N rows goes through one member, N/E rows per member, with a
    fresh random assignment per call (per planning step): every row draws a
    member uniformly, at the cost of one model rather than E."""
    n = s.shape[0]
    perm = jax.random.permutation(key, n)  # row perm[i] -> member i // (N / E)
    x = jnp.concatenate([s, a], axis=-1)[perm]
    x = x.reshape(ensemble_size, n // ensemble_size, -1)  # [E, N/E, obs+act]
    d = jax.vmap(net.apply)(params, x).reshape(n, obs_size)
    return s + jnp.zeros_like(s).at[perm].set(d)

  return Ensemble(init, delta, predict)
