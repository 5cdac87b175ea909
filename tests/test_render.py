"""experiments/render.py draws every environment headless: poses set from
qpos give frames that are not blank and that change with the pose."""

import os
import sys

import jax
import numpy as np
import pytest

from smpc_jax import envs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
