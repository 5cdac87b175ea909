"""Replay buffer of (s, a, r, s', terminated, plan) as fixed-size device arrays.

Plain functions over an immutable state, in the manner of flashbax: `init`,
`add`, `sample` (returns indices), `get`, and `write_plans`, which puts the
planner's refined warm starts back at the sampled rows (Algorithm 2, lines 9-14).
"""

from __future__ import annotations

from typing import NamedTuple

import chex
import flax.struct
import jax
import jax.numpy as jnp


class Transition(NamedTuple):
  obs: jax.Array  # [..., obs]
  action: jax.Array  # [..., act]
  reward: jax.Array  # [...]
  next_obs: jax.Array  # [..., obs]
  terminated: jax.Array  # [...] 1.0 on termination (not on truncation).
  plan: jax.Array  # [..., H+1, act] warm start for the planner at next_obs.


@flax.struct.dataclass
class ReplayState:
  data: Transition  # every leaf [C, ...]
  cursor: jax.Array  # [] int32, the row the next `add` writes.
  size: jax.Array  # [] int32, rows filled (<= C).


def init(capacity: int, example: Transition) -> ReplayState:
  """An empty buffer of `capacity` rows shaped like `example` (one item)."""
  data = jax.tree.map(lambda x: jnp.zeros((capacity,) + jnp.shape(x), jnp.result_type(x)),
                      example)
  return ReplayState(data, jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))


def capacity(state: ReplayState) -> int:
  return state.data.reward.shape[0]


def add(state: ReplayState, item: Transition) -> ReplayState:
  """Writes one transition at the cursor; the oldest row goes when full."""
  # Where data enters the buffer: each field must have its row's shape.
  jax.tree.map(lambda buf, x: chex.assert_shape(x, buf.shape[1:]), state.data, item)
  data = jax.tree.map(lambda buf, x: buf.at[state.cursor].set(x), state.data, item)
  cap = capacity(state)
  return ReplayState(data, (state.cursor + 1) % cap, jnp.minimum(state.size + 1, cap))


def sample(state: ReplayState, key, batch_shape) -> jax.Array:
  """Row indices drawn uniformly, with replacement, from the filled rows."""
  return jax.random.randint(key, batch_shape, 0, jnp.maximum(state.size, 1))


def get(state: ReplayState, idx) -> Transition:
  return jax.tree.map(lambda buf: buf[idx], state.data)


def write_plans(state: ReplayState, idx, plans) -> ReplayState:
  """Replaces the plans at rows `idx` [B] with `plans` [B, H+1, act]."""
  data = state.data._replace(plan=state.data.plan.at[idx].set(plans))
  return state.replace(data=data)
