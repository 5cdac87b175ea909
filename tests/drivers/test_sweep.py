"""experiments/sweep.py: bad input gets one line, and a sweep runs exactly
total_steps, stops on a signal and resumes bit for bit (train.py's run:
smpc_jax.runner through experiments/harness/driver.py). Its grid parsing and
run layout are tested in-process (tests/lib/test_grid.py, test_runner.py)."""

import json
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest


from tests.helpers import ROOT
SWEEP = os.path.join(ROOT, "experiments", "sweep.py")
TINY = ["--total_steps=20", "--chunk_steps=20", "--episode_length=15", "--num_samples=8",
        "--target_samples=4", "--hidden_sizes=16,16", "--batch_size=4", "--eval_episodes=1"]


@pytest.mark.parametrize("args,words", [
    (["--param=horizon"], "error: param='horizon' is invalid; allowed: temperature, noise_var, "
                          "gamma, tau, learning_rate."),
    (["--param=tau", "--values=0.1,2"], "error: tau=2.0 is invalid; it must lie in (0, 1]."),
    (["--values=a"], "error: values='a' is invalid; the values must be numbers."),
    (["--grid=tau=0.1,,0.2"], "error: grid='tau=0.1,,0.2' is invalid; give one or more numbers, "
                              "comma separated."),
    # Issue 20: one run twice under two labels.
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
  # A folder from before .owner: train.py and sweep.py write the same files
  # since both are the runner's, so it reads as a previous run (still refused).
  want = ("pass --resume to continue it or --overwrite to replace it" if owner != "train.py"
          else "sweep.py does not write into it: choose another out_dir.")
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


# 2 values x 1 seed, 50 steps in chunks of 20, 20 and 10: exactly total_steps.
RESUMABLE = ["--param=tau", "--values=0.005,0.05", "--seeds=1", "--total_steps=50",
             "--chunk_steps=20", "--episode_length=15", "--num_samples=8", "--target_samples=4",
             "--hidden_sizes=16", "--batch_size=4", "--eval_episodes=1", "--checkpoint_every=20"]


@pytest.fixture(scope="module")
def sweep_env(tmp_path_factory):
  cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or tmp_path_factory.mktemp("jax_cache")
  return dict(os.environ, PYTHONPATH=ROOT, JAX_COMPILATION_CACHE_DIR=str(cache),
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")


def _final_state(out):
  from smpc_jax import checkpoint as ckpt
  from smpc_jax import runner
  _, state, progress, _ = runner.load(ckpt.manager(os.path.join(out, "checkpoints")))
  return state, progress


# Three sweep processes, about 250 s of a cold make test (which passed 15 min
# with it): `make test-slow` runs it; the loop it exercises (harness/loop.py)
# is train.py's, whose signal and bit-for-bit resume tests stay in make test.
@pytest.mark.slow
def test_sweep_runs_exactly_total_steps_and_resumes_bit_for_bit(sweep_env, tmp_path):
  """A sweep sent SIGTERM after its first chunk, then resumed with the
  command it printed, ends as the sweep left alone: the same state (networks,
  optimisers, buffers, keys, swept values), curves and final returns. Planted
  bugs seen to fail it: the resumed sweep restarting its curves; the swept
  values re-applied to the restored state at their init value."""
  import chex
  alone, stopped = tmp_path / "alone", tmp_path / "stopped"
  # One after another: the first sweep's compiles fill the cache the others read.
  b = subprocess.Popen([sys.executable, SWEEP, f"--out_dir={stopped}", *RESUMABLE],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sweep_env)
  lines = []
  for line in b.stdout:
    lines.append(line)
    if line.startswith("step") and line.split()[1].startswith("20/"):
      b.send_signal(signal.SIGTERM)
  err_b = b.stderr.read()
  assert b.wait(timeout=600) == 143, err_b[-3000:]
  assert "Traceback" not in err_b
  # The signal lands while the chunk after the first runs, or before it starts.
  at = json.load(open(stopped / "summary.json"))
  assert at["stopped_by"] == "SIGTERM" and at["steps_done"] in (20, 40) and not at["finished"]
  assert lines[-1].startswith(f"stopped by SIGTERM at step {at['steps_done']}; ")
  command = lines[-1].split("resume with: ", 1)[1].strip()
  assert command.endswith("--resume")
  p = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=600,
                     env=sweep_env, cwd=ROOT)
  assert p.returncode == 0, p.stderr[-3000:]
  assert f"resumed at step {at['steps_done']}" in p.stdout
  a = subprocess.run([sys.executable, SWEEP, f"--out_dir={alone}", *RESUMABLE],
                     capture_output=True, text=True, timeout=600, env=sweep_env)
  assert a.returncode == 0, a.stderr[-3000:]
  state_a, progress_a = _final_state(alone)
  state_b, progress_b = _final_state(stopped)
  chex.assert_trees_all_equal(state_a, state_b)
  assert int(state_a.step[0]) == 50 and progress_a.chunks == 3
  np.testing.assert_array_equal(np.asarray(state_a.hparams.tau), np.float32([0.005, 0.05]))
  curves = lambda d: [(l["step"], l["mean_return"]) for l in map(json.loads, open(d / "metrics.jsonl"))]
  assert curves(alone) == curves(stopped) and [s for s, _ in curves(alone)] == [20, 40, 50]
  s_a, s_b = (json.load(open(d / "summary.json")) for d in (alone, stopped))
  assert s_a["total_steps"] == 50 and s_a["finished"] and s_b["finished"]
  assert s_a["final_returns"] == s_b["final_returns"]


# 77 s of a cold make test: `make test-slow`. The runner's failed runs are
# tested in-process (tests/lib/test_runner.py).
@pytest.mark.slow
def test_a_non_finite_run_is_left_out_and_the_sweep_goes_on(sweep_env, tmp_path):
  """A run whose Q-values overflow (Adam's first step moves each weight by
  about the learning rate, so 1e30 overflows at once) is named in one
  warning line and marked failed in summary.json; the healthy run beside it
  keeps its results, checkpoint and final evaluation (issue 28, case 5: the
  sweep used to stop with nothing kept)."""
  out = tmp_path / "nan"
  args = [a for a in RESUMABLE if not a.startswith(("--param", "--values", "--total_steps"))]
  p = subprocess.run([sys.executable, SWEEP, f"--out_dir={out}", "--param=learning_rate",
                      "--values=0.001,1e30", "--total_steps=20", *args],
                     capture_output=True, text=True, timeout=600, env=sweep_env)
  assert p.returncode == 0, p.stderr[-3000:]
  assert "Traceback" not in p.stderr
  [line] = [l for l in p.stderr.splitlines() if l.startswith("warning: non-finite")]
  assert re.match(r"warning: non-finite (q_loss|dyn_loss|q|target|params) in "
                  r"learning_rate=1e\+30, seed 0 at step \d+; that run is marked failed and "
                  r"left out of the results, the others go on\.$", line), line
  s = json.load(open(out / "summary.json"))
  assert s["finished"] and [f["run"] for f in s["failed_runs"]] == ["learning_rate=1e+30, seed 0"]
  assert s["final_returns"][0][0] is not None and s["final_returns"][1] == [None]
  assert s["final_return_iqm"][0] is not None and s["final_return_iqm"][1] is None
  assert os.listdir(out / "checkpoints")


CHECKPOINT_OF_ANOTHER_VERSION = """
import sys
sys.path.insert(0, {root!r})
import jax, smpc_jax as sj
from smpc_jax import checkpoint as ckpt, runner
config = sj.preset("idp", total_steps=20, episode_length=15, num_samples=8, target_samples=4,
                   hidden_sizes=(16, 16), batch_size=4)
spec = runner.Spec(config, seed=0, seeds=1, grid=(("tau", (0.005, 0.02)),))
state, progress = runner.start(spec)
record = dict(spec.record(), version=runner.FORMAT_VERSION, package="9.9.9", done_steps=0,
              chunks=0, run_s=0.0)
record["config"]["future_field"] = 1
ckpt.save(ckpt.manager({out!r} + "/checkpoints", 2), 0, state, record)
open({out!r} + "/.owner", "w").write("sweep.py\\n")
"""


@pytest.mark.slow  # 24 s (the runner's check is in make test: tests/lib/test_runner.py)
def test_sweep_resume_of_another_versions_checkpoint_is_one_line(tmp_path):
  """Issue 28, case 9: a checkpoint whose config has a field this version
  lacks (written by a later smpc_jax): one line naming both versions."""
  out = tmp_path / "run"
  out.mkdir()
  p = subprocess.run([sys.executable, "-c", CHECKPOINT_OF_ANOTHER_VERSION.format(
      root=ROOT, out=str(out))], capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-3000:]
  p = subprocess.run([sys.executable, SWEEP, f"--out_dir={out}", *TINY, "--seeds=1",
                      "--grid=tau=0.005,0.02", "--resume"],
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == 2, p.stderr[-3000:]
  errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
  assert len(errors) == 1 and "Traceback" not in p.stderr, p.stderr[-3000:]
  assert "of another version of smpc_jax" in errors[0] and "future_field" in errors[0]
  assert "written by smpc_jax 9.9.9, this is " in errors[0]
