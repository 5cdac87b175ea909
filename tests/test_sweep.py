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
  value, and so are the evaluation keys: two combinations differ by their
  values alone. Planted bugs seen to fail it: keys repeated and values tiled
  (the seed-major layout) while the summary reshapes value-major; evaluation
  keys split over the 12 runs (issue 20: they followed the run's position)."""
  values, seeds = [0.1, 0.2, 0.3], 4
  keys, eval_keys, swept = sweep_module.runs([(v,) for v in values], seeds, 7)
  assert keys.shape == eval_keys.shape == (12, 2) and swept.shape == (12, 1)
  by_seed = np.asarray(eval_keys).reshape(len(values), seeds, 2)
  np.testing.assert_array_equal(by_seed, np.broadcast_to(by_seed[0], by_seed.shape))
  assert len({tuple(k) for k in by_seed[0]}) == seeds  # each seed its own key
  assert not (by_seed[0] == np.asarray(keys)[:seeds]).all(1).any()  # not the training keys
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
    (["--grid=tau=0.1,,0.2"], "error: grid='tau=0.1,,0.2' is invalid; give one or more numbers "
                              "after '=', comma separated."),
    # Issue 20: more steps than asked, and one run twice under two labels.
    (["--total_steps=300", "--chunk_steps=200"],
     "error: total_steps=300 is invalid with chunk_steps=200; a sweep runs whole chunks, so it "
     "must be a multiple of chunk_steps."),
    (["--param=tau", "--values=0.1,0.1"], "error: values='0.1,0.1' is invalid; 0.1 is given twice."),
    (["--grid=tau=0.1,0.10000000001"], "error: grid='tau=0.1,0.10000000001' is invalid; 0.1 is "
                                       "given twice (as float32)."),
    (["--seed=-1"], "error: seed=-1 is invalid; it must be an integer in [0, 4294967295] "
                    "(jax.random.PRNGKey keeps 32 bits: larger seeds repeat smaller ones)."),
    (["--grid=tau=0.1,0.2", "--seeds=1", "--shard_seeds"],
     "error: seeds=1 (x 2 combinations = 2 runs) is invalid with --shard_seeds; the run count "
     "must be a multiple of the device count 4 (e.g. 4)."),
])
def test_sweep_rejects_bad_input_in_one_line(args, words, tmp_path):
  out = subprocess.run([sys.executable, SWEEP, f"--out_dir={tmp_path}/run", *args],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu",
                                XLA_FLAGS="--xla_force_host_platform_device_count=4"))
  assert out.returncode == 2, out.stderr
  assert [l for l in out.stderr.splitlines() if l.startswith("error:")] == [words]
  assert "Traceback" not in out.stderr
  assert not os.path.exists(f"{tmp_path}/run")


@pytest.mark.parametrize("owner,files", [
    # a train.py run from before run folders had an owner
    (None, ("metrics.jsonl", "summary.json", "returns.png", "checkpoints/60/progress")),
    ("train.py", ("summary.json",)),  # one that names its owner
    ("sweep.py", ("summary.json", "table.md")),  # a previous sweep: needs --overwrite
])
def test_sweep_does_not_write_into_another_run(owner, files, tmp_path):
  """Issue 20: sweep.py into a train.py run's folder replaced its summary and
  plot and left its metrics and checkpoints: one folder, two runs. Planted
  bug seen to fail it: the code before issue 20 (rc 0, summary replaced)."""
  run_dir = tmp_path / "run"
  for name in files:
    (run_dir / name).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / name).write_text(f"the previous run's {name}")
  if owner:
    (run_dir / ".owner").write_text(owner + "\n")
  out = subprocess.run([sys.executable, SWEEP, f"--out_dir={run_dir}", *TINY],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, out.stderr[-2000:]
  assert "Traceback" not in out.stderr
  [line] = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  want = (f"pass --overwrite to replace it" if owner == "sweep.py" else
          "sweep.py does not write into it: choose another out_dir.")
  assert line.startswith(f"error: out_dir='{run_dir}' holds a ") and want in line, line
  for name in files:
    assert (run_dir / name).read_text() == f"the previous run's {name}"


@pytest.mark.slow  # the cold-cache suite ran 17 minutes on a fresh clone
def test_grid_sweep_sharded_writes_table_and_heatmap(tmp_path):
  """A 2 x 2 grid x 1 seed: 4 runs in one program, 2 per device over 2 devices."""
  out = subprocess.run([sys.executable, SWEEP, "--grid=temperature=0.1,1", "--grid=tau=0.005,0.05",
                        "--seeds=1", "--shard_seeds", *TINY, f"--out_dir={tmp_path}/run"],
                       capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, JAX_PLATFORMS="cpu",
                                XLA_FLAGS="--xla_force_host_platform_device_count=2"))
  assert out.returncode == 0, out.stderr[-2000:]
  summary = json.load(open(f"{tmp_path}/run/summary.json"))
  assert summary["params"] == ["temperature", "tau"] and summary["devices"] == 2
  assert summary["combinations"] == [[0.1, 0.005], [0.1, 0.05], [1.0, 0.005], [1.0, 0.05]]
  assert np.shape(summary["final_returns"]) == (4, 1)
  rows = summary["table"]
  assert [(r["temperature"], r["tau"]) for r in rows] == [tuple(c) for c in summary["combinations"]]
  for r, ret in zip(rows, summary["final_returns"]):
    assert r["returns"] == ret and r["iqm"] == pytest.approx(ret[0])
  table = open(f"{tmp_path}/run/table.md").read().splitlines()
  assert table[2] == "| temperature | tau | IQM | 95% CI | median |"
  assert len([l for l in table if l.startswith("| ")]) == 1 + 4
  for name in ("returns.png", "heatmap.png"):
    assert open(f"{tmp_path}/run/{name}", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_parse_grid_orders_and_validates(sweep_module):
  config = sj.preset("idp")
  grid = sweep_module.parse_grid(["temperature=0.1, 1", "learning_rate=1e-3"], config)
  assert grid == [("temperature", [0.1, 1.0]), ("learning_rate", [1e-3])]


@pytest.mark.parametrize("specs,words", [
    (["tau="], "grid='tau=' is invalid; give one or more numbers after '=', comma separated."),
    (["tau"], "grid='tau' is invalid; it must be NAME=V1,V2,... with NAME one of "
              "temperature, noise_var, gamma, tau, learning_rate."),
    (["horizon=1,2"], "grid='horizon=1,2' is invalid; NAME must be one of "
                      "temperature, noise_var, gamma, tau, learning_rate."),
    (["tau=0.1", "tau=0.2"], "grid='tau=0.2' is invalid; tau is swept twice."),
    (["tau=0.1,x"], "grid='tau=0.1,x' is invalid; the values must be numbers."),
    (["gamma=0.9,1.5"], "gamma=1.5 is invalid; it must lie in (0, 1]."),
    (["tau=0.1,0.2,0.1"], "grid='tau=0.1,0.2,0.1' is invalid; 0.1 is given twice."),
    (["learning_rate=1e-46"], "learning_rate=1e-46 is invalid; it must be > 0 in float32 "
                              "(>= 1.175e-38, the smallest normal float32)."),
    (["temperature=-1"], "temperature=-1.0 is invalid; it must be > 0."),
])
def test_parse_grid_rejects_bad_specs(sweep_module, specs, words):
  with pytest.raises(ValueError) as e:
    sweep_module.parse_grid(specs, sj.preset("idp"))
  assert str(e.value) == words


def test_with_values_sets_every_swept_leaf(sweep_module):
  config = sj.preset("idp", total_steps=16, num_samples=8, target_samples=4, hidden_sizes=(8,))
  # Jitted: the env's reset compiles in half the time it takes op by op.
  state = jax.jit(lambda k: sweep_module.with_values(
      sj.init(config, k), ["temperature", "tau"], jnp.array([0.5, 0.25])))(jax.random.PRNGKey(0))
  assert float(state.hparams.temperature) == 0.5 and float(state.hparams.tau) == 0.25


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
