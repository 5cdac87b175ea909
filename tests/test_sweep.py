"""experiments/sweep.py: swept values land in the state's array leaves, and
bad input gets one line."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smpc_jax as sj

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = os.path.join(ROOT, "experiments", "sweep.py")
TINY = ["--total_steps=20", "--chunk_steps=20", "--episode_length=15", "--num_samples=8",
        "--target_samples=4", "--hidden_sizes=16,16", "--batch_size=4", "--eval_episodes=1"]


@pytest.fixture(scope="module")
def sweep_module():
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import sweep
  return sweep


@pytest.mark.parametrize("param", ["tau", "temperature", "learning_rate"])
def test_with_value_sets_the_leaf_per_run(sweep_module, param):
  config = sj.preset("idp", num_samples=8, target_samples=4, hidden_sizes=(8,))
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  values = jnp.array([0.25, 0.5])
  states = jax.jit(jax.vmap(lambda k, v: sweep_module.with_value(sj.init(config, k), param, v)))(
      keys, values)
  if param == "learning_rate":
    got = [states.q_opt.hyperparams["learning_rate"], states.dyn_opt.hyperparams["learning_rate"]]
  else:
    got = [getattr(states.hparams, param)]
  for g in got:
    np.testing.assert_allclose(g, values)


def test_runs_are_value_major_with_the_same_seeds_per_value(sweep_module):
  """3 values x 4 seeds: reshaped to [value, seed] as the summary is, row v
  holds value v in every run and the 4 seed keys in order, the same for every
  value. Planted bug seen to fail it: keys repeated and values tiled (the
  seed-major layout) while the summary reshapes value-major."""
  values, seeds = [0.1, 0.2, 0.3], 4
  keys, swept = sweep_module.runs(values, seeds, 7)
  assert keys.shape == (12, 2) and swept.shape == (12,)
  seed_keys = np.asarray(jax.random.split(jax.random.PRNGKey(7), seeds))
  by_value = np.asarray(swept).reshape(len(values), seeds)
  np.testing.assert_allclose(by_value, np.repeat(np.array(values, np.float32)[:, None], seeds, 1))
  np.testing.assert_array_equal(np.asarray(keys).reshape(len(values), seeds, 2),
                                np.broadcast_to(seed_keys, (len(values), seeds, 2)))


@pytest.mark.parametrize("args,words", [
    (["--param=horizon"], "error: param='horizon' is invalid; allowed: temperature, noise_var, "
                          "gamma, tau, learning_rate."),
    (["--param=tau", "--values=0.1,2"], "error: tau=2.0 is invalid; it must lie in (0, 1]."),
    (["--values=a"], "error: values='a' is invalid; they must be numbers."),
])
def test_sweep_rejects_bad_input_in_one_line(args, words, tmp_path):
  out = subprocess.run([sys.executable, SWEEP, f"--out_dir={tmp_path}/run", *args],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, out.stderr
  assert [l for l in out.stderr.splitlines() if l.startswith("error:")] == [words]
  assert "Traceback" not in out.stderr
  assert not os.path.exists(f"{tmp_path}/run")


def test_sweep_writes_summary_and_plot(tmp_path):
  out = subprocess.run([sys.executable, SWEEP, "--param=temperature", "--values=0.1,1",
                        "--seeds=2", *TINY, f"--out_dir={tmp_path}/run"],
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  summary = json.load(open(f"{tmp_path}/run/summary.json"))
  assert summary["values"] == [0.1, 1.0]
  assert np.shape(summary["final_returns"]) == (2, 2)
  assert open(f"{tmp_path}/run/returns.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_iqm_and_its_bootstrap_interval(sweep_module):
  cli = sys.modules["cli"]
  # 8 values: the IQM drops the 2 lowest and 2 highest.
  assert cli.iqm([100, 1, 2, 3, 4, 5, 6, -100]) == pytest.approx(3.5)
  constant = cli.iqm_ci([7.0] * 5)
  assert constant == [7.0, 7.0]
  spread = [1000.0, 2000.0, 3000.0, 4000.0, 9000.0]
  lo, hi = cli.iqm_ci(spread)
  assert lo < cli.iqm(spread) < hi
  assert 1000.0 <= lo and hi <= 9000.0
  narrow = cli.iqm_ci(spread, level=0.5)
  assert lo <= narrow[0] < narrow[1] <= hi  # a lower level gives a narrower interval
