"""A task of the user's own, through the registry: `envs.register(name, make)`
makes `Config(env=name)` valid and trainable with the public API; MuJoCo
Playground envs plug in through `envs.playground.adapt`.

The registry is process-wide; every test here registers through the
`registered` fixture, which removes its names again, so the exact
"allowed: ..." messages other test files check stay as they are."""

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import smpc_jax as sj
from smpc_jax import envs
from smpc_jax.envs import playground

# A 1-D point mass on a rail, pushed by a motor: the user's task.
SLIDER_XML = """
<mujoco model="slider">
  <option timestep="0.02"/>
  <worldbody>
    <body name="mass">
      <joint name="x" type="slide" axis="1 0 0" damping="0.5"/>
      <geom type="sphere" size="0.1" mass="1"/>
    </body>
  </worldbody>
  <actuator><motor joint="x" gear="2" ctrlrange="-1 1" ctrllimited="true"/></actuator>
</mujoco>
"""


def slider_reward(s, a, s_next):  # s = [x, x_dot]: stay at the origin, gently.
  del s
  return -jnp.square(s_next[0]) - 0.01 * jnp.sum(jnp.square(a))


def slider_termination(s, a, s_next):  # off the end of the rail
  del s, a
  return (jnp.abs(s_next[0]) > 2.0).astype(jnp.float32)


def make_slider(frame_skip):
  model = mujoco.MjModel.from_xml_string(SLIDER_XML)

  def reset(key):
    return jax.random.uniform(key, (1,), minval=-1.0, maxval=1.0), jnp.zeros(1)

  def obs(data):
    return jnp.concatenate([data.qpos, data.qvel])

  def env_reward(before, data, action):
    s, s_next = obs(before), obs(data)
    return slider_reward(s, action, s_next), slider_termination(s, action, s_next)

  task = envs.MjxTask(model, frame_skip or 2, reset, obs, env_reward)
  return envs.from_task("slider", task, slider_reward, slider_termination)


@pytest.fixture
def registered():
  """envs.register, for this test only: the registry is put back after it."""
  before = dict(envs._REGISTRY)
  yield envs.register
  envs._REGISTRY.clear()
  envs._REGISTRY.update(before)


def test_builtin_tasks_come_from_the_registry():
  assert envs.names() == ("idp", "hopper", "walker", "idp_brax", "hopper_brax", "hopper_gym")
  with pytest.raises(ValueError, match="env='hopper' is already registered"):
    envs.register("hopper", lambda frame_skip: None)
  with pytest.raises(ValueError, match="env='slider' is invalid; allowed: idp, hopper, walker"):
    sj.validate(sj.Config(env="slider"))


def test_registered_name_is_a_valid_config(registered):
  registered("slider", make_slider)
  assert "slider" in envs.names()
  assert sj.validate(sj.Config(env="slider")).env == "slider"
  # No preset of its own: Config's defaults, with the overrides.
  assert sj.preset("slider", total_steps=300) == sj.Config(env="slider", total_steps=300)
  environment = envs.make("slider")
  assert (environment.name, environment.obs_size, environment.action_size) == ("slider", 2, 1)
  assert environment.env.dt == pytest.approx(0.04)


def test_the_cache_answers_only_for_registered_names():
  """make() checks the registry before its cache: once the fixture has put
  the registry back, a name built earlier is refused again, as other test
  files (and their exact messages) expect."""
  before = dict(envs._REGISTRY)
  envs.register("slider", make_slider)
  assert envs.make("slider").name == "slider"
  envs._REGISTRY.clear()
  envs._REGISTRY.update(before)
  with pytest.raises(ValueError, match="env='slider' is not known"):
    envs.make("slider")


def test_make_that_returns_no_environment_is_a_clear_error(registered):
  registered("broken", lambda frame_skip: object())
  with pytest.raises(TypeError, match="env='broken': its make returned object, not an Environment"):
    envs.make("broken")


def test_user_task_trains_through_the_public_api(registered):
  """A few hundred steps of the user's task through sj.preset, sj.init and
  sj.run: every loss finite, every step counted, episodes ended."""
  registered("slider", make_slider)
  config = sj.preset("slider", total_steps=300, episode_length=50, num_samples=16,
                     target_samples=4, ensemble_size=2, hidden_sizes=(16, 16),
                     batch_size=8)
  state = jax.jit(sj.init, static_argnums=0)(config, jax.random.PRNGKey(0))
  state, metrics = jax.jit(sj.run, static_argnums=1)(state, config.total_steps)
  assert int(state.step) == 300
  assert np.all(np.isfinite(metrics["q_loss"])) and np.all(np.isfinite(metrics["dyn_loss"]))
  assert all(np.all(v) for v in jax.tree.leaves(metrics["finite"]))
  assert np.sum(metrics["done"]) >= 300 // 50  # truncations at least
  assert np.all(np.asarray(metrics["reward"]) <= 0.0)  # the user's reward, not another
  # The learned model's loss fell: it fitted the user's dynamics.
  dyn = np.asarray(metrics["dyn_loss"])
  assert dyn[-50:].mean() < dyn[10:60].mean()


# --- MuJoCo Playground ---------------------------------------------------------


class ToyMjxEnv:
  """Playground's `MjxEnv` interface, written here so the adapter is tested
  where Playground is not installed: the slider, with Playground's State
  (data, obs, reward, done, metrics, info) and a step counter in info."""

  def __init__(self):
    import flax.struct
    from mujoco import mjx

    @flax.struct.dataclass
    class State:
      data: object
      obs: jax.Array
      reward: jax.Array
      done: jax.Array
      metrics: dict
      info: dict

    self._State, self._mjx = State, mjx
    self.mj_model = mujoco.MjModel.from_xml_string(SLIDER_XML)
    self._model = mjx.put_model(self.mj_model)
    self.dt = 0.04

  observation_size, action_size = 2, 1

  def reset(self, rng):
    data = self._mjx.make_data(self.mj_model).replace(qpos=jnp.array([0.5]))
    data = self._mjx.forward(self._model, data)
    obs = jnp.concatenate([data.qpos, data.qvel])
    return self._State(data, obs, jnp.zeros(()), jnp.zeros(()), {"x": jnp.zeros(())},
                       {"rng": rng, "t": jnp.zeros((), jnp.int32)})

  def step(self, state, action):
    data = state.data.replace(ctrl=action)
    data = jax.lax.fori_loop(0, 2, lambda _, d: self._mjx.step(self._model, d), data)
    obs = jnp.concatenate([data.qpos, data.qvel])
    reward, done = slider_reward(state.obs, action, obs), slider_termination(state.obs, action, obs)
    return self._State(data, obs, reward, done, {"x": obs[0]},
                       dict(state.info, t=state.info["t"] + 1))


def _rollout(env, actions, key):
  def step(s, a):
    s = env.step(s, a)
    return s, (s.obs, s.reward, s.done)
  first = env.reset(key)
  last, out = jax.lax.scan(step, first, actions)
  return first, last, out


def test_playground_interface_adapts_to_an_environment():
  toy = ToyMjxEnv()
  environment = playground.adapt("toy", toy, slider_reward, slider_termination)
  assert (environment.obs_size, environment.action_size) == (2, 1)
  assert environment.env.dt == pytest.approx(0.04) and environment.mj_model is toy.mj_model
  actions = jnp.ones((20, 1))
  key = jax.random.PRNGKey(0)
  first, last, (obs, reward, done) = jax.jit(
      lambda a, k: _rollout(environment.env, a, k))(actions, key)
  theirs = jax.jit(lambda a, k: _rollout(toy, a, k))(actions, key)
  np.testing.assert_array_equal(obs, theirs[2][0])
  np.testing.assert_array_equal(reward, theirs[2][1])
  # The wrapped env's own state rides along: info, metrics and data survive.
  assert int(last.info["t"]) == 20 and float(last.metrics["x"]) == float(obs[-1, 0])
  assert last.pipeline_state.qpos.shape == (toy.mj_model.nq,)  # what render.py reads
  assert float(obs[-1, 0]) > 0.5  # the pushes moved it


def test_playground_dict_observations_are_refused():
  toy = ToyMjxEnv()
  reset = toy.reset
  toy.reset = lambda rng: reset(rng).replace(obs={"state": jnp.zeros(2)})
  with pytest.raises(ValueError, match="observations are a dict \\(state\\)"):
    playground.adapt("toy", toy, slider_reward, slider_termination)


def cartpole_reward(s, a, s_next):
  """CartpoleBalance's dense reward (mujoco_playground dm_control_suite/
  cartpole.py) from s' = [cart x, cos, sin, qvel (2)] and a."""
  from mujoco_playground._src.reward import tolerance
  del s
  upright = (s_next[1] + 1) / 2
  centered = (1 + tolerance(s_next[0], margin=2)) / 2
  small_control = (4 + tolerance(a[0], margin=1, value_at_margin=0, sigmoid="quadratic")) / 5
  small_velocity = (1 + tolerance(s_next[4:], margin=5).min()) / 2
  return upright * centered * small_control * small_velocity


def cartpole_termination(s, a, s_next):
  del s, a
  return jnp.any(jnp.isnan(s_next)).astype(jnp.float32)


@pytest.fixture
def cartpole(registered):
  pytest.importorskip("mujoco_playground")
  registered("cartpole", lambda fs: playground.load(
      "CartpoleBalance", cartpole_reward, cartpole_termination, fs, name="cartpole"))
  return envs.make("cartpole")


def test_real_playground_cartpole_has_its_known_reward(cartpole):
  """Playground's own CartpoleBalance (installed by the optional extra
  `.[playground]`; skipped without it): the known reward equals the env's on
  a random rollout."""
  assert (cartpole.obs_size, cartpole.action_size) == (5, 1)
  key = jax.random.PRNGKey(0)
  actions = jax.random.uniform(key, (100, 1), minval=-1.0, maxval=1.0)
  first, _, (obs, reward, done) = jax.jit(
      lambda a, k: _rollout(cartpole.env, a, k))(actions, key)
  s = jnp.concatenate([first.obs[None], obs[:-1]])
  np.testing.assert_allclose(jax.vmap(cartpole_reward)(s, actions, obs), reward, atol=1e-6)
  assert np.all(np.asarray(done) == 0) and np.ptp(np.asarray(reward)) > 0.01


@pytest.mark.slow  # ~60 s of compiling here; the slider above trains in `make test`
def test_real_playground_cartpole_trains(cartpole):
  config = sj.preset("cartpole", total_steps=200, num_samples=16, target_samples=4,
                     ensemble_size=2, hidden_sizes=(16, 16), batch_size=8)
  state, metrics = jax.jit(sj.make_train(config))(jax.random.PRNGKey(1))
  assert int(state.step) == 200 and np.all(np.isfinite(metrics["q_loss"]))
