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

from smpc_jax import actor as actor_lib
from smpc_jax import envs, losses, networks, planner, replay
from smpc_jax.config import SWEEPABLE, Config, validate


@flax.struct.dataclass
class HParams:
  """Hyperparameters as array leaves, so a vmapped sweep can vary them.
  (The learning rate lives in the optimiser states, injected by optax.)"""
  temperature: jax.Array  # [] lambda
  noise_var: jax.Array  # [] Sigma = noise_var * I
  gamma: jax.Array  # []
  tau: jax.Array  # [] Polyak rate


def with_hparams(state: "TrainState", **values) -> "TrainState":
  """`state` with hyperparameters (names in config.SWEEPABLE) set to `values`
  (scalars, traced or not): HParams' leaves, and the learning rate that
  optax.inject_hyperparams keeps in every optimiser state."""
  unknown = sorted(set(values) - set(SWEEPABLE))
  if unknown:
    raise ValueError(f"{unknown[0]!r} is not a swept hyperparameter; allowed: "
                     f"{', '.join(SWEEPABLE)}.")
  as_f32 = {k: jnp.asarray(v, jnp.float32) for k, v in values.items()}
  lr = as_f32.pop("learning_rate", None)
  state = state.replace(hparams=state.hparams.replace(**as_f32))
  if lr is None:
    return state
  set_lr = lambda opt: None if opt is None else opt._replace(
      hyperparams={**opt.hyperparams, "learning_rate": lr})
  return state.replace(q_opt=set_lr(state.q_opt), dyn_opt=set_lr(state.dyn_opt),
                       actor_opt=set_lr(state.actor_opt))


@flax.struct.dataclass
class TrainState:
  config: Config = flax.struct.field(pytree_node=False)
  hparams: HParams
  key: jax.Array  # the run's key, never split: step t uses step_key (fold_in t).
  step: jax.Array  # [] int32, environment steps taken.
  env_state: Any  # brax State of the current episode.
  episode_step: jax.Array  # [] int32
  episode_return: jax.Array  # []
  plan: jax.Array  # [H+1, act] warm start for the planner at env_state.obs.
  q_params: Any
  q_target: Any
  q_opt: Any
  dyn_params: Any  # every leaf [E, ...]; None where nothing plans (DDPG)
  dyn_opt: Any
  scales: networks.Scales  # running statistics the ensemble standardises with
  buffer: replay.ReplayState
  # The DDPG-style actor, only where config.uses_actor; None otherwise, so the
  # default softMPCritic state holds and updates none of it.
  actor_params: Any = None
  actor_target: Any = None
  actor_opt: Any = None


class Parts(NamedTuple):
  environment: envs.Environment
  q: networks.QNetwork  # float32: the losses and updates
  ensemble: networks.Ensemble
  optimiser: optax.GradientTransformation
  actor: actor_lib.Actor | None = None  # only where config.uses_actor
  # The same networks (same parameters) with the planners' compute dtype:
  # what MPPI imagines with, online and in the targets.
  planning_q: networks.QNetwork | None = None
  planning_ensemble: networks.Ensemble | None = None


@functools.lru_cache(maxsize=None)
def parts(config: Config) -> Parts:
  """The environment, networks and optimiser a config describes."""
  environment = envs.make(config.env, config.frame_skip)
  obs, act = environment.obs_size, environment.action_size
  q_activation = (tuple(config.q_activations.split(",")) if config.q_activations
                  else config.activation)
  make_q = functools.partial(networks.make_q, obs, act, config.hidden_sizes,
                             config.network_init, q_activation)
  make_ensemble = functools.partial(
      networks.make_ensemble, obs, act, config.hidden_sizes, config.ensemble_size,
      config.branching, config.standardise_model, config.network_init, config.activation)
  q, ensemble = make_q(), make_ensemble()
  planning_q, planning_ensemble = q, ensemble
  if config.compute_dtype != "float32":
    planning_q = make_q(compute_dtype=config.compute_dtype)
    planning_ensemble = make_ensemble(compute_dtype=config.compute_dtype)
  optimiser = optax.inject_hyperparams(optax.adam)(learning_rate=config.learning_rate)
  actor = None
  if config.uses_actor:
    actor = actor_lib.make_actor(obs, act, config.hidden_sizes, environment.action_low,
                                 environment.action_high, config.network_init,
                                 config.activation)
  return Parts(environment, q, ensemble, optimiser, actor, planning_q, planning_ensemble)


def init(config: Config, key) -> TrainState:
  """A fresh run. Jittable and vmappable over `key`."""
  config = validate(config)
  p = parts(config)
  env = p.environment
  k_env, k_q, k_dyn, key = jax.random.split(key, 4)
  env_state = env.env.reset(k_env)
  q_params = p.q.init(k_q)
  dyn_params = p.ensemble.init(k_dyn) if config.uses_model else None
  actor_params = p.actor.init(jax.random.fold_in(k_q, 1)) if config.uses_actor else None
  hparams = HParams(*(jnp.asarray(v, jnp.float32) for v in (
      config.temperature, config.noise_var, config.gamma, config.tau)))
  plan = initial_plan(config, hparams, jax.random.fold_in(k_env, 1))
  # Stored plans warm-start MPPI targets; with actor targets none are stored.
  stored_plan = plan if config.targets == "mppi" else jnp.zeros((0, env.action_size))
  example = replay.Transition(
      obs=env_state.obs, action=jnp.zeros((env.action_size,)), reward=jnp.zeros(()),
      next_obs=env_state.obs, terminated=jnp.zeros(()), plan=stored_plan)
  scales = (networks.scales_init if config.standardise_model else networks.unit_scales)(
      env.obs_size)
  return TrainState(
      config=config,
      hparams=hparams,
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
      dyn_opt=p.optimiser.init(dyn_params) if config.uses_model else None,
      scales=scales,
      buffer=replay.init(config.capacity, example),
      actor_params=actor_params,
      actor_target=actor_params,
      actor_opt=p.optimiser.init(actor_params) if config.uses_actor else None,
  )


def initial_plan(config: Config, hparams: HParams, key, batch_shape=()) -> jax.Array:
  """Plans [*batch_shape, H+1, act] an episode (or a cold target) starts
  from: zeros, or with initial_plan='random' draws of N(0, Sigma)."""
  shape = tuple(batch_shape) + (config.horizon + 1, parts(config).environment.action_size)
  if config.initial_plan == "zeros":
    return jnp.zeros(shape)
  return jnp.sqrt(hparams.noise_var) * jax.random.normal(key, shape)


def planner_model(config: Config, dyn_params, scales, q_params) -> planner.Model:
  """The planner's imagination: ensemble dynamics, known reward and
  termination (never, with mask_terminations=False), and the terminal Q (or
  zero, for the 'no Q' ablation); the networks' products in
  config.compute_dtype."""
  p = parts(config)

  def dynamics(key, s, a):
    return p.planning_ensemble.predict(dyn_params, scales, key, s, a)

  def terminal_value(s, a):
    if not config.use_terminal_q:
      return jnp.zeros(s.shape[:-1])
    return p.planning_q.apply(q_params, s, a)

  env = p.environment
  termination = env.termination_fn
  if not config.mask_terminations:
    termination = lambda s, a, s_next: jnp.zeros(())
  return planner.Model(dynamics, env.reward_fn, termination, terminal_value)


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
      action_low=env.action_low, action_high=env.action_high, model_key=model_key,
      normaliser=c.value_normaliser)


def _tree_where(cond, a, b):
  return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _act(state: TrainState, key, obs):
  """The online action [act] at `obs`, the warm start it leaves for s'
  [H+1, act] and the planner's metrics. With control=actor: mu(s) plus
  exploration noise, and the carried plan stays zeros (nothing plans online)."""
  c = state.config
  if c.control == "actor":
    return parts(c).actor.explore(state.actor_params, key, obs, c.actor_noise), state.plan, {}
  online = plan(state, key, obs, state.plan, state.q_params, num_samples=c.num_samples)
  # The warm start at s' (line 6); ESS: effective samples of the MPPI weights.
  return online.action, planner.shift(online.plan), dict(
      online_value=online.value, online_ess=online.ess)


def _targets(state: TrainState, key, batch: replay.Transition):
  """Bellman targets y [B] for a sampled batch, and the refined plans
  [B, H+1, act] to store back (None with targets=actor); with
  keep_plan_tail=False their last action is reset to 0."""
  c, h = state.config, state.hparams
  if c.targets == "actor":  # y = r + gamma Q'(s', mu'(s')), DDPG's target.
    p = parts(c)
    return actor_lib.bootstrap_target(p.actor, p.q.apply, state.actor_target, state.q_target,
                                      batch.reward, batch.terminated, batch.next_obs,
                                      h.gamma), None
  # Warm-started MPPI targets with the target Q (lines 9-12).
  warm = batch.plan if c.warm_start else initial_plan(
      c, h, jax.random.fold_in(key, 2), (c.batch_size,))
  # "per_step" branching: one member per imagined step for the whole batch.
  k_branch = jax.random.fold_in(key, 1) if c.branching == "per_step" else None
  targets = jax.vmap(lambda k, s, u: plan(
      state, k, s, u, state.q_target, num_samples=c.target_samples,
      iterations=c.target_iterations, model_key=k_branch))(
          jax.random.split(key, c.batch_size), batch.next_obs, warm)
  y = losses.soft_bellman_target(batch.reward, batch.terminated, targets.value, h.gamma)
  stored = targets.plan if c.keep_plan_tail else targets.plan.at[:, -1].set(0.0)
  return y, stored


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _dynamics_update(c: Config, buffer, scales, carry, key):
  """One Adam step of the ensemble on a batch drawn with `key`: [E, B] rows,
  one batch per member or (dynamics_batch='shared') one for all. carry:
  (dyn_params, dyn_opt); returns (carry, summed member loss [])."""
  p = parts(c)
  dyn_params, dyn_opt = carry
  shared = c.dynamics_batch == "shared"
  dyn_idx = replay.sample(buffer, key, (1 if shared else c.ensemble_size, c.batch_size))
  dyn_batch = replay.get(buffer, jnp.broadcast_to(dyn_idx, (c.ensemble_size, c.batch_size)))
  (dyn_loss, _), dyn_grad = jax.value_and_grad(
      functools.partial(losses.dynamics_loss, p.ensemble.delta), has_aux=True)(
          dyn_params, scales, dyn_batch.obs, dyn_batch.action, dyn_batch.next_obs)
  updates, dyn_opt = p.optimiser.update(dyn_grad, dyn_opt, dyn_params)
  return (optax.apply_updates(dyn_params, updates), dyn_opt), dyn_loss


def train_step(state: TrainState, key) -> tuple[TrainState, dict]:
  """One environment step and one round of updates (Algorithm 2, lines 3-14).

  `config.control` and `config.targets` choose, at trace time, MPPI or the
  actor for each role; the parts a run does not use (actor, or planner and
  dynamics for DDPG) are neither traced nor updated."""
  c, h = state.config, state.hparams
  p = parts(c)
  env = p.environment
  k_plan, k_reset, k_idx, k_target, k_dyn = jax.random.split(key, 5)

  # Act: MPPI's clipped first action, or the actor's noisy one.
  obs = state.env_state.obs
  with jax.named_scope("online_plan"):  # scopes: experiments/step_ops.py --serial
    action, next_plan, act_metrics = _act(state, k_plan, obs)
    if c.warmup_steps:  # Uniform random actions before learning starts.
      random_action = jax.random.uniform(jax.random.fold_in(k_plan, 1), action.shape,
                                         minval=env.action_low, maxval=env.action_high)
      action = jnp.where(state.step < c.warmup_steps, random_action, action)
  with jax.named_scope("physics"):
    next_env = env.env.step(state.env_state, action)
  terminated = next_env.done
  episode_step = state.episode_step + 1
  done = (terminated > 0) | (episode_step >= c.episode_length)
  stored_plan = next_plan if c.targets == "mppi" else next_plan[:0]  # [H+1 or 0, act]
  buffer = replay.add(state.buffer, replay.Transition(
      obs, action, next_env.reward, next_env.obs, terminated, stored_plan))
  episode_return = state.episode_return + next_env.reward
  scales = state.scales  # unit scales stay as they are
  if c.uses_model and c.standardise_model:
    scales = networks.scales_update(state.scales, obs, next_env.obs)

  # Q-iteration on a sampled batch (lines 9-12).
  idx = replay.sample(buffer, k_idx, (c.batch_size,))  # [B]
  batch = replay.get(buffer, idx)
  with jax.named_scope("targets"):
    y, refined = _targets(state, k_target, batch)
  with jax.named_scope("updates"):
    (q_loss, q_pred), q_grad = jax.value_and_grad(
        functools.partial(losses.q_loss, p.q.apply), has_aux=True)(
            state.q_params, batch.obs, batch.action, y)
    q_updates, q_opt = p.optimiser.update(q_grad, state.q_opt, state.q_params)
    q_params = optax.apply_updates(state.q_params, q_updates)
  if refined is not None and c.warm_start:  # The refined plans replace the stored ones (line 14).
    buffer = replay.write_plans(buffer, idx, refined)
  learn_metrics = {}

  # Actor (DDPG): ascend Q(s, mu(s)) under the just-updated Q, same batch.
  actor_params, actor_opt = state.actor_params, state.actor_opt
  if c.uses_actor:
    (_, actor_q), a_grad = jax.value_and_grad(p.actor.loss, has_aux=True)(
        state.actor_params, p.q.apply, q_params, batch.obs)
    a_updates, actor_opt = p.optimiser.update(a_grad, state.actor_opt, state.actor_params)
    actor_params = optax.apply_updates(state.actor_params, a_updates)
    if c.actor_update_period > 1:  # The delayed actor: an Adam step every k-th env step.
      actor_now = (state.step + 1) % c.actor_update_period == 0
      actor_params, actor_opt = _tree_where(actor_now, (actor_params, actor_opt),
                                            (state.actor_params, state.actor_opt))
    learn_metrics["actor_q"] = actor_q  # mean Q(s, mu(s)) before the step

  # Dynamics: each member fits s' - s on its own batch, or all on one (line 13),
  # dynamics_updates times, each time on a fresh batch.
  dyn_params, dyn_opt = state.dyn_params, state.dyn_opt
  if c.uses_model:
    with jax.named_scope("updates"):
      update = functools.partial(_dynamics_update, c, buffer, scales)
      if c.dynamics_updates == 1:  # No scan: the same program as before the switch.
        (dyn_params, dyn_opt), dyn_loss = update((dyn_params, dyn_opt), k_dyn)
      else:
        (dyn_params, dyn_opt), dyn_loss = jax.lax.scan(
            update, (dyn_params, dyn_opt), jax.random.split(k_dyn, c.dynamics_updates))
        dyn_loss = jnp.mean(dyn_loss)  # [k] -> [], the mean over the updates
      learn_metrics["dyn_loss"] = dyn_loss / c.ensemble_size

  step = state.step + 1
  polyak_now = step % c.target_update_period == 0
  with jax.named_scope("updates"):
    q_target = _tree_where(
        polyak_now, optax.incremental_update(q_params, state.q_target, h.tau), state.q_target)
  actor_target = state.actor_target
  if c.uses_actor:
    actor_target = _tree_where(
        polyak_now, optax.incremental_update(actor_params, actor_target, h.tau), actor_target)

  if c.warmup_steps:  # Nothing learns during the warm-up (the buffer fills).
    (q_params, q_target, q_opt, dyn_params, dyn_opt, actor_params, actor_target,
     actor_opt) = _tree_where(
         state.step >= c.warmup_steps,
         (q_params, q_target, q_opt, dyn_params, dyn_opt, actor_params, actor_target, actor_opt),
         (state.q_params, state.q_target, state.q_opt, state.dyn_params, state.dyn_opt,
          state.actor_params, state.actor_target, state.actor_opt))

  # Automatic reset: a fresh episode after termination or truncation. MJX
  # tasks skip the reset's forward, which the next step recomputes anyway.
  with jax.named_scope("reset"):
    reset_env = getattr(env.env, "reset_for_step", env.env.reset)(k_reset)
  metrics = dict(
      reward=next_env.reward,
      done=done,
      episode_return=episode_return,  # meaningful where done
      q_loss=q_loss,
      q_mean=jnp.mean(q_pred),
      target_mean=jnp.mean(y),
      **learn_metrics,  # dyn_loss where a model learns, actor_q where an actor does
      **act_metrics,  # online_value, online_ess where MPPI acts
      # Non-finite guard: the driver stops at the first False.
      finite=dict(q_loss=jnp.isfinite(q_loss), q=jnp.all(jnp.isfinite(q_pred)),
                  target=jnp.all(jnp.isfinite(y)),
                  params=_all_finite((q_params, dyn_params, actor_params)),
                  **{k: jnp.isfinite(v) for k, v in learn_metrics.items()}),
  )
  new_state = state.replace(
      step=step,
      env_state=_tree_where(done, reset_env, next_env),
      episode_step=jnp.where(done, 0, episode_step),
      episode_return=jnp.where(done, 0.0, episode_return),
      plan=jnp.where(done, initial_plan(c, h, jax.random.fold_in(k_reset, 1)), next_plan),
      q_params=q_params, q_target=q_target, q_opt=q_opt,
      dyn_params=dyn_params, dyn_opt=dyn_opt, scales=scales, buffer=buffer,
      actor_params=actor_params, actor_target=actor_target, actor_opt=actor_opt)
  return new_state, metrics


# A run's two streams of randomness, each a pure function of the run's key and
# the env step: the training step's and the evaluation's (smpc_jax.evaluation).
STEP_STREAM, EVAL_STREAM = 0, 1


def step_key(state: TrainState) -> jax.Array:
  """The key env step `state.step` draws from: fold_in(key, step). A run is
  then the same however it is cut into calls, chunks or resumptions."""
  return jax.random.fold_in(jax.random.fold_in(state.key, STEP_STREAM), state.step)


def run(state: TrainState, num_steps: int) -> tuple[TrainState, dict]:
  """`num_steps` training steps in one `lax.scan`; metrics are [num_steps].
  Step t draws from `step_key`, so run(s, 1000) equals two runs of 500."""
  return jax.lax.scan(lambda s, _: train_step(s, step_key(s)), state, None, length=num_steps)


def _as_input(state: TrainState) -> TrainState:
  """`state` through the host and back, once. Without it XLA compiles init
  and the steps as one program and folds what init makes into the steps
  (layouts, constants), which rounds differently from steps on a state
  passed in, as the drivers' chunks get it. With it, `jax.vmap(train)` over
  a driver's seeds is that run bit for bit."""
  return jax.pure_callback(lambda s: s, state, state, vmap_method="broadcast_all")


def make_train(config: Config):
  """PureJaxRL-style: `train(key) -> (final state, per-step metrics)`, a whole
  run as one function to `jit` (and `vmap` over keys for seeds).

  `jax.jit(jax.vmap(train))(keys)` with keys PRNGKey(S), ..., PRNGKey(S+n-1)
  is train.py's `--seed=S --seeds=n` bit for bit. Unvmapped, or vmapped over
  another count, XLA lays the program out otherwise: the same episodes, the
  same draws, floats equal to rounding (as across device layouts)."""
  config = validate(config)

  def train(key):  # key: jax.random.PRNGKey(seed), as the drivers' --seed
    return run(_as_input(init(config, key)), config.total_steps)

  return train
