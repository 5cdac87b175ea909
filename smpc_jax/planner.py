"""MPPI with a terminal soft Q-function: the paper's Algorithm 1 and eq. (6).

The planner takes the dynamics, reward, termination and terminal value as
functions, so the same code plans on the learned ensemble and on a linear toy
system in the tests. Everything is written for one state; vmap over states.

Units: rewards, returns, Q and the returned soft value are in reward units
(higher is better). Internally the free energy is computed on costs,
cost = -return, exactly as in the paper, and negated on the way out.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from smpc_jax.config import NORMALISERS  # the soft value's normalisers, named once
from smpc_jax.types import RewardFn, TerminationFn  # the known reward and termination

# (key, s [N, obs], a [N, act]) -> s' [N, obs]. The key lets an ensemble pick
# members per row; a deterministic model ignores it.
DynamicsFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
# (s_H [N, obs], a_H [N, act]) -> Q [N], reward units.
TerminalValueFn = Callable[[jax.Array, jax.Array], jax.Array]


class Model(NamedTuple):
  """What the planner imagines with."""
  dynamics: DynamicsFn
  reward: RewardFn
  termination: TerminationFn
  terminal_value: TerminalValueFn


class MPPIResult(NamedTuple):
  plan: jax.Array  # [H+1, act] refined plan (unclipped mean of the sampler).
  action: jax.Array  # [act] its first action, clipped to the action box.
  value: jax.Array  # [] soft value V_MPPI(s), eq. (6), reward units.
  ess: jax.Array  # [] effective sample size 1 / sum_n w_n^2 of the last iteration.


def shift(plan: jax.Array) -> jax.Array:
  """{u_0, ..., u_H} -> {u_1, ..., u_H, 0} (Algorithm 2, line 6)."""
  return jnp.concatenate([plan[1:], jnp.zeros_like(plan[:1])], axis=0)


def rollout_returns(key, model: Model, s0, actions, gamma):
  """Discounted return of N imagined trajectories, eq. (6)'s -J.

  s0 [obs], actions [N, H+1, act] -> [N]. Step t's reward is discounted by
  gamma^t, the terminal Q(s_H, a_H) by gamma^H; a trajectory that hits a known
  termination collects nothing afterwards (no reward, no terminal value).
  """
  n, h1, _ = actions.shape
  horizon = h1 - 1
  s = jnp.broadcast_to(s0, (n,) + s0.shape)

  def step(carry, xs):
    s, alive, disc, ret = carry
    a, k = xs
    s_next = model.dynamics(k, s, a)
    r = jax.vmap(model.reward)(s, a, s_next)
    done = jax.vmap(model.termination)(s, a, s_next)
    return (s_next, alive * (1.0 - done), disc * gamma, ret + disc * alive * r), None

  init = (s, jnp.ones((n,)), jnp.ones(()), jnp.zeros((n,)))
  xs = (jnp.swapaxes(actions[:, :horizon], 0, 1), jax.random.split(key, horizon))
  # Unrolled: H is small, and XLA then fuses across steps with no loop overhead.
  (s_h, alive, disc, ret), _ = jax.lax.scan(step, init, xs, unroll=True)
  return ret + disc * alive * model.terminal_value(s_h, actions[:, horizon])


def _iteration(key, model_key, s0, plan, model, num_samples, temperature, noise_var,
               gamma, prior, action_low, action_high, normaliser="mean"):
  """One MPPI update of `plan` [H+1, act]; returns (new plan, (value, ess))."""
  k_noise, k_roll = jax.random.split(key)
  if model_key is not None:
    k_roll = model_key
  h1, act = plan.shape
  eps = jnp.sqrt(noise_var) * jax.random.normal(k_noise, (num_samples, h1, act))
  actions = plan + eps  # [N, H+1, act]
  ret = rollout_returns(k_roll, model, s0, jnp.clip(actions, action_low, action_high),
                        gamma)  # [N]
  disc = gamma ** jnp.arange(h1)  # [H+1]
  lam = temperature
  if prior == "gaussian":
    # Prior N(0, Sigma), sampler N(u, Sigma): the cost gains
    # lam * sum_t gamma^t u_t' Sigma^-1 eps_t, the value the constant
    # (lam / 2) * sum_t gamma^t u_t' Sigma^-1 u_t (Algorithm 1, line 9).
    correction = lam / noise_var * jnp.einsum("t,ta,nta->n", disc, plan, eps)
    constant = lam / (2 * noise_var) * jnp.einsum("t,ta,ta->", disc, plan, plan)
    valid = jnp.ones((num_samples,), bool)
  elif prior == "uniform":
    # Prior uniform on the action box, sampler N(u, Sigma): the cost gains
    # -(lam / 2) * sum_t gamma^t eps_t' Sigma^-1 eps_t, samples outside the box
    # get zero weight, and the value gains
    # lam * sum_t gamma^t (log Gaussian normaliser + log box volume).
    correction = -lam / (2 * noise_var) * jnp.einsum("t,nta,nta->n", disc, eps, eps)
    log_normaliser = -0.5 * act * jnp.log(2 * math.pi * noise_var)
    log_volume = act * jnp.log(action_high - action_low)
    constant = lam * jnp.sum(disc) * (log_normaliser + log_volume)
    valid = jnp.all((actions >= action_low) & (actions <= action_high), axis=(1, 2))
    valid = valid | ~jnp.any(valid)  # No sample inside: fall back to all.
  else:
    raise ValueError(f"prior={prior!r} is invalid; allowed: gaussian, uniform.")
  cost = jnp.where(valid, -ret + correction, jnp.inf)  # [N]
  cost_min = jnp.min(cost)
  logits = -(cost - cost_min) / lam  # <= 0, -inf where invalid.
  weights = jax.nn.softmax(logits)  # [N]
  new_plan = plan + jnp.einsum("n,nta->ta", weights, eps)
  # V = -lam * log(mean_n exp(-cost_n / lam)) + constant (cost units); with
  # normaliser="sum", log sum_n (the authors' Fig. 3 code): lam * log N lower.
  log_n = jnp.log(num_samples) if normaliser == "mean" else 0.0
  value_cost = cost_min - lam * (jax.nn.logsumexp(logits) - log_n)
  ess = 1.0 / jnp.sum(jnp.square(weights))
  return new_plan, (-(value_cost + constant), ess)


def _concrete(value):
  """`value` as a Python float where it is known before tracing (a number, a
  concrete array); None for a traced value (a vmapped sweep's)."""
  try:
    return float(value)
  except (TypeError, jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
    return None


def _check_arguments(s0, plan, num_samples, iterations, temperature, noise_var, prior,
                     action_low, action_high):
  """One ValueError naming the argument `mppi` cannot use, before tracing."""
  for name, value in (("num_samples", num_samples), ("iterations", iterations)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise ValueError(f"{name}={value!r} is invalid; it must be an integer >= 1 (static).")
  if jnp.ndim(s0) != 1:
    raise ValueError(f"s0 has shape {jnp.shape(s0)}; it must be one state [obs] "
                     "(vmap mppi over a batch of states).")
  if jnp.ndim(plan) != 2:
    raise ValueError(f"plan has shape {jnp.shape(plan)}; it must be [H+1, act].")
  for name, value in (("temperature", temperature), ("noise_var", noise_var)):
    v = _concrete(value) if jnp.ndim(value) == 0 else None
    if v is not None and not v > 0:
      raise ValueError(f"{name}={v!r} is invalid; it must be > 0.")
  if prior not in ("gaussian", "uniform"):
    raise ValueError(f"prior={prior!r} is invalid; allowed: gaussian, uniform.")
  low, high = (_concrete(v) if jnp.ndim(v) == 0 else None for v in (action_low, action_high))
  if low is not None and high is not None:
    if not low < high:
      raise ValueError(f"action_low={low!r} and action_high={high!r} are invalid; "
                       "action_low must be below action_high.")
    if prior == "uniform" and not (math.isfinite(low) and math.isfinite(high)):
      raise ValueError("prior='uniform' needs a finite action box (action_low, action_high): "
                       f"got [{low}, {high}].")


def mppi(key, s0, plan, model: Model, *, num_samples: int, iterations: int = 1,
         temperature, noise_var, gamma, prior: str = "gaussian",
         action_low=-jnp.inf, action_high=jnp.inf, model_key=None,
         normaliser: str = "mean") -> MPPIResult:
  """Algorithm 1: `iterations` MPPI updates of `plan` at state `s0`.

  s0 [obs], plan [H+1, act]. temperature (lambda), noise_var (Sigma = var * I)
  and gamma may be traced arrays (swept under vmap); num_samples, iterations
  and prior are static. The value is that of the last iteration, estimated
  from samples around the plan it started from.

  model_key: if given, the key of the model's own draws (an ensemble's member
  per step), split per iteration; otherwise they come from `key`. Pass one
  model_key to every state of a vmapped batch to share those draws across it.
  normaliser: the soft value's "mean" over samples, eq. (6), or "sum" (the
  authors' Fig. 3 code: the value higher by lambda * log N).
  """
  if normaliser not in NORMALISERS:
    raise ValueError(f"normaliser={normaliser!r} is invalid; allowed: {', '.join(NORMALISERS)}.")
  _check_arguments(s0, plan, num_samples, iterations, temperature, noise_var, prior,
                   action_low, action_high)
  keys = jax.random.split(key, iterations)
  model_keys = None if model_key is None else jax.random.split(model_key, iterations)

  def body(plan, ks):
    k, mk = ks
    return _iteration(k, mk, s0, plan, model, num_samples, temperature, noise_var,
                      gamma, prior, action_low, action_high, normaliser)

  plan, (values, ess) = jax.lax.scan(body, plan, (keys, model_keys),
                                     unroll=iterations <= 2)
  return MPPIResult(plan, jnp.clip(plan[0], action_low, action_high), values[-1], ess[-1])
