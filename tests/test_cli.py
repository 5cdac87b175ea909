"""The drivers' guards: bad input gets one line and exit 2 before anything
compiles; summaries are strict JSON; importing the package prints nothing."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "experiments"))
ENV = dict(os.environ, PYTHONPATH=ROOT)


def run(script, *args, cwd=ROOT):
  return subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script), *args],
                        capture_output=True, text=True, timeout=300, env=ENV, cwd=cwd)


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
  path = tmp_path_factory.mktemp("f") / "a_file"
  path.write_text("not a directory")
  return str(path)


@pytest.mark.parametrize("script,args,words", [
    ("train.py", ["--temperature=inf"],
     "error: temperature=inf is invalid; it must be a finite number."),
    ("train.py", ["--gamma=nan"], "error: gamma=nan is invalid; it must be a finite number."),
    ("train.py", ["--out_dir={file}"],
     "error: out_dir='{file}' is invalid; it is a file, it must be a directory."),
    ("train.py", ["--out_dir={file}/run"],
     "error: out_dir='{file}/run' cannot be created or written: '{file}' is not a "
     "writable directory."),
    ("train.py", ["--seeds=2", "tau=0.1"],
     "error: unexpected argument 'tau=0.1'; flags take the form --name=value (see --help)."),
    ("train.py", ["--checkpoint_every=-1"],
     "error: checkpoint_every=-1 is invalid; it must be an integer >= 0."),
    ("sweep.py", ["--values="],
     "error: values='' is invalid; give one or more numbers, comma separated."),
    ("bench.py", ["--steps=0"], "error: steps=0 is invalid; it must be an integer >= 1."),
    ("render.py", ["--run_dir=/nonexistent", "--out=a.avi"],
     "error: out='a.avi' is invalid; it must end in .gif, .mp4, .png."),
    ("train_returns.py", ["{file}"],
     "error: '{file}' is neither a run folder with metrics.jsonl nor an authors' .log file."),
])
def test_bad_input_gets_one_line_and_exit_2(script, args, words, a_file, tmp_path):
  args = [a.replace("{file}", a_file) for a in args]
  if script in ("train.py", "sweep.py") and not any(a.startswith("--out_dir") for a in args):
    args.append(f"--out_dir={tmp_path}/run")
  p = run(script, *args)
  assert p.returncode == 2, p.stderr[-2000:]
  assert "Traceback" not in p.stderr
  assert [l for l in p.stderr.splitlines() if l.startswith("error:")] == [
      words.replace("{file}", a_file)]
  assert not os.path.exists(f"{tmp_path}/run")


def test_importing_the_package_prints_nothing():
  p = subprocess.run([sys.executable, "-c", "import smpc_jax, smpc_jax.checkpoint; "
                      "smpc_jax.train.parts(smpc_jax.preset('idp'))"],
                     capture_output=True, text=True, timeout=900, env=ENV)
  assert p.returncode == 0, p.stderr
  assert (p.stdout, p.stderr) == ("", "")


def test_our_own_warnings_still_show():
  p = subprocess.run([sys.executable, "-c", "import warnings, smpc_jax; "
                      "warnings.warn('ours', UserWarning)"],
                     capture_output=True, text=True, timeout=300, env=ENV)
  assert "UserWarning: ours" in p.stderr


def test_summary_json_is_strict(tmp_path):
  import cli
  path = tmp_path / "s.json"
  cli.write_json(path, dict(a=float("nan"), b=[1.0, float("inf"), np.float32(2.5)],
                            c=np.int64(3), d={"e": -math.inf}))
  text = path.read_text()
  assert "NaN" not in text and "Infinity" not in text
  assert json.loads(text) == dict(a=None, b=[1.0, None, 2.5], c=3, d={"e": None})


def test_first_nonfinite_names_seed_quantity_and_step():
  import progress
  finite = dict(q_loss=np.array([[True, True, True], [True, True, False]]),
                params=np.array([[True, True, True], [True, False, False]]))
  assert progress.first_nonfinite(finite, 101) == (1, "params", 102)
  assert progress.first_nonfinite({k: np.ones_like(v) for k, v in finite.items()}, 1) is None


SIGNALS_SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
import signals
stop = signals.StopRequest()
os.kill(os.getpid(), signal.SIGTERM)
while not stop.requested:
  time.sleep(0.01)
print("first", stop.name, stop.exit_code, flush=True)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(60)  # the watcher thread exits the process before this returns
print("not reached")
"""


def test_first_signal_asks_to_stop_and_second_exits_at_once():
  p = subprocess.run([sys.executable, "-c", SIGNALS_SCRIPT, os.path.join(ROOT, "experiments")],
                     capture_output=True, text=True, timeout=30)
  assert p.stdout == "first SIGTERM 143\n"
  assert p.returncode == 130 and "Traceback" not in p.stderr
  assert "received SIGINT again: exiting now" in p.stderr


def test_train_returns_reads_both_codes_alike(tmp_path):
  """Our metrics.jsonl and the authors' log give the same rows for the same
  episodes: ours logs an episode at the step count where it ends, theirs at
  the 0-based global_step (one less); SPS lines every 100 steps count the
  steps their run took. Planted bug seen to fail it: the +1 dropped."""
  import cli
  run = tmp_path / "ours"
  run.mkdir()
  chunks = [(1000, [[500.0], []]), (2000, [[9100.0, 9200.0], [300.0]]), (3000, [[], [9300.0]])]
  with open(run / "metrics.jsonl", "w") as f:
    for step, eps in chunks:
      f.write(json.dumps(dict(step=step, episode_returns=eps)) + "\n")
  log = tmp_path / "seed0.log"
  lines = [f"1.0 SPS: 50" for _ in range(30)]
  lines[3] = "1.0 global_step=999, episodic_return=500.0"  # ends at step 1000
  lines[9] = "1.0 global_step=1999, episodic_return=[9100.]"
  lines[12] = "1.0 global_step=1999, episodic_return=9200.0"
  log.write_text("\n".join(lines) + "\n")
  (eps0, end0), (eps1, end1) = cli.our_episodes(str(run))
  theirs, end = cli.authors_episodes(str(log))
  assert (end0, end) == (3000, 2700)  # 27 SPS lines: 2,700 steps run
  assert theirs == eps0 == [(1000, 500.0), (2000, 9100.0), (2000, 9200.0)]
  assert cli.seed_returns(eps0, 3000, 1000) == dict(end=3000, first_best=2000, median_last=None,
                                               best_last=0, episodes_last=0, returns_last=[])
  assert cli.seed_returns(eps0, 3000, 2000) == dict(end=3000, first_best=2000, median_last=9150.0,
                                               best_last=2, episodes_last=2,
                                               returns_last=[9100.0, 9200.0])
  assert cli.seed_returns(eps1, end1, 1000)["first_best"] == 3000
