import jax
import jax.numpy as jnp
import numpy as np

from smpc_jax import losses, networks


def test_soft_bellman_target_and_truncation():
  r = jnp.array([1.0, 2.0, 3.0])
  term = jnp.array([0.0, 1.0, 0.0])  # the third is a truncation: not terminated
  v = jnp.array([10.0, 20.0, 30.0])
  y = losses.soft_bellman_target(r, term, v, 0.9)
  np.testing.assert_allclose(y, [1 + 9.0, 2.0, 3 + 27.0], rtol=1e-6)
  # The target is held fixed: no gradient flows into V.
  g = jax.grad(lambda v: jnp.sum(losses.soft_bellman_target(r, term, v, 0.9)))(v)
  np.testing.assert_array_equal(g, 0.0)


def test_q_loss_is_mse_to_target():
  """Against the network written out in numpy: Q = W1 silu(W0 [s, a] + b0) + b1,
  loss = mean((Q - y)^2). Not against q_loss's own prediction. Planted bug
  seen to fail it (and pass the old check): Q's input as [a, s], not [s, a]."""
  q = networks.make_q(3, 1, (8,))
  params = q.init(jax.random.PRNGKey(0))
  s = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 3)))
  a = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (5, 1)))
  y = np.arange(5.0)
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), params["params"])
  x = np.concatenate([s, a], axis=1) @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
  hidden = x / (1.0 + np.exp(-x))  # silu
  q_np = (hidden @ p["Dense_1"]["kernel"] + p["Dense_1"]["bias"])[:, 0]
  loss, pred = losses.q_loss(q.apply, params, jnp.asarray(s), jnp.asarray(a), jnp.asarray(y))
  np.testing.assert_allclose(pred, q_np, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(loss, np.mean((q_np - y) ** 2), rtol=1e-5)


def _scales(key, size):
  """Running statistics of 50 random observations and changes."""
  k1, k2 = jax.random.split(key)
  obs = 3.0 + 2.0 * jax.random.normal(k1, (50, size))
  delta = 0.1 * jax.random.normal(k2, (50, size)) - 0.5
  scales = networks.scales_init(size)
  for o, d in zip(obs, delta):
    scales = networks.scales_update(scales, o, o + d)
  return scales, obs, delta


def test_running_stats_match_numpy():
  scales, obs, delta = _scales(jax.random.PRNGKey(0), 3)
  np.testing.assert_allclose(scales.obs.mean, np.mean(obs, 0), rtol=1e-5)
  np.testing.assert_allclose(scales.obs.std, np.std(obs, 0), rtol=1e-4)
  np.testing.assert_allclose(scales.delta.mean, np.mean(delta, 0), rtol=1e-5)
  np.testing.assert_allclose(scales.delta.std, np.std(delta, 0), rtol=1e-4)
  # Standardised, and clipped at 10 std.
  z = scales.obs.normalise(scales.obs.mean + jnp.array([1.0, -2.0, 100.0]) * scales.obs.std)
  np.testing.assert_allclose(z, [1.0, -2.0, 10.0], rtol=1e-5)
  # Nothing seen yet: finite, unit-free defaults.
  empty = networks.scales_init(3)
  assert np.all(np.isfinite(empty.obs.normalise(jnp.ones(3))))


def test_dynamics_loss_is_per_member_next_step_mse():
  ens = networks.make_ensemble(2, 1, (8,), 3)
  params = ens.init(jax.random.PRNGKey(0))
  scales, _, _ = _scales(jax.random.PRNGKey(3), 2)
  s = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 2))
  a = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 1))
  # next_obs chosen so member 0 is exact: its loss is zero, its gradient too.
  pred = jax.vmap(ens.delta, (0, None, 0, 0))(params, scales, s, a)
  exact = s + scales.delta.mean + scales.delta.std * pred
  s_next = exact.at[1:].add(scales.delta.std)  # one std off in every coordinate
  total, per_member = losses.dynamics_loss(ens.delta, params, scales, s, a, s_next)
  np.testing.assert_allclose(per_member[0], 0.0, atol=1e-8)
  np.testing.assert_allclose(per_member[1:], 1.0, rtol=1e-3)  # standardised units
  np.testing.assert_allclose(total, jnp.sum(per_member), rtol=1e-6)
  grads = jax.grad(lambda p: losses.dynamics_loss(ens.delta, p, scales, s, a, s_next)[0])(params)
  assert all(float(jnp.max(jnp.abs(g[0]))) < 1e-5 for g in jax.tree.leaves(grads))


def test_ensemble_groups_rows_equally_with_fresh_assignment():
  """Member m adds m to every coordinate: each call sends N/E rows to each
  member, and over calls every row's member is uniform on the E members."""
  e, n = 4, 40
  ens = networks.make_ensemble(1, 1, (4,), e)
  params = ens.init(jax.random.PRNGKey(0))
  zero = jax.tree.map(jnp.zeros_like, params)
  last_bias = sorted(params["params"].keys())[-1]
  zero["params"][last_bias]["bias"] = jnp.arange(e, dtype=jnp.float32)[:, None]
  s, a = jnp.zeros((n, 1)), jnp.zeros((n, 1))
  unit = networks.scales_init(1)._replace(delta=networks.RunningStats(
      jnp.ones(()), jnp.zeros(1), jnp.ones(1)))  # mean 0, std 1: raw outputs
  keys = jax.random.split(jax.random.PRNGKey(1), 400)
  members = np.asarray(jax.vmap(lambda k: ens.predict(zero, unit, k, s, a))(keys)[..., 0], int)
  for row in members:  # [N] per call: N/E rows per member
    np.testing.assert_array_equal(np.bincount(row, minlength=e), [n // e] * e)
  counts = np.stack([np.bincount(members[:, i], minlength=e) for i in range(n)])  # [N, E]
  # 400 draws per row: each member's share is 1/4 within +-0.1 (about 4.6 sigma).
  np.testing.assert_allclose(counts / len(keys), 1.0 / e, atol=0.1)


def test_ensemble_predict_returns_each_row_its_own_prediction():
  """With identical members, grouping must not shuffle rows: s' = s + f(s, a)."""
  ens = networks.make_ensemble(3, 2, (16,), 4)
  one = jax.tree.map(lambda x: x[0], ens.init(jax.random.PRNGKey(0)))
  same = jax.tree.map(lambda x: jnp.stack([x] * 4), one)
  scales, _, _ = _scales(jax.random.PRNGKey(4), 3)
  s = jax.random.normal(jax.random.PRNGKey(1), (12, 3))
  a = jax.random.normal(jax.random.PRNGKey(2), (12, 2))
  out = ens.predict(same, scales, jax.random.PRNGKey(3), s, a)
  expected = s + scales.delta.mean + scales.delta.std * ens.delta(one, scales, s, a)
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
