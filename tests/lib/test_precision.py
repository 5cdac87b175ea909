"""Mixed precision in the planners (Config.compute_dtype): bfloat16 products
with float32 accumulation, and everything else float32.

- `low_precision_ops` walks a program's jaxpr and names every operation that
  computes in a dtype narrower than float32, other than a bfloat16 product
  accumulated in float32 and the casts feeding it. The planner, the target
  planner and the whole training step have none; a planted bfloat16
  accumulation (a sum, a product returned in bfloat16) is caught.
- On the LQ closed-form case (tests/lib/test_mppi.py's system, its products
  through bfloat16 layers) the planner's soft value and plan stay close to the
  float32 planner's and to the closed form.
- On trained networks (an ensemble fitted to the double pendulum's physics and
  a Q-network fitted to its rewards), the bfloat16 planner's value and plan
  agree with the float32 planner's within the stated tolerances, and differ
  from them at all (so bfloat16 really is used).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import smpc_jax as sj
from smpc_jax import envs, losses, networks, planner, train
from tests.lib import test_mppi as lq

F32 = jnp.dtype(jnp.float32)
NARROW = {jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)}
# Operations that round or move values and do no arithmetic: allowed on
# narrow values (the rounding of a product's operands uses some of them).
NO_ARITHMETIC = {"convert_element_type", "bitcast_convert_type", "broadcast_in_dim", "select_n",
                 "reshape", "squeeze", "transpose", "concatenate", "slice", "dynamic_slice"}


def _subjaxprs(eqn):
  for value in eqn.params.values():
    for v in (value if isinstance(value, (tuple, list)) else (value,)):
      if isinstance(v, jax.extend.core.ClosedJaxpr):
        yield v.jaxpr
      elif isinstance(v, jax.extend.core.Jaxpr):
        yield v


def _dtypes(variables) -> list:
  """The numeric dtypes of `variables` (PRNG key types left out)."""
  out = []
  for v in variables:
    dtype = getattr(v.aval, "dtype", None)
    if dtype is not None and not jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
      out.append(jnp.dtype(dtype))
  return out


def low_precision_ops(jaxpr) -> list:
  """The operations of `jaxpr` (recursively) that compute in a narrow float
  (bfloat16, float16), except the two that mixed precision allows: a
  dot_general of narrow operands that accumulates and returns float32
  (preferred_element_type), and operations that round or move values
  without arithmetic (NO_ARITHMETIC). Each as 'primitive: in dtypes -> out
  dtypes'."""
  bad = []
  for eqn in jaxpr.eqns:
    ins, outs = _dtypes(eqn.invars), _dtypes(eqn.outvars)
    name = eqn.primitive.name
    subs = list(_subjaxprs(eqn))
    if subs:  # pjit, scan, cond, while, custom_jvp...: look inside
      for sub in subs:
        bad += low_precision_ops(sub)
      continue
    if name in NO_ARITHMETIC:
      continue
    if name == "dot_general" and outs == [F32]:
      continue
    if any(d in NARROW for d in ins + outs):
      bad.append(f"{name}: {[str(d) for d in ins]} -> {[str(d) for d in outs]}")
  return bad


def mixed_products(jaxpr) -> int:
  """How many dot_generals of `jaxpr` (recursively) take narrow operands."""
  n = 0
  for eqn in jaxpr.eqns:
    for sub in _subjaxprs(eqn):
      n += mixed_products(sub)
    if eqn.primitive.name == "dot_general" and any(d in NARROW for d in _dtypes(eqn.invars)):
      n += 1
  return n


def test_the_checker_catches_planted_narrow_accumulation():
  x, w = jnp.ones((4, 8)), jnp.ones((8, 3))
  bf = jnp.bfloat16
  good = lambda x: jax.lax.dot_general(x.astype(bf), w.astype(bf), (((1,), (0,)), ((), ())),
                                       preferred_element_type=jnp.float32).sum()
  assert low_precision_ops(jax.make_jaxpr(good)(x).jaxpr) == []
  assert mixed_products(jax.make_jaxpr(good)(x).jaxpr) == 1
  planted = {
      "product returned in bfloat16": lambda x: (x.astype(bf) @ w.astype(bf)).astype(jnp.float32),
      "sum in bfloat16": lambda x: jax.lax.reduce(x.astype(bf), bf(0), jax.lax.add,
                                                   (0, 1)).astype(jnp.float32),
      "squared cost in bfloat16": lambda x: jnp.sum((x.astype(bf) ** 2).astype(jnp.float32)),
      "log-sum-exp in float16": lambda x: jax.nn.logsumexp(x.astype(jnp.float16)).astype(
          jnp.float32),
      "inside a scan": lambda x: jax.lax.scan(
          lambda c, r: (c + jnp.sum((r.astype(bf) * 2).astype(jnp.float32)), None), 0.0, x)[0],
  }
  for what, f in planted.items():
    assert low_precision_ops(jax.make_jaxpr(f)(x).jaxpr), what


TINY = dict(num_samples=16, target_samples=4, hidden_sizes=(16, 16), batch_size=4,
            total_steps=100)


@pytest.mark.parametrize("env", ["idp", "hopper"])
def test_only_the_products_are_narrow_in_the_whole_step(env):
  """The training step (online plan, target plans, updates) with bfloat16:
  every network product inside the planners is bfloat16 with float32
  accumulation; nothing else computes below float32. With float32, no
  narrow product at all."""
  counts = {}
  for dtype in ("float32", "bfloat16"):
    config = sj.preset(env, compute_dtype=dtype, **TINY)
    state = jax.eval_shape(lambda k: sj.init(config, k), jax.random.PRNGKey(0))
    jaxpr = jax.make_jaxpr(sj.train_step)(state, jax.random.PRNGKey(1)).jaxpr
    assert low_precision_ops(jaxpr) == [], dtype
    counts[dtype] = mixed_products(jaxpr)
  assert counts["float32"] == 0
  # Online and target planner: one dynamics pass (the body of the scan over
  # the horizon) and one Q pass each, three layers per pass.
  assert counts["bfloat16"] == 2 * 2 * 3, counts


def test_planner_outputs_are_float32():
  config = sj.preset("hopper", compute_dtype="bfloat16", **TINY)
  state = jax.eval_shape(lambda k: sj.init(config, k), jax.random.PRNGKey(0))
  result = jax.eval_shape(lambda s: train.plan(s, jax.random.PRNGKey(1), s.env_state.obs, s.plan,
                                               s.q_params, num_samples=16), state)
  for leaf in result:
    assert leaf.dtype == jnp.float32


def test_invalid_compute_dtype_is_refused_by_name():
  with pytest.raises(ValueError, match=r"compute_dtype='float16' is invalid; allowed: "
                                       r"float32, bfloat16"):
    sj.preset("idp", compute_dtype="float16")


# The LQ case: tests/lib/test_mppi.py's system, its dynamics and terminal Q
# computed by Dense layers whose products take `compute_dtype`.

def lq_model(compute_dtype):
  obs, act = lq.A.shape[0], lq.B.shape[1]
  dyn = networks.dense(obs, obs + act, compute_dtype=compute_dtype)
  dyn_params = {"params": {"kernel": jnp.concatenate([lq.A.T, lq.B.T]), "bias": jnp.zeros(obs)}}
  root = networks.dense(obs, obs, compute_dtype=compute_dtype)
  root_params = {"params": {"kernel": jnp.sqrt(lq.PT), "bias": jnp.zeros(obs)}}  # PT diagonal
  base = lq.linear_model()
  return planner.Model(
      dynamics=lambda k, s, a: dyn.apply(dyn_params, jnp.concatenate([s, a], -1)),
      reward=base.reward, termination=base.termination,
      terminal_value=lambda s, a: -(jnp.sum(root.apply(root_params, s) ** 2, -1)
                                    + lq.R * jnp.sum(a ** 2, -1)))


def test_lq_closed_form_in_bfloat16():
  value_star, mean_star = lq.closed_form()
  plan0 = jnp.array([[0.3], [-0.2], [0.1]])
  keys = jax.random.split(jax.random.PRNGKey(0), 8)
  results = {}
  for dtype in ("float32", "bfloat16"):
    results[dtype] = jax.jit(jax.vmap(lambda k: planner.mppi(
        k, lq.S0, plan0, lq_model(dtype), num_samples=65536, iterations=3,
        temperature=lq.LAM, noise_var=lq.VAR, gamma=1.0)))(keys)
  f32, bf16 = results["float32"], results["bfloat16"]
  # float32 Dense layers are the linear model itself.
  np.testing.assert_allclose(f32.value, jax.jit(jax.vmap(lambda k: planner.mppi(
      k, lq.S0, plan0, lq.linear_model(), num_samples=65536, iterations=3,
      temperature=lq.LAM, noise_var=lq.VAR, gamma=1.0)))(keys).value, rtol=1e-5)
  # bfloat16 products: different numbers (so bfloat16 is used) ...
  assert np.max(np.abs(bf16.value - f32.value)) > 0
  # ... within 1% of the float32 planner's value, sample for sample, and as
  # close to the closed form (bfloat16 keeps 8 significant bits: 0.4%
  # relative rounding per product).
  np.testing.assert_allclose(bf16.value, f32.value, rtol=1e-2)
  np.testing.assert_allclose(np.mean(bf16.value), value_star, rtol=2e-2)
  np.testing.assert_allclose(np.mean(f32.value), value_star, rtol=2e-2)
  np.testing.assert_allclose(np.mean(bf16.plan[:, :, 0], 0), mean_star, atol=0.03)
  np.testing.assert_allclose(bf16.plan, f32.plan, atol=0.03)


def test_round_to_bfloat16_is_astype_bit_for_bit():
  f32 = np.float32
  special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 3.4028235e38, -3.4028235e38,
                      1e-40, -1e-40, 1.1754944e-38, 1.00390625, 1.01171875, 1.0078125,
                      1.0117188, 65504.0, 2.0 ** -133], f32)  # ties, subnormals, overflow
  x = np.concatenate([special, np.asarray(jax.random.normal(jax.random.PRNGKey(0), (200_000,)))
                      * np.logspace(-30, 30, 200_000, dtype=f32)]).astype(f32)
  got = np.asarray(jax.jit(networks.round_to_bfloat16)(x)).view(np.uint16)
  want = np.asarray(jnp.asarray(x).astype(jnp.bfloat16)).view(np.uint16)
  nan = np.isnan(x)
  np.testing.assert_array_equal(got[~nan], want[~nan])
  assert np.all(np.isnan(np.asarray(jax.jit(networks.round_to_bfloat16)(x))[nan]))


def test_silu_via_tanh_is_silu():
  x = jnp.linspace(-30.0, 30.0, 100_001)
  np.testing.assert_allclose(networks.silu_via_tanh(x), jax.nn.silu(x), rtol=1e-6, atol=3e-6)


def _fit(loss, params, batches, steps=300, learning_rate=3e-3):
  optimiser = optax.adam(learning_rate)

  def step(carry, batch):
    params, opt = carry
    value, grad = jax.value_and_grad(loss)(params, *batch)
    updates, opt = optimiser.update(grad, opt, params)
    return (optax.apply_updates(params, updates), opt), value

  (params, _), values = jax.lax.scan(step, (params, optimiser.init(params)), batches)
  return params, values


@pytest.fixture(scope="module")
def trained_pendulum():
  """The idp preset's networks, fitted: the ensemble to the pendulum's
  physics (transitions of random actions from reset states), the Q-network
  to its rewards; and the states the planner is compared at."""
  config = sj.preset("idp")
  state = jax.jit(lambda k: sj.init(config, k))(jax.random.PRNGKey(0))
  p = train.parts(config)
  env = p.environment

  def rollout(key):  # 20 random steps from a reset: [20, ...] transitions
    def step(s, k):
      a = jax.random.uniform(k, (env.action_size,), minval=env.action_low,
                             maxval=env.action_high)
      nxt = env.env.step(s, a)
      return nxt, (s.obs, a, nxt.reward, nxt.obs)
    return jax.lax.scan(step, env.env.reset(key), jax.random.split(key, 20))[1]

  obs, act, rew, nxt = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), jax.jit(
      jax.vmap(rollout))(jax.random.split(jax.random.PRNGKey(1), 64)))  # [1280, ...]
  e, steps, b = config.ensemble_size, 300, 64
  idx = jax.random.randint(jax.random.PRNGKey(2), (steps, e, b), 0, obs.shape[0])
  dyn_params, dyn_loss = jax.jit(lambda params: _fit(
      lambda prm, o, a, n: losses.dynamics_loss(p.ensemble.delta, prm, state.scales, o, a, n)[0],
      params, (obs[idx], act[idx], nxt[idx]), steps))(state.dyn_params)
  q_params, q_loss = jax.jit(lambda params: _fit(
      lambda prm, o, a, y: losses.q_loss(p.q.apply, prm, o, a, y)[0],
      params, (obs[idx[:, 0]], act[idx[:, 0]], rew[idx[:, 0]]), steps))(state.q_params)
  assert dyn_loss[-10:].mean() < 0.3 * dyn_loss[:10].mean()  # they did learn
  assert q_loss[-10:].mean() < 0.3 * q_loss[:10].mean()
  return state.replace(dyn_params=dyn_params, q_params=q_params), obs[::80]  # 16 states


@pytest.mark.slow  # fitting the preset's networks: about 50 s of a cold make test
def test_trained_networks_plan_alike_in_bfloat16(trained_pendulum):
  """The online planner of the idp preset (N = 200, H = 4) at 16 states.
  With the same keys, bfloat16 products move the soft value by under 0.5%
  (it is ~48 here), and both the value and the refined plan by under a tenth
  of what the planner's own sampling moves them (float32 with other keys).
  Measured when written: rms 0.032 against 1.9 (value), 0.024 against 0.43
  (plan); the weights are peaked (effective sample sizes 1-5), so a plan
  is sensitive to every cost."""
  trained, states = trained_pendulum
  results = {}
  for dtype, seed in (("float32", 3), ("bfloat16", 3), ("float32", 4)):
    state = trained.replace(config=trained.config.replace(compute_dtype=dtype))
    results[dtype, seed] = jax.jit(jax.vmap(lambda k, s: train.plan(
        state, k, s, state.plan, state.q_params, num_samples=state.config.num_samples)))(
            jax.random.split(jax.random.PRNGKey(seed), states.shape[0]), states)
  f32, bf16, other_keys = results["float32", 3], results["bfloat16", 3], results["float32", 4]
  rms = lambda x: float(np.sqrt(np.mean(np.square(x))))
  assert np.max(np.abs(bf16.value - f32.value)) > 0  # bfloat16 is used
  np.testing.assert_allclose(bf16.value, f32.value, rtol=5e-3)
  for field in ("value", "plan"):
    mixed = rms(getattr(bf16, field) - getattr(f32, field))
    sampling = rms(getattr(other_keys, field) - getattr(f32, field))
    assert mixed < 0.1 * sampling, (field, mixed, sampling)
