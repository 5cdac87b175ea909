"""Episodes with the online controller (`controller.make`) and no learning:
the planner (warm-started from the config's initial plan), or the actor's
greedy mu(s) where config.control == "actor". `episode` is the one episode
function: `evaluate` sums its rewards, experiments/render.py draws its poses."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from smpc_jax import controller
from smpc_jax.train import EVAL_STREAM, TrainState, parts


class Episode(NamedTuple):
  first: Any  # observe(the reset state)
  observed: Any  # observe(state) after each step, [T, ...]; after termination the last one held
  reward: jax.Array  # [T] each step's reward, 0 after the episode ended
  alive: jax.Array  # [T] 1 for the episode's steps (the terminating one included), then 0
  total: jax.Array  # [] the undiscounted return, summed step by step


def episode(state: TrainState, key, steps: int,
            observe: Callable[[Any], Any] = lambda env_state: ()) -> Episode:
  """One episode of at most `steps` env steps from a reset drawn with `key`.
  After termination the env state is held (the physics of a fallen state
  may diverge: selected away, so a NaN there cannot leak into the record)."""
  env = parts(state.config).environment.env
  ctrl = controller.make(state)
  k_reset, k_steps = jax.random.split(key)

  def step(carry, k):
    env_state, warm, alive, total = carry
    action, warm = ctrl.act(env_state.obs, warm, k)
    nxt = env.step(env_state, action)
    reward = jnp.where(alive > 0, nxt.reward, 0.0)
    nxt = jax.tree.map(lambda a, b: jnp.where(alive > 0, a, b), nxt, env_state)
    return (nxt, warm, alive * (1.0 - nxt.done), total + reward), (observe(nxt), reward, alive)

  first = env.reset(k_reset)
  warm = ctrl.initial_plan(jax.random.fold_in(k_reset, 1))  # [H+1, act]
  (*_, total), (observed, reward, alive) = jax.lax.scan(
      step, (first, warm, jnp.ones(()), jnp.zeros(())), jax.random.split(k_steps, steps))
  return Episode(observe(first), observed, reward, alive, total)


def evaluate(state: TrainState, key, num_episodes: int) -> jax.Array:
  """Undiscounted returns [num_episodes] of full episodes (episode_length
  steps, or until termination), vmapped over episodes."""
  returns = lambda k: episode(state, k, state.config.episode_length).total
  return jax.vmap(returns)(jax.random.split(key, num_episodes))


def evaluation_key(state: TrainState) -> jax.Array:
  """The key of an evaluation at `state.step`: a pure function of the run's
  key and the step (its own stream, apart from the training steps'), so an
  evaluation at step t gives the same returns however the run got there."""
  return jax.random.fold_in(jax.random.fold_in(state.key, EVAL_STREAM), state.step)
