"""brax's tasks (idp_brax, hopper_brax): known reward and termination equal
the environment's own. The paper's tasks are checked against Gymnasium in
tests/lib/test_parity.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from smpc_jax import envs


def _random_rollout(environment, key, steps):
  env = environment.env

  def body(state, k):
    k_a, k_r = jax.random.split(k)
    a = jax.random.uniform(k_a, (environment.action_size,), minval=-1.0, maxval=1.0)
    nxt = env.step(state, a)
    out = (state.obs, a, nxt.obs, nxt.reward, nxt.done)
    reset = env.reset(k_r)
    state = jax.tree.map(lambda x, y: jnp.where(nxt.done > 0, x, y), reset, nxt)
    return state, out

  state = env.reset(key)
  return jax.lax.scan(body, state, jax.random.split(key, steps))[1]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in ("idp_brax", "hopper_brax")])  # brax's legacy tasks: `make test-slow`
def test_known_reward_and_termination_match_env(name):
  environment = envs.make(name)
  s, a, s2, r, done = jax.jit(_random_rollout, static_argnums=(0, 2))(
      environment, jax.random.PRNGKey(0), 400)
  r_hat = jax.vmap(environment.reward_fn)(s, a, s2)
  d_hat = jax.vmap(environment.termination_fn)(s, a, s2)
  np.testing.assert_array_equal(d_hat, done)
  assert 0 < np.sum(done) < len(done), "the rollout should see terminations and not only"
  # The observation clips velocities at 10; the env rewards use unclipped ones.
  if name == "idp_brax":
    ok = np.all(np.abs(np.asarray(s2[:, 5:])) < 10.0, axis=1)
  else:
    ok = np.ones(len(r), bool)
  assert ok.mean() > 0.9
  # Hopper: the rebuilt torso x is exact for a pure Euler step; contact
  # substeps leave differences of about 1e-3 on a few steps (of rewards ~1).
  atol = 1e-3 if name == "idp_brax" else 3e-3
  np.testing.assert_allclose(np.asarray(r_hat)[ok], np.asarray(r)[ok], rtol=1e-4, atol=atol)


def test_observations_include_what_the_rewards_need():
  assert envs.make("idp").obs_size == 9  # Gymnasium v5's order
  assert envs.make("hopper").obs_size == 12  # x kept
  assert envs.make("idp").env.dt == pytest.approx(0.05)  # 5 x 0.01 s, as the paper
  assert envs.make("hopper").env.dt == pytest.approx(0.008)
  assert envs.make("walker").obs_size == 18  # x kept, as hopper's
  assert envs.make("walker").action_size == 6
  assert envs.make("walker").env.dt == pytest.approx(0.008)  # 4 x 0.002 s, as Gymnasium
  with pytest.raises(ValueError, match="env='cartpole' is not known; allowed: idp, hopper, walker"):
    envs.make("cartpole")


@pytest.mark.slow  # brax's legacy tasks: `make test-slow` (building them took ~30 s)
def test_brax_observations_include_what_the_rewards_need():
  assert envs.make("idp_brax").obs_size == 8
  assert envs.make("hopper_brax").obs_size == 12  # x kept


# the suite ran 15m07s on a clean clone; the parity tests, which stay, include
# rail-end states. `make test-slow` runs this.
@pytest.mark.slow
def test_capped_idp_solver_gives_the_default_solvers_states():
  """The idp env caps MuJoCo's solver iterations (the rail limit is one
  constraint); on rollouts that push the cart into both rail ends, the states
  equal those of MuJoCo's defaults (100 iterations, 50 line-search steps)."""
  from brax import envs as brax_envs
  capped = envs.make("idp_brax").env
  default = brax_envs.get_environment("inverted_double_pendulum", backend="mjx")
  assert int(capped.sys.opt.iterations) < int(default.sys.opt.iterations)
  key = jax.random.PRNGKey(0)
  # Random walks of the force, clipped: the cart slams into the rail ends.
  actions = jnp.clip(jnp.cumsum(0.3 * jax.random.normal(key, (4, 150, 1)), 1), -1, 1)

  def rollout(env, acts, k):
    step = lambda s, a: (env.step(s, a),) * 2
    return jax.lax.scan(step, env.reset(k), acts)[1].obs

  keys = jax.random.split(key, 4)
  run = lambda env: jax.jit(jax.vmap(lambda a, k: rollout(env, a, k)))(actions, keys)
  obs_capped, obs_default = run(capped), run(default)
  assert np.mean(np.abs(np.asarray(obs_default[..., 0])) > 0.98) > 0.2, "rail not reached"
  np.testing.assert_allclose(obs_capped, obs_default, atol=1e-4)


@pytest.mark.slow  # idp 38 s, hopper 57 s of a cold make test
@pytest.mark.parametrize("name", ["idp", "hopper"])
def test_reset_for_step_steps_as_reset_bit_for_bit(name):
  """The training step's auto-reset skips the reset's forward: same draw and
  observation as `reset`, and the step from it equals the step from `reset`
  in every leaf (the step's first forward recomputes what was skipped)."""
  env = envs.make(name).env
  keys = jax.random.split(jax.random.PRNGKey(3), 256)
  full, lazy = (jax.jit(jax.vmap(f))(keys) for f in (env.reset, env.reset_for_step))
  np.testing.assert_array_equal(lazy.obs, full.obs)
  np.testing.assert_array_equal(lazy.pipeline_state.qpos, full.pipeline_state.qpos)
  np.testing.assert_array_equal(lazy.pipeline_state.qvel, full.pipeline_state.qvel)
  a = jax.random.uniform(jax.random.PRNGKey(4), (256, env.action_size), minval=-1, maxval=1)
  step = jax.jit(jax.vmap(env.step))
  for x, y in zip(jax.tree.leaves(step(lazy, a)), jax.tree.leaves(step(full, a))):
    np.testing.assert_array_equal(x, y)
