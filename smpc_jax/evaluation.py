"""Evaluation episodes with the online controller (the planner, or the
actor's greedy mu(s) where config.control == "actor"), vmapped over episodes."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from smpc_jax import planner
from smpc_jax.train import TrainState, initial_plan, parts, plan


def evaluate(state: TrainState, key, num_episodes: int) -> jax.Array:
  """Undiscounted returns [num_episodes] of full episodes (episode_length
  steps, or until termination) acting with the online planner, or with the
  actor's noise-free mu(s) where config.control == "actor"; no learning."""
  c = state.config
  env = parts(c).environment.env

  def episode(k):
    k_reset, k_steps = jax.random.split(k)

    def step(carry, k):
      env_state, warm, alive, ret = carry
      if c.control == "actor":
        action = parts(c).actor.apply(state.actor_params, env_state.obs)
      else:
        result = plan(state, k, env_state.obs, warm, state.q_params,
                      num_samples=c.num_samples)
        action, warm = result.action, planner.shift(result.plan)
      env_state = env.step(env_state, action)
      # After termination the physics runs on from a fallen state and may
      # diverge: select, rather than multiply, so a NaN there cannot leak in.
      ret = ret + jnp.where(alive > 0, env_state.reward, 0.0)
      alive = alive * (1.0 - env_state.done)
      return (env_state, warm, alive, ret), None

    warm = initial_plan(c, state.hparams, jax.random.fold_in(k_reset, 1))  # [H+1, act]
    init = (env.reset(k_reset), warm, jnp.ones(()), jnp.zeros(()))
    (_, _, _, ret), _ = jax.lax.scan(step, init, jax.random.split(k_steps, c.episode_length))
    return ret

  return jax.vmap(episode)(jax.random.split(key, num_episodes))
