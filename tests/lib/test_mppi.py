"""The planner against closed forms (Algorithm 1, eq. 6)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smpc_jax import planner
from smpc_jax.planner import Model

jax.config.update("jax_enable_x64", False)

# A linear system with quadratic reward: s' = A s + B a, r = -(s'Qs + R a^2),
# terminal Q(s, a) = -(s'Ps + R a^2).
A = jnp.array([[1.0, 0.2], [0.0, 0.9]])
B = jnp.array([[0.0], [0.3]])
QC = jnp.diag(jnp.array([1.0, 0.5]))
PT = jnp.diag(jnp.array([2.0, 1.0]))
R = 0.4
S0 = jnp.array([0.8, -0.5])
LAM, VAR, H = 0.5, 0.3, 2


def linear_model():
  return Model(
      dynamics=lambda k, s, a: s @ A.T + a @ B.T,
      reward=lambda s, a, s2: -(s @ QC @ s + R * jnp.sum(a**2)),
      termination=lambda s, a, s2: jnp.zeros(()),
      terminal_value=lambda s, a: -(jnp.einsum("ni,ij,nj->n", s, PT, s) + R * jnp.sum(a**2, -1)),
  )


def closed_form():
  """Free energy and optimal mean under the prior N(0, VAR I) with gamma = 1.

  J(alpha) = alpha'M alpha + 2 b'alpha + c (cost) is built by a plain loop;
  with P = Sigma^-1 + 2M/lam and h = 2b/lam:
  F = (lam/2) log det(Sigma P) - (lam/2) h'P^-1 h + c, E*[alpha] = -P^-1 h.
  """
  def cost(alpha):  # alpha [H+1]
    s, total = S0, 0.0
    for t in range(H):
      a = alpha[t:t + 1]
      total += s @ QC @ s + R * a @ a
      s = A @ s + B @ a
    return total + s @ PT @ s + R * alpha[H] ** 2

  z = jnp.zeros(H + 1)
  m = 0.5 * jax.hessian(cost)(z)
  b = 0.5 * jax.grad(cost)(z)
  c = cost(z)
  p = jnp.eye(H + 1) / VAR + 2 * m / LAM
  h = 2 * b / LAM
  free_energy = 0.5 * LAM * jnp.linalg.slogdet(VAR * p)[1] - 0.5 * LAM * h @ jnp.linalg.solve(p, h) + c
  return -free_energy, -jnp.linalg.solve(p, h)  # reward units, optimal mean


@pytest.mark.parametrize("iterations", [1, 3])
def test_gaussian_prior_converges_to_closed_form(iterations):
  value_star, mean_star = closed_form()
  plan0 = jnp.array([[0.3], [-0.2], [0.1]])

  def run(n, keys):
    f = jax.jit(jax.vmap(lambda k: planner.mppi(
        k, S0, plan0, linear_model(), num_samples=n, iterations=iterations,
        temperature=LAM, noise_var=VAR, gamma=1.0)))
    return f(keys)

  keys = jax.random.split(jax.random.PRNGKey(0), 16)
  rms = []
  for n in (64, 1024, 65536):
    res = run(n, keys)
    v_err = jnp.sqrt(jnp.mean((res.value - value_star) ** 2))
    a_err = jnp.sqrt(jnp.mean((res.plan[:, 0, 0] - mean_star[0]) ** 2))
    rms.append((float(v_err), float(a_err)))
  # Errors shrink as samples grow, and the largest N is close.
  assert rms[2][0] < rms[1][0] < rms[0][0], rms
  assert rms[2][1] < rms[1][1] < rms[0][1], rms
  assert rms[2][0] < 0.01 * max(1.0, abs(float(value_star))), (rms, value_star)
  assert rms[2][1] < 0.01, (rms, mean_star)
  # After iterations the whole plan is at the optimal mean.
  np.testing.assert_allclose(np.mean(res.plan[:, :, 0], 0), mean_star, atol=0.01)


def test_gaussian_value_is_wrong_without_correction_terms():
  """Guards the prior terms: a planner that sampled around u and dropped
  them would report the free energy of N(u, Sigma), not N(0, Sigma)."""
  value_star, _ = closed_form()
  plan0 = jnp.array([[1.0], [-1.0], [1.0]])
  res = jax.jit(jax.vmap(lambda k: planner.mppi(
      k, S0, plan0, linear_model(), num_samples=65536, temperature=LAM,
      noise_var=VAR, gamma=1.0)))(jax.random.split(jax.random.PRNGKey(1), 4))
  np.testing.assert_allclose(np.mean(res.value), value_star, rtol=0.01)


def _zero_model():
  return Model(lambda k, s, a: s, lambda s, a, s2: jnp.zeros(()),
               lambda s, a, s2: jnp.zeros(()), lambda s, a: jnp.zeros(s.shape[0]))


@pytest.mark.parametrize("gamma", [1.0, 0.9, 0.5])
def test_gaussian_prior_terms_are_discounted(gamma):
  """Zero reward, plan u != 0. Cost_n = (lam/var) sum_t g^t u.eps_t, so as
  N grows V -> -(lam/2var)|u|^2 sum_t (g^t - g^2t): zero iff gamma = 1."""
  u = jnp.array([[0.5], [-0.7], [0.3]])
  res = jax.jit(jax.vmap(lambda k: planner.mppi(
      k, S0, u, _zero_model(), num_samples=65536, temperature=LAM, noise_var=VAR,
      gamma=gamma)))(jax.random.split(jax.random.PRNGKey(2), 4))
  t = np.arange(3)
  expected = -(LAM / (2 * VAR)) * float(np.sum(np.asarray(u[:, 0]) ** 2 * (gamma**t - gamma**(2 * t))))
  np.testing.assert_allclose(np.mean(res.value), expected, atol=2e-3)


def test_uniform_prior_matches_quadrature():
  """H = 0, one action in [-1, 1], terminal Q(a) = -k (a - c)^2: V is
  lam * log((1/2) int exp(-k (a - c)^2 / lam) da) and the optimal mean is
  that of the truncated density; both by quadrature. The tolerance is a
  fifth of the distance to what a missing or sign-flipped importance
  correction would give (the sampler's density q(a) times, or squared
  times, the right one): mean 0.648 or 0.607 for 0.691, V -0.499 or -0.583
  for -0.400. Planted bugs seen to fail it: `correction` dropped; its sign
  flipped."""
  k, c, lam, var, u = 2.0, 0.8, 0.3, 0.4, 0.2
  tol = 3e-3
  model = Model(lambda key, s, a: s, lambda s, a, s2: jnp.zeros(()),
                lambda s, a, s2: jnp.zeros(()),
                lambda s, a: -k * (a[:, 0] - c) ** 2)
  grid = np.linspace(-1, 1, 2_000_001)
  dens = np.exp(-k * (grid - c) ** 2 / lam)
  value_star = lam * math.log(np.trapezoid(dens, grid) / 2.0)
  mean_star = np.trapezoid(grid * dens, grid) / np.trapezoid(dens, grid)
  q = np.exp(-(grid - u) ** 2 / (2 * var)) / math.sqrt(2 * math.pi * var)
  log_constant = -0.5 * math.log(2 * math.pi * var) + math.log(2.0)
  for power in (1, 2):  # correction missing, sign-flipped
    wrong = dens * q**power
    wrong_mean = np.trapezoid(grid * wrong, grid) / np.trapezoid(wrong, grid)
    # V = lam log E_q[1_box exp(-cost / lam)] - constant, where the wrong
    # exp(-cost / lam) is exp(Q / lam) (q(a) sqrt(2 pi var))^(power - 1).
    wrong_value = lam * math.log(np.trapezoid(wrong * math.sqrt(2 * math.pi * var) ** (power - 1),
                                              grid)) - lam * log_constant
    assert abs(wrong_mean - mean_star) > 5 * tol and abs(wrong_value - value_star) > 5 * tol
  res = jax.jit(jax.vmap(lambda key: planner.mppi(
      key, jnp.zeros(1), jnp.array([[u]]), model, num_samples=65536,
      temperature=lam, noise_var=var, gamma=0.99, prior="uniform",
      action_low=-1.0, action_high=1.0)))(jax.random.split(jax.random.PRNGKey(3), 8))
  np.testing.assert_allclose(np.mean(res.value), value_star, atol=tol)
  np.testing.assert_allclose(np.mean(res.plan[:, 0, 0]), mean_star, atol=tol)
  assert np.all(np.abs(res.action) <= 1.0)


def test_termination_stops_reward_and_terminal_value():
  """Reward 1 per step, terminal Q = 100, termination on the first step
  when a_0 > 0: such samples return exactly 1, the others sum_t g^t + g^H 100."""
  g = 0.9
  model = Model(lambda key, s, a: s + a[:, :1],
                lambda s, a, s2: jnp.ones(()),
                lambda s, a, s2: (s2[0] > s[0]).astype(jnp.float32),
                lambda s, a: jnp.full(s.shape[0], 100.0))
  actions = jnp.array([[[1.0], [0.0], [0.0]], [[-1.0], [0.0], [0.0]]])
  ret = planner.rollout_returns(jax.random.PRNGKey(0), model, jnp.zeros(1), actions, g)
  np.testing.assert_allclose(ret, [1.0, 1.0 + g + g**2 * 100.0], rtol=1e-6)


def test_horizon_zero_is_soft_q_maximisation():
  model = Model(lambda k, s, a: s, lambda s, a, s2: jnp.zeros(()),
                lambda s, a, s2: jnp.zeros(()), lambda s, a: -(a[:, 0] - 0.5) ** 2)
  res = planner.mppi(jax.random.PRNGKey(0), jnp.zeros(2), jnp.zeros((1, 1)), model,
                  num_samples=4096, iterations=5, temperature=0.01, noise_var=0.1, gamma=0.99)
  assert res.plan.shape == (1, 1)
  np.testing.assert_allclose(res.action, [0.5], atol=0.03)


def test_shift_appends_zero():
  plan = jnp.arange(6.0).reshape(3, 2)
  np.testing.assert_array_equal(planner.shift(plan), [[2, 3], [4, 5], [0, 0]])


def test_effective_sample_size():
  """Equal costs (zero model, zero plan, so no prior term): all N weights are
  1/N and the ESS is N. A terminal Q that singles out the sample nearest to
  0.5 at a tiny temperature gives one dominant weight: ESS near 1."""
  n = 64
  flat = planner.mppi(jax.random.PRNGKey(0), jnp.zeros(2), jnp.zeros((1, 1)), _zero_model(),
                      num_samples=n, temperature=0.1, noise_var=0.1, gamma=0.99)
  np.testing.assert_allclose(flat.ess, n, rtol=1e-5)
  peaked = Model(lambda k, s, a: s, lambda s, a, s2: jnp.zeros(()),
                 lambda s, a, s2: jnp.zeros(()), lambda s, a: -100.0 * (a[:, 0] - 0.5) ** 2)
  sharp = planner.mppi(jax.random.PRNGKey(0), jnp.zeros(2), jnp.zeros((1, 1)), peaked,
                       num_samples=n, temperature=1e-3, noise_var=0.1, gamma=0.99)
  assert 1.0 <= float(sharp.ess) < 1.5, float(sharp.ess)


@pytest.mark.parametrize("prior", ["gaussian", "uniform"])
def test_sum_normaliser_raises_the_value_by_lambda_log_n(prior):
  """normaliser='sum' (the authors' Fig. 3 code, log sum_n instead of log
  mean_n in eq. (6)): the same plan, and the value higher by exactly
  lambda * log N; an unknown name is refused.

  Planted bug seen to fail it: the normaliser ignored."""
  n = 50
  kwargs = dict(num_samples=n, temperature=LAM, noise_var=VAR, gamma=0.9, prior=prior,
                action_low=-1.0, action_high=1.0)
  plan0, key = 0.1 * jnp.ones((H + 1, 1)), jax.random.PRNGKey(3)
  mean = planner.mppi(key, S0, plan0, linear_model(), **kwargs)
  total = planner.mppi(key, S0, plan0, linear_model(), normaliser="sum", **kwargs)
  np.testing.assert_array_equal(total.plan, mean.plan)
  np.testing.assert_allclose(total.value - mean.value, LAM * math.log(n), rtol=1e-5)
  with pytest.raises(ValueError, match="^normaliser='max' is invalid; allowed: mean, sum"):
    planner.mppi(key, S0, plan0, linear_model(), normaliser="max", **kwargs)
