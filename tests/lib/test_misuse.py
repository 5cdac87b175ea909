"""The library refuses what it cannot use (issue 28, cases 7, 8 and 10): one
TypeError or ValueError naming the field or argument and what is allowed,
raised before anything is traced."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smpc_jax as sj
from smpc_jax import envs, planner
from tests.lib import test_mppi as lq
from tests.lib.test_user_env import make_slider, registered, slider_reward  # noqa: F401


@pytest.mark.parametrize("field,value,error,words", [
    ("warm_start", "False", TypeError, "warm_start='False' is invalid; it must be True or False."),
    ("use_terminal_q", "no", TypeError, "use_terminal_q='no' is invalid; it must be True or False."),
    ("num_samples", True, TypeError, "num_samples=True is invalid; it must be an integer."),
    ("total_steps", "100", TypeError, "total_steps='100' is invalid; it must be an integer."),
    ("episode_length", 3e9, TypeError, "episode_length=3000000000.0 is invalid; it must be an "
                                       "integer."),
    ("temperature", "0.1", TypeError, "temperature='0.1' is invalid; it must be a number."),
    ("prior", 1, TypeError, "prior=1 is invalid; it must be a string."),
    ("hidden_sizes", 64, TypeError, "hidden_sizes=64 is invalid; it must be a tuple of integers."),
    ("total_steps", 3_000_000_001, ValueError, "total_steps=3000000001 is invalid; it must be an "
                                               "integer in [1, 2147483647]."),
    ("target_update_period", 2**31, ValueError, "target_update_period=2147483648 is invalid; it "
                                                "must be an integer in [1, 2147483647]."),
])
def test_config_refuses_wrong_types_and_int32_overflow(field, value, error, words):
  with pytest.raises(error) as e:
    sj.preset("idp", **{field: value})
  assert str(e.value) == words


def test_config_takes_numpy_and_jax_scalars_and_lists():
  c = sj.preset("idp", hidden_sizes=[8, 8], temperature=np.float32(0.25),
                noise_var=jnp.float32(0.5), num_samples=np.int64(64), warm_start=np.bool_(False))
  assert c.hidden_sizes == (8, 8) and c.temperature == 0.25 and c.noise_var == 0.5
  assert type(c.num_samples) is int and c.num_samples == 64 and c.warm_start is False
  hash(c)  # a Config stays hashable (static in the state)
  state = jax.eval_shape(lambda k: sj.init(c.replace(total_steps=10), k), jax.random.PRNGKey(0))
  assert state.config == c.replace(total_steps=10)


def test_train_driver_refuses_int32_overflow_before_making_anything(tmp_path):
  import subprocess, sys, os
  from tests.helpers import ROOT
  out = tmp_path / "run"
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "train.py"),
                      f"--out_dir={out}", "--total_steps=3000000001"],
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == 2
  assert [l for l in p.stderr.splitlines() if l.startswith("error:")] == [
      "error: total_steps=3000000001 is invalid; it must be an integer in [1, 2147483647]."]
  assert not out.exists()


BASE = dict(num_samples=8, temperature=0.5, noise_var=0.3, gamma=1.0)


@pytest.mark.parametrize("changes,words", [
    (dict(prior="uniform"), "prior='uniform' needs a finite action box (action_low, "
                            "action_high): got [-inf, inf]."),
    (dict(temperature=0.0), "temperature=0.0 is invalid; it must be > 0."),
    (dict(noise_var=-0.1), "noise_var=-0.1 is invalid; it must be > 0."),
    (dict(action_low=1.0, action_high=-1.0), "action_low=1.0 and action_high=-1.0 are invalid; "
                                             "action_low must be below action_high."),
    (dict(num_samples=0), "num_samples=0 is invalid; it must be an integer >= 1 (static)."),
    (dict(iterations=0), "iterations=0 is invalid; it must be an integer >= 1 (static)."),
    (dict(plan=jnp.zeros(3)), "plan has shape (3,); it must be [H+1, act]."),
    (dict(s0=jnp.zeros((2, 2))), "s0 has shape (2, 2); it must be one state [obs] (vmap mppi "
                                 "over a batch of states)."),
])
def test_mppi_refuses_what_it_cannot_plan_with(changes, words):
  args = dict(BASE, s0=lq.S0, plan=jnp.zeros((3, 1)))
  args.update(changes)
  s0, plan = args.pop("s0"), args.pop("plan")
  with pytest.raises(ValueError) as e:
    planner.mppi(jax.random.PRNGKey(0), s0, plan, lq.linear_model(), **args)
  assert str(e.value) == words


def test_mppi_still_takes_traced_hyperparameters():
  values = jax.vmap(lambda t: planner.mppi(jax.random.PRNGKey(0), lq.S0, jnp.zeros((3, 1)),
                                           lq.linear_model(), num_samples=8, temperature=t,
                                           noise_var=0.3, gamma=1.0).value)(jnp.array([0.1, 0.5]))
  assert values.shape == (2,) and bool(jnp.all(jnp.isfinite(values)))


def test_register_refuses_what_is_not_a_make_function(registered):
  with pytest.raises(TypeError, match=r"envs.register\('x', 42\): make_fn must be a function "
                                      r"\(frame_skip\) -> Environment."):
    registered("x", 42)
  assert "x" not in envs.names()


def test_a_task_whose_reward_is_not_a_scalar_is_named(registered):
  def make(frame_skip):
    env = make_slider(frame_skip)
    return env._replace(reward_fn=lambda s, a, s2: slider_reward(s, a, s2)[None])
  registered("slider_vec", make)
  with pytest.raises(ValueError, match=r"env='slider_vec': reward_fn\(s, a, s'\) has shape "
                                       r"\(1,\); it must be a scalar"):
    sj.preset("slider_vec")  # validated; made when first used
    envs.make("slider_vec")


def test_a_task_whose_step_reward_is_not_a_scalar_is_named(registered):
  def make(frame_skip):
    env = make_slider(frame_skip)
    task = env.env
    step = task._reward_fn
    task._reward_fn = lambda before, data, action: tuple(
        x[None] if i == 0 else x for i, x in enumerate(step(before, data, action)))
    return env
  registered("slider_vec2", make)
  with pytest.raises(ValueError, match=r"env='slider_vec2': the env's step reward has shape "
                                       r"\(1,\); it must be a scalar"):
    envs.make("slider_vec2")
