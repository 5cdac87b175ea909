"""experiments/render.py draws every environment headless: poses set from
qpos give frames that are not blank and that change with the pose."""

import os
import sys

import jax
import numpy as np
import pytest

from smpc_jax import envs

from tests.helpers import ROOT


@pytest.mark.parametrize("name", [n if not n.endswith("_brax") else pytest.param(n, marks=pytest.mark.slow)
                                  for n in envs.names()])  # brax's legacy tasks: `make test-slow`
def test_frames_of_each_env_are_not_blank(name):
  from experiments import render
  environment = envs.make(name)
  model = render.mj_model(environment)
  state = jax.eval_shape(environment.env.reset, jax.random.PRNGKey(0))
  assert state.pipeline_state.qpos.shape == (model.nq,)  # the env's qpos is the model's
  rng = np.random.default_rng(0)
  qpos = model.qpos0 + 0.3 * rng.standard_normal((3, model.nq))
  frames = render.render_frames(model, qpos, 64, 48)
  assert frames.shape == (3, 48, 64, 3) and frames.dtype == np.uint8
  for f in frames:
    background = f[0, 0]
    assert np.mean(np.any(f != background, axis=-1)) > 0.01  # something is drawn
  assert np.abs(frames[0].astype(int) - frames[1]).mean() > 0.1  # the pose moved it


# `make test-slow`: its compiles took 103 s (actor) and 78 s (random plan) of a
# cold make test, which ran 15m14s with the first (results/make_test.txt).
@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    dict(control="actor", targets="actor"),  # DDPG: the actor's greedy mu(s)
    dict(initial_plan="random"),  # the planner, warm-started from a draw of N(0, Sigma)
])
def test_the_video_shows_the_controller_evaluation_measures(overrides):
  """render.py's episode, stepped by hand: the controller the config names,
  from the initial plan it names; and evaluate's return is that episode's.
  Planted bugs seen to fail it: the planner for control=actor; a zero
  initial plan (render.py before issue 19)."""
  import smpc_jax as sj
  from experiments import render
  from smpc_jax import planner, train
  c = sj.preset("idp", total_steps=20, episode_length=4, num_samples=8, target_samples=2,
                hidden_sizes=(8,), batch_size=2, **overrides)
  state = jax.jit(lambda k: sj.init(c, k))(jax.random.PRNGKey(3))
  key = jax.random.split(jax.random.PRNGKey(5), 1)[0]  # evaluate's key for its one episode
  qpos, shown = jax.jit(render.episode_qpos, static_argnums=2)(state, key, 4)
  env = train.parts(c).environment.env
  k_reset, k_steps = jax.random.split(key)
  s = env.reset(k_reset)
  warm = train.initial_plan(c, state.hparams, jax.random.fold_in(k_reset, 1))
  want, total = [s.pipeline_state.qpos], 0.0
  plan = jax.jit(train.plan, static_argnames="num_samples")  # op by op it took a minute
  step = jax.jit(env.step)  # one wrapper: traced once, not once per step
  for k in jax.random.split(k_steps, c.episode_length):
    if c.control == "actor":
      action = train.parts(c).actor.apply(state.actor_params, s.obs)
    else:
      result = plan(state, k, s.obs, warm, state.q_params, num_samples=c.num_samples)
      action, warm = result.action, planner.shift(result.plan)
    s = step(s, action)
    want.append(s.pipeline_state.qpos)
    total += float(s.reward)
  assert np.asarray(shown).tolist() == [1.0] * 5  # the pendulum stands for 4 steps
  # (the two compiled planners may differ in float32 rounding: about 1e-6 here;
  # a zero initial plan moves the poses by about 1e-2)
  np.testing.assert_allclose(np.asarray(qpos), np.stack(want), atol=1e-4)
  returns = jax.jit(sj.evaluate, static_argnums=2)(state, jax.random.PRNGKey(5), 1)
  assert float(returns[0]) == pytest.approx(total, rel=1e-5)
