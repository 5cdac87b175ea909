"""The learned parts: a soft Q-network and an ensemble of residual dynamics
models with stacked parameters (leading axis = member)."""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence, Tuple

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp

from smpc_jax.config import (  # names, defined once
    ACTIVATIONS, BRANCHING, COMPUTE_DTYPES, NETWORK_INITS)


def _torch_bias_init(fan_in: int):
  """PyTorch's nn.Linear bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / fan_in ** 0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


def round_to_bfloat16(x):  # [...] float32 -> [...] bfloat16
  """x.astype(bfloat16), bit for bit (round to nearest, ties to even; inf and
  NaN kept), in integer arithmetic: on XLA:CPU about twice as fast as its
  convert, which matters where every hidden activation is rounded."""
  bits = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.uint32)
  nan = jnp.isnan(x)
  bits = bits + (jnp.uint32(0x7FFF) + ((bits >> 16) & 1))  # carry into the upper half
  rounded = jax.lax.bitcast_convert_type((bits >> 16).astype(jnp.uint16), jnp.bfloat16)
  return jnp.where(nan, jnp.asarray(jnp.nan, jnp.bfloat16), rounded)


def silu_via_tanh(x):
  """silu(x) = x sigmoid(x) = x (1 + tanh(x / 2)) / 2: the same function,
  within 2e-6 of jax.nn.silu, and 20% cheaper on XLA:CPU (its tanh is a
  rational approximation, its sigmoid an exp and a division). Used where the
  output is rounded to bfloat16 anyway (relative step 2^-8)."""
  return 0.5 * x * (1.0 + jnp.tanh(0.5 * x))


def mixed_dot_general(compute_dtype: str):
  """lax.dot_general for a layer whose products are computed in
  `compute_dtype`: both operands cast to it, the products accumulated and
  returned in float32 (preferred_element_type). None for "float32": flax's
  own dot_general. Only the multiplications change: biases, activations and
  everything after the layer stay float32."""
  if compute_dtype not in COMPUTE_DTYPES:
    raise ValueError(f"compute_dtype={compute_dtype!r} is invalid; "
                     f"allowed: {', '.join(COMPUTE_DTYPES)}.")
  if compute_dtype == "float32":
    return None
  dtype = jnp.dtype(compute_dtype)

  cast = round_to_bfloat16 if dtype == jnp.bfloat16 else lambda v: v.astype(dtype)

  def dot_general(x, kernel, dimension_numbers, precision=None, **unused):
    return jax.lax.dot_general(cast(x), kernel.astype(dtype), dimension_numbers,
                               precision=precision, preferred_element_type=jnp.float32)

  return dot_general


def dense(features: int, fan_in: int, scheme: str = "flax",
          compute_dtype: str = "float32") -> nn.Dense:
  """A Dense layer initialised as flax does (LeCun normal kernel, zero bias)
  or as PyTorch's nn.Linear does (kernel and bias U(+-1/sqrt(fan_in)), its
  kaiming_uniform(a=sqrt(5))); its product in `compute_dtype` (see
  `mixed_dot_general`). Parameters are float32 whatever the compute dtype."""
  dot_general = mixed_dot_general(compute_dtype)
  if scheme == "flax":
    return nn.Dense(features, dot_general=dot_general)
  if scheme == "torch":
    return nn.Dense(features, dot_general=dot_general,
                    kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                    bias_init=_torch_bias_init(fan_in))
  raise ValueError(f"init={scheme!r} is invalid; allowed: {', '.join(NETWORK_INITS)}.")


class MLP(nn.Module):
  hidden_sizes: Sequence[int]
  out_size: int
  scheme: str = "flax"  # initialisation, see `dense`
  # Of the hidden layers: one of ACTIVATIONS (flax.linen's function of that
  # name), or a tuple of one per layer.
  activation: str | Tuple[str, ...] = "silu"
  # The layers' products: "float32", or "bfloat16" with float32 accumulation.
  compute_dtype: str = "float32"

  @nn.compact
  def __call__(self, x):  # [..., in] -> [..., out]
    names = ((self.activation,) * len(self.hidden_sizes) if isinstance(self.activation, str)
             else self.activation)
    for h, name in zip(self.hidden_sizes, names, strict=True):
      if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} is invalid; allowed: {', '.join(ACTIVATIONS)}.")
      act = getattr(nn, name)
      if name == "silu" and self.compute_dtype != "float32":
        act = silu_via_tanh  # its output is rounded for the next product
      x = act(dense(h, x.shape[-1], self.scheme, self.compute_dtype)(x))
    return dense(self.out_size, x.shape[-1], self.scheme, self.compute_dtype)(x)


@flax.struct.dataclass
class RunningStats:
  """Mean and variance of everything seen so far (Welford), per coordinate."""
  count: jax.Array  # []
  mean: jax.Array  # [d]
  m2: jax.Array  # [d] sum of squared deviations from the mean

  @property
  def std(self):  # [d], floored so near-constant coordinates stay finite.
    return jnp.maximum(jnp.sqrt(self.m2 / jnp.maximum(self.count, 1.0)), 1e-3)

  def normalise(self, x):  # [..., d] -> [..., d], clipped to +-10 std
    return jnp.clip((x - self.mean) / self.std, -10.0, 10.0)


def stats_init(size: int) -> RunningStats:
  return RunningStats(jnp.zeros(()), jnp.zeros((size,)), jnp.zeros((size,)))


def stats_update(stats: RunningStats, x) -> RunningStats:
  """Adds one sample x [d]."""
  count = stats.count + 1.0
  mean = stats.mean + (x - stats.mean) / count
  return RunningStats(count, mean, stats.m2 + (x - stats.mean) * (x - mean))


class Scales(NamedTuple):
  """What the dynamics ensemble normalises with: inputs by the running
  statistics of observations, outputs by those of observed changes s' - s."""
  obs: RunningStats
  delta: RunningStats


def scales_init(obs_size: int) -> Scales:
  return Scales(stats_init(obs_size), stats_init(obs_size))


def scales_update(scales: Scales, obs, next_obs) -> Scales:
  return Scales(stats_update(scales.obs, obs), stats_update(scales.delta, next_obs - obs))


class QNetwork(NamedTuple):
  init: Callable  # (key) -> params
  apply: Callable  # (params, s [..., obs], a [..., act]) -> Q [...], reward units


class Ensemble(NamedTuple):
  init: Callable  # (key) -> params, every leaf [E, ...]
  # (member params, scales, s [..., obs], a [..., act]) -> (s' - s) in units of
  # the running std of s' - s, centred on its running mean.
  delta: Callable
  # (params, scales, key, s [N, obs], a [N, act]) -> s' [N, obs]
  predict: Callable


def make_q(obs_size: int, action_size: int, hidden_sizes: Sequence[int],
           scheme: str = "flax", activation: str = "silu",
           compute_dtype: str = "float32") -> QNetwork:
  """compute_dtype: the dtype of `apply`'s products (see `mixed_dot_general`);
  the parameters are float32 and the same for every compute dtype."""
  net = MLP(tuple(hidden_sizes), 1, scheme, activation, compute_dtype)

  def init(key):
    return net.init(key, jnp.zeros((obs_size + action_size,)))

  def apply(params, s, a):
    return net.apply(params, jnp.concatenate([s, a], axis=-1))[..., 0]

  return QNetwork(init, apply)


def unit_scales(obs_size: int) -> Scales:
  """Scales that change nothing: mean 0, std 1 (an unstandardised model)."""
  unit = RunningStats(jnp.ones(()), jnp.zeros((obs_size,)), jnp.ones((obs_size,)))
  return Scales(unit, unit)


def make_ensemble(obs_size: int, action_size: int, hidden_sizes: Sequence[int],
                  ensemble_size: int, branching: str = "per_sample",
                  standardise: bool = True, scheme: str = "flax",
                  activation: str = "silu", compute_dtype: str = "float32") -> Ensemble:
  """E residual models s' = s + f_e(s, a), trained on s' - s.

  scheme: the layers' initialisation, "flax" or "torch" (see `dense`).
  standardise: inputs and outputs are standardised by running statistics
  (`Scales`) so that every coordinate counts in the loss, not only the large
  velocities. False: raw s in, raw s' - s out (the caller passes
  `unit_scales`, and the input is not clipped).

  branching: how `predict` picks members (Algorithm 1, line 6).
    "per_step": one member, uniform, for all N rows of a call; with the key
      shared across a vmapped batch of states (see `planner.mppi`'s
      `model_key`), one member for the whole batch, as the authors' code does.
      Costs one member's matmul over every row.
    "per_sample": every row its own member, uniform and independent from call
      to call (the literal reading of line 6), also at the cost of one model.
  compute_dtype: the dtype of the members' products (see `mixed_dot_general`);
  the parameters are float32 and the same for every compute dtype.
  """
  if branching not in BRANCHING:
    raise ValueError(f"branching={branching!r} is invalid; allowed: {', '.join(BRANCHING)}.")
  net = MLP(tuple(hidden_sizes), obs_size, scheme, activation, compute_dtype)

  def init(key):
    x = jnp.zeros((obs_size + action_size,))
    return jax.vmap(lambda k: net.init(k, x))(jax.random.split(key, ensemble_size))

  def inputs(scales, s, a):  # [..., obs + act]
    return jnp.concatenate([scales.obs.normalise(s) if standardise else s, a], axis=-1)

  def delta(params_e, scales, s, a):
    return net.apply(params_e, inputs(scales, s, a))

  def predict_per_step(params, scales, key, s, a):
    """All N rows through one member m, uniform per call (per planning step).
    Under vmap with an unbatched key, m is unbatched too: one dynamic slice of
    the stacked weights and one matmul over every row of the batch."""
    m = jax.random.randint(key, (), 0, ensemble_size)
    params_m = jax.tree.map(lambda p: jax.lax.dynamic_index_in_dim(p, m, keepdims=False),
                            params)
    d = delta(params_m, scales, s, a)  # [N, obs]
    return s + scales.delta.mean + scales.delta.std * d

  def predict_per_sample(params, scales, key, s, a):
    """The N rows form E equal groups (row i in group i // (N / E)); group g
    goes through member (g + c) mod E, c drawn uniformly per call (per
    planning step). So every row's member is uniform and independent from
    step to step, as the paper's branching model asks, at the cost of one
    model rather than E, and with no shuffling of rows."""
    n = s.shape[0]
    c = jax.random.randint(key, (), 0, ensemble_size)
    x = jnp.roll(inputs(scales, s, a).reshape(ensemble_size, n // ensemble_size, -1), c, axis=0)
    d = jax.vmap(net.apply)(params, x)  # [E, N/E, obs]: member m, group m - c
    d = jnp.roll(d, -c, axis=0).reshape(n, obs_size)
    return s + scales.delta.mean + scales.delta.std * d  # back to units of s

  predict = predict_per_step if branching == "per_step" else predict_per_sample
  return Ensemble(init, delta, predict)
