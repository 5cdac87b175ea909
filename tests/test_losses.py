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
  q = networks.make_q(3, 1, (8,))
  params = q.init(jax.random.PRNGKey(0))
  s, a = jnp.ones((5, 3)), jnp.zeros((5, 1))
  y = jnp.arange(5.0)
  loss, pred = losses.q_loss(q.apply, params, s, a, y)
  np.testing.assert_allclose(loss, np.mean((np.asarray(pred) - np.arange(5.0)) ** 2), rtol=1e-6)


def test_dynamics_loss_is_per_member_next_step_mse():
  ens = networks.make_ensemble(2, 1, (8,), 3)
  params = ens.init(jax.random.PRNGKey(0))
  s = jax.random.normal(jax.random.PRNGKey(1), (3, 4, 2))
  a = jax.random.normal(jax.random.PRNGKey(2), (3, 4, 1))
  # next_obs chosen so member 0 is exact: its loss is zero, its gradient too.
  exact = s + jax.vmap(ens.delta)(params, s, a)
  s_next = exact.at[1:].add(1.0)
  total, per_member = losses.dynamics_loss(ens.delta, params, s, a, s_next)
  np.testing.assert_allclose(per_member[0], 0.0, atol=1e-10)
  assert np.all(per_member[1:] > 0.5)
  np.testing.assert_allclose(total, jnp.sum(per_member), rtol=1e-6)
  grads = jax.grad(lambda p: losses.dynamics_loss(ens.delta, p, s, a, s_next)[0])(params)
  assert all(float(jnp.max(jnp.abs(g[0]))) < 1e-6 for g in jax.tree.leaves(grads))


def test_ensemble_groups_rows_equally_with_fresh_assignment():
  """Member m adds m to every coordinate: each call sends N/E rows to each
  member, and different keys assign different rows."""
  e, n = 4, 40
  ens = networks.make_ensemble(1, 1, (4,), e)
  params = ens.init(jax.random.PRNGKey(0))
  zero = jax.tree.map(jnp.zeros_like, params)
  last_bias = sorted(params["params"].keys())[-1]
  zero["params"][last_bias]["bias"] = jnp.arange(e, dtype=jnp.float32)[:, None]
  s, a = jnp.zeros((n, 1)), jnp.zeros((n, 1))
  out1 = ens.predict(zero, jax.random.PRNGKey(1), s, a)[:, 0]
  out2 = ens.predict(zero, jax.random.PRNGKey(2), s, a)[:, 0]
  np.testing.assert_array_equal(np.bincount(np.asarray(out1, int)), [n // e] * e)
  assert not np.array_equal(out1, out2)


def test_ensemble_predict_returns_each_row_its_own_prediction():
  """With identical members, grouping must not shuffle rows: s' = s + f(s, a)."""
  ens = networks.make_ensemble(3, 2, (16,), 4)
  one = jax.tree.map(lambda x: x[0], ens.init(jax.random.PRNGKey(0)))
  same = jax.tree.map(lambda x: jnp.stack([x] * 4), one)
  s = jax.random.normal(jax.random.PRNGKey(1), (12, 3))
  a = jax.random.normal(jax.random.PRNGKey(2), (12, 2))
  out = ens.predict(same, jax.random.PRNGKey(3), s, a)
  np.testing.assert_allclose(out, s + ens.delta(one, s, a), rtol=1e-5, atol=1e-6)
