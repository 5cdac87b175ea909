"""softMPCritic training: the paper's Algorithm 2 as one pure step.

`train_step(state, key)` takes one environment step with the online planner,
stores the transition, computes warm-started MPPI targets for a batch, and
updates the Q-function and the dynamics ensemble. `run` scans it; `make_train`
returns a single-jit `train(key)`. The whole run is one pytree, `TrainState`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax

from smpc_jax import envs, losses, networks, planner, replay
from smpc_jax.config import Config, validate


@flax.struct.dataclass
class HParams:
  """Hyperparameters as array leaves, so a vmapped sweep can vary them.
  (The learning rate lives in the optimiser states, injected by optax.)"""
  temperature: jax.Array  # [] lambda
  noise_var: jax.Array  # [] Sigma = noise_var * I
  gamma: jax.Array  # []
  tau: jax.Array  # [] Polyak rate


@flax.struct.dataclass
class TrainState:
  config: Config = flax.struct.field(pytree_node=False)
  hparams: HParams
  key: jax.Array  # the run's key; `run` splits it for each step.
  step: jax.Array  # [] int32, environment steps taken.
  env_state: Any  # brax State of the current episode.
  episode_step: jax.Array  # [] int32
  episode_return: jax.Array  # []
  plan: jax.Array  # [H+1, act] warm start for the planner at env_state.obs.
  q_params: Any
  q_target: Any
  q_opt: Any
  dyn_params: Any  # every leaf [E, ...]
  dyn_opt: Any
  scales: networks.Scales  # running statistics the ensemble standardises with
  buffer: replay.ReplayState


class Parts(NamedTuple):
  environment: envs.Environment
  q: networks.QNetwork
  ensemble: networks.Ensemble
  optimiser: optax.GradientTransformation


@functools.lru_cache(maxsize=None)
def parts(config: Config) -> Parts:
  """The environment, networks and optimiser a config describes."""
  environment = envs.make(config.env, config.frame_skip)
  obs, act = environment.obs_size, environment.action_size
  q = networks.make_q(obs, act, config.hidden_sizes)
  ensemble = networks.make_ensemble(obs, act, config.hidden_sizes, config.ensemble_size,
                                    config.branching)
  optimiser = optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rate)
  return Parts(environment, q, ensemble, optimiser)


def init(config: Config, key) -> TrainState:
  """A fresh run. Jittable and vmappable over `key`."""
  config = validate(config)
  p = parts(config)
  env = p.environment
  k_env, k_q, k_dyn, key = jax.random.split(key, 4)
  env_state = env.env.reset(k_env)
  q_params = p.q.init(k_q)
  dyn_params = p.ensemble.init(k_dyn)
  plan = jnp.zeros((config.horizon + 1, env.action_size))
  example = replay.Transition(
      obs=env_state.obs, action=jnp.zeros((env.action_size,)), reward=jnp.zeros(()),
      next_obs=env_state.obs, terminated=jnp.zeros(()), plan=plan)
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  return TrainState(
      config=config,
      hparams=HParams(f32(config.temperature), f32(config.noise_var),
                      f32(config.gamma), f32(config.tau)),
      key=key,
      step=jnp.zeros((), jnp.int32),
      env_state=env_state,
      episode_step=jnp.zeros((), jnp.int32),
      episode_return=jnp.zeros(()),
      plan=plan,
      q_params=q_params,
      q_target=q_params,
      q_opt=p.optimiser.init(q_params),
      dyn_params=dyn_params,
      dyn_opt=p.optimiser.init(dyn_params),
      scales=networks.scales_init(env.obs_size),
      buffer=replay.init(config.capacity, example),
  )


def planner_model(config: Config, dyn_params, scales, q_params) -> planner.Model:
  """The planner's imagination: ensemble dynamics, known reward and
  termination, and the terminal Q (or zero, for the 'no Q' ablation)."""
  p = parts(config)

  def dynamics(key, s, a):
    return p.ensemble.predict(dyn_params, scales, key, s, a)

  def terminal_value(s, a):
    if not config.use_terminal_q:
      return jnp.zeros(s.shape[:-1])
    return p.q.apply(q_params, s, a)

  env = p.environment
  return planner.Model(dynamics, env.reward_fn, env.termination_fn, terminal_value)


def plan(state: TrainState, key, obs, warm_start, q_params, *, num_samples,
         iterations=1, model_key=None) -> planner.MPPIResult:
  """MPPI at `obs` [obs] from `warm_start` [H+1, act] with the run's models.
  model_key: see `planner.mppi` (shared ensemble draws across a batch)."""
  c, h = state.config, state.hparams
  env = parts(c).environment
  return planner.mppi(
      key, obs, warm_start, planner_model(c, state.dyn_params, state.scales, q_params),
      num_samples=num_samples, iterations=iterations, temperature=h.temperature,
      noise_var=h.noise_var, gamma=h.gamma, prior=c.prior,
      action_low=env.action_low, action_high=env.action_high, model_key=model_key)


def _tree_where(cond, a, b):
  return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def train_step(state: TrainState, key) -> tuple[TrainState, dict]:
  """One environment step and one round of updates (Algorithm 2, lines 3-14)."""
  c, h = state.config, state.hparams
  p = parts(c)
  env = p.environment
  k_plan, k_reset, k_idx, k_target, k_dyn = jax.random.split(key, 5)

  # Act: refine the warm start at s, apply its clipped first action.
  obs = state.env_state.obs
  online = plan(state, k_plan, obs, state.plan, state.q_params, num_samples=c.num_samples)
  next_env = env.env.step(state.env_state, online.action)
  terminated = next_env.done
  episode_step = state.episode_step + 1
  done = (terminated > 0) | (episode_step >= c.episode_length)
  next_plan = planner.shift(online.plan)  # warm start at s' (line 6)
  buffer = replay.add(state.buffer, replay.Transition(
      obs, online.action, next_env.reward, next_env.obs, terminated, next_plan))
  episode_return = state.episode_return + next_env.reward
  scales = networks.scales_update(state.scales, obs, next_env.obs)

  # Q-iteration: warm-started MPPI targets with the target Q (lines 9-12).
  idx = replay.sample(buffer, k_idx, (c.batch_size,))  # [B]
  batch = replay.get(buffer, idx)
  warm = batch.plan if c.warm_start else jnp.zeros_like(batch.plan)
  # "per_step" branching: one member per imagined step for the whole batch.
  k_branch = jax.random.fold_in(k_target, 1) if c.branching == "per_step" else None
  targets = jax.vmap(lambda k, s, u: plan(
      state, k, s, u, state.q_target, num_samples=c.target_samples,
      iterations=c.target_iterations, model_key=k_branch))(
          jax.random.split(k_target, c.batch_size), batch.next_obs, warm)
  y = losses.soft_bellman_target(batch.reward, batch.terminated, targets.value, h.gamma)
  (q_loss, q_pred), q_grad = jax.value_and_grad(
      functools.partial(losses.q_loss, p.q.apply), has_aux=True)(
          state.q_params, batch.obs, batch.action, y)
  q_updates, q_opt = p.optimiser.update(q_grad, state.q_opt, state.q_params)
  q_params = optax.apply_updates(state.q_params, q_updates)
  if c.warm_start:  # The refined plans replace the stored ones (line 14).
    buffer = replay.write_plans(buffer, idx, targets.plan)

  # Dynamics: each member fits s' - s on its own batch (line 13).
  dyn_batch = replay.get(buffer, replay.sample(buffer, k_dyn, (c.ensemble_size, c.batch_size)))
  (dyn_loss, _), dyn_grad = jax.value_and_grad(
      functools.partial(losses.dynamics_loss, p.ensemble.delta), has_aux=True)(
          state.dyn_params, scales, dyn_batch.obs, dyn_batch.action, dyn_batch.next_obs)
  dyn_updates, dyn_opt = p.optimiser.update(dyn_grad, state.dyn_opt, state.dyn_params)
  dyn_params = optax.apply_updates(state.dyn_params, dyn_updates)

  step = state.step + 1
  q_target = _tree_where(
      step % c.target_update_period == 0,
      optax.incremental_update(q_params, state.q_target, h.tau), state.q_target)

  # Automatic reset: a fresh episode after termination or truncation.
  reset_env = env.env.reset(k_reset)
  metrics = dict(
      reward=next_env.reward,
      done=done,
      episode_return=episode_return,  # meaningful where done
      q_loss=q_loss,
      q_mean=jnp.mean(q_pred),
      target_mean=jnp.mean(y),
      dyn_loss=dyn_loss / c.ensemble_size,
      online_value=online.value,
      online_ess=online.ess,  # effective samples of the online MPPI weights
      # Non-finite guard: the driver stops at the first False.
      finite=dict(q_loss=jnp.isfinite(q_loss), dyn_loss=jnp.isfinite(dyn_loss),
                  q=jnp.all(jnp.isfinite(q_pred)), target=jnp.all(jnp.isfinite(y)),
                  params=_all_finite((q_params, dyn_params))),
  )
  new_state = state.replace(
      step=step,
      env_state=_tree_where(done, reset_env, next_env),
      episode_step=jnp.where(done, 0, episode_step),
      episode_return=jnp.where(done, 0.0, episode_return),
      plan=jnp.where(done, jnp.zeros_like(next_plan), next_plan),
      q_params=q_params, q_target=q_target, q_opt=q_opt,
      dyn_params=dyn_params, dyn_opt=dyn_opt, scales=scales, buffer=buffer)
  return new_state, metrics


def run(state: TrainState, num_steps: int) -> tuple[TrainState, dict]:
  """`num_steps` training steps in one `lax.scan`; metrics are [num_steps]."""
  key, step_key = jax.random.split(state.key)
  state = state.replace(key=key)
  return jax.lax.scan(train_step, state, jax.random.split(step_key, num_steps))


def make_train(config: Config):
  """PureJaxRL-style: `train(key) -> (final state, per-step metrics)`, a whole
  run as one function to `jit` (and `vmap` over keys for seeds)."""
  config = validate(config)

  def train(key):
    return run(init(config, key), config.total_steps)

  return train
