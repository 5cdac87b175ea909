"""The drivers' guards: bad input gets one line and exit 2 before anything
compiles; summaries are strict JSON; importing the package prints nothing."""

import json
import math
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.helpers import ROOT
from experiments.harness import files, stats
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
    # The checks train.py and sweep.py share (harness/cli.py's check_run_flags).
    ("train.py", ["--resume", "--overwrite"],
     "error: resume and overwrite were both given; choose one."),
    ("sweep.py", ["--resume", "--overwrite"],
     "error: resume and overwrite were both given; choose one."),
    ("sweep.py", ["--keep_checkpoints=0"],
     "error: keep_checkpoints=0 is invalid; it must be an integer >= 1."),
    ("train.py", ["--plot_every_s=-1"],
     "error: plot_every_s=-1 is invalid; it must be an integer >= 0."),
    ("sweep.py", ["--values="],
     "error: values='' is invalid; give one or more numbers, comma separated."),
    ("bench.py", ["--steps=0"], "error: steps=0 is invalid; it must be an integer >= 1."),
    ("render.py", ["--run_dir=/nonexistent", "--out=a.avi"],
     "error: out='a.avi' is invalid; it must end in .gif, .mp4, .png."),
    ("studies/train_returns.py", ["{file}"],
     "error: '{file}' is neither a run folder with metrics.jsonl nor an authors' .log file."),
    # absl's own parse errors (it printed two lines and exited 1).
    ("train.py", ["--seeds=abc"], "error: seeds='abc' is invalid; it must be an integer."),
    ("train.py", ["--warm_start=maybe"],
     "error: warm_start='maybe' is invalid; it must be true or false."),
    ("train.py", ["--total_steps=1e3"],
     "error: total_steps='1e3' is invalid; it must be an integer."),
    ("train.py", ["--totl_steps=300"], "error: unknown flag --totl_steps; did you mean "
                                       "--total_steps? (see --helpfull for every flag)."),
    ("plot.py", ["{tmp}", "--curve=best"],
     "error: curve='best' is invalid; allowed: auto, eval, train, paper."),
    # 0 or inf once cast to float32: refused before the run blames a loss.
    ("train.py", ["--temperature=1e-46"], "error: temperature=1e-46 is invalid; it must be "
     "> 0 in float32 (>= 1.175e-38, the smallest normal float32)."),
    ("train.py", ["--noise_var=1e39"], "error: noise_var=1e+39 is invalid; it must be a finite "
     "number in float32 (|value| <= 3.403e+38)."),
    ("sac.py", ["--learning_rate=inf", "--out_dir={tmp}/run"],
     "error: learning_rate=inf is invalid; it must be a finite number."),
    # A seed beyond 32 bits would repeat a smaller one's run.
    ("train.py", ["--seed=1099511627776"], "error: seed=1099511627776 is invalid; it must be an "
     "integer in [0, 4294967295] (jax.random.PRNGKey keeps 32 bits: larger seeds repeat "
     "smaller ones)."),
    ("sac.py", ["--seed=4294967295", "--seeds=2", "--out_dir={tmp}/run"],
     "error: seed=4294967295 is invalid; it must be an integer in [0, 4294967294] with 2 runs "
     "of consecutive seeds (jax.random.PRNGKey keeps 32 bits: larger seeds repeat smaller "
     "ones)."),
    ("sac.py", ["stray", "--out_dir={tmp}/run"],
     "error: unexpected argument 'stray'; flags take the form --name=value (see --help)."),
    # Paths the run could not write, found before it starts.
    ("train.py", ["--out_dir={tmp}/run/" + "n" * 300], "error: out_dir='{name_head}..."
     + "n" * 48 + "' is invalid; a name in it has 300 characters, this filesystem allows at "
     "most 255."),
    ("train.py", ["--out_dir={tmp}/run" + ("/" + "d" * 200) * 20],
     "error: out_dir='{short}...{tail}' is too long: its absolute path has {length} characters;"
     " the files below it need 200 more, and paths may have at most 4096."),
    ("plot.py", ["{tmp}", "--out={tmp}"], "error: out='{tmp}' is invalid; it must end in .png, "
                                          ".pdf, .svg."),
    ("plot.py", ["{tmp}", "--out={tmp}/fig.txt"],
     "error: out='{tmp}/fig.txt' is invalid; it must end in .png, .pdf, .svg."),
    ("plot.py", ["{tmp}", "--out={file}/fig.png"],  # it named a flag it lacks, out_dir
     "error: out='{file}/fig.png' cannot be created or written: '{file}' is not a writable "
     "directory."),
    ("plot.py", ["{tmp}", "--first_past=1000"], "error: first_past=1000 is invalid without "
     "--curve=paper; it reads the authors' moving average."),
    ("studies/train_returns.py", ["{tmp}", "--out={tmp}/table.json"],
     "error: out='{tmp}/table.json' is invalid; it must end in .md."),
    ("studies/train_returns.py", ["{tmp}", "--window=-5"],
     "error: window=-5 is invalid; it must be an integer >= 1 (env steps)."),
    ("bench.py", ["--out={tmp}"], "error: out='{tmp}' is invalid; it must end in .json."),
    ("render.py", ["--run_dir={tmp}", "--width=100000"],
     "error: width=100000 is invalid; it must be an integer in [1, 4096] (pixels)."),
])
def test_bad_input_gets_one_line_and_exit_2(script, args, words, a_file, tmp_path):
  """Planted bugs seen to fail it: each case on the code before issue 20."""
  long_dir = f"{tmp_path}/run" + ("/" + "d" * 200) * 20
  fill = dict(file=a_file, tmp=str(tmp_path), short=long_dir[:48], tail=long_dir[-48:],
              length=str(len(long_dir)), name_head=f"{tmp_path}/run/{'n' * 300}"[:48])
  fill_in = lambda text: re.sub(r"\{(\w+)\}", lambda m: fill[m[1]], text)
  args = [fill_in(a) for a in args]
  if script in ("train.py", "sweep.py") and not any(a.startswith("--out_dir") for a in args):
    args.append(f"--out_dir={tmp_path}/run")
  p = run(script, *args)
  assert p.returncode == 2, p.stderr[-2000:]
  assert "Traceback" not in p.stderr
  assert [l for l in p.stderr.splitlines() if l.startswith("error:")] == [fill_in(words)]
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
  path = tmp_path / "s.json"
  files.write_json(path, dict(a=float("nan"), b=[1.0, float("inf"), np.float32(2.5)],
                            c=np.int64(3), d={"e": -math.inf}))
  text = path.read_text()
  assert "NaN" not in text and "Infinity" not in text
  assert json.loads(text) == dict(a=None, b=[1.0, None, 2.5], c=3, d={"e": None})


SIGNALS_SCRIPT = """
import os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from experiments.harness import signals
stop = signals.StopRequest()
os.kill(os.getpid(), signal.SIGTERM)
while not stop.requested:
  time.sleep(0.01)
print("first", stop.name, stop.exit_code, flush=True)
time.sleep(signals.REPEAT_S + 0.3)  # sooner, it would be the same request (a process group's)
os.kill(os.getpid(), signal.SIGINT)
time.sleep(20)  # the watcher thread exits the process before this returns
print("not reached")
"""


def test_first_signal_asks_to_stop_and_second_exits_at_once():
  p = subprocess.run([sys.executable, "-c", SIGNALS_SCRIPT, ROOT],
                     capture_output=True, text=True, timeout=30)
  assert p.stdout == "first SIGTERM 143\n"
  assert p.returncode == 130 and "Traceback" not in p.stderr
  assert "received SIGINT again: exiting now" in p.stderr


def test_train_returns_reads_both_codes_alike(tmp_path):
  """Our metrics.jsonl and the authors' log give the same rows for the same
  episodes: ours logs an episode at the step count where it ends, theirs at
  the 0-based global_step (one less); SPS lines every 100 steps count the
  steps their run took. Planted bug seen to fail it: the +1 dropped."""
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
  (eps0, end0), (eps1, end1) = stats.our_episodes(str(run))
  theirs, end = stats.authors_episodes(str(log))
  assert (end0, end) == (3000, 2700)  # 27 SPS lines: 2,700 steps run
  assert theirs == eps0 == [(1000, 500.0), (2000, 9100.0), (2000, 9200.0)]
  assert stats.seed_returns(eps0, 3000, 1000) == dict(end=3000, first_best=2000, median_last=None,
                                               best_last=0, episodes_last=0, returns_last=[])
  assert stats.seed_returns(eps0, 3000, 2000) == dict(end=3000, first_best=2000, median_last=9150.0,
                                               best_last=2, episodes_last=2,
                                               returns_last=[9100.0, 9200.0])
  assert stats.seed_returns(eps1, end1, 1000)["first_best"] == 3000


@pytest.mark.parametrize("script,variables,words", [
    ("train.py", dict(JAX_ENABLE_X64="1"),
     "error: JAX_ENABLE_X64='1' is not supported; the runs are float32: unset it (or set it to 0)."),
    ("train.py", dict(MUJOCO_GL="bogus"),
     "error: MUJOCO_GL='bogus' is invalid; allowed: egl, osmesa, glx, glfw (or unset it)."),
    pytest.param("train.py", dict(JAX_PLATFORMS="gpu"),
                 "error: JAX_PLATFORMS='gpu' cannot be used on this machine (",
                 marks=pytest.mark.skipif(any(d.platform == "gpu" for d in jax.devices()),
                                          reason="this machine has a GPU")),
    pytest.param("bench.py", dict(JAX_PLATFORMS="tpu"),
                 "error: JAX_PLATFORMS='tpu' cannot be used on this machine (",
                 marks=pytest.mark.skipif(any(d.platform == "tpu" for d in jax.devices()),
                                          reason="this machine has a TPU")),
])
def test_an_environment_the_runs_cannot_use_gets_one_line(script, variables, words, tmp_path):
  """Planted bug seen to fail it: the code before issue 20 (tracebacks)."""
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", script),
                      f"--out_dir={tmp_path}/run"] if script == "train.py" else
                     [sys.executable, os.path.join(ROOT, "experiments", script),
                      f"--out={tmp_path}/b.json"],
                     capture_output=True, text=True, timeout=300, env=dict(ENV, **variables))
  assert p.returncode == 2, p.stderr[-2000:]
  assert "Traceback" not in p.stderr
  [line] = [l for l in p.stderr.splitlines() if l.startswith("error:")]
  assert line.startswith(words), line
  assert not os.listdir(tmp_path)


GOOD_LINE = json.dumps(dict(step=20, episode_returns=[[1.0]], mean_return=[1.0]))
GOOD_SUMMARY = json.dumps(dict(total_steps=20, final_returns=[1.0]))


@pytest.mark.parametrize("script,metrics,summary,words", [
    ("plot.py", GOOD_LINE + "\n" + GOOD_LINE[:25], GOOD_SUMMARY,
     "error: folder: '{run}/metrics.jsonl' line 2 is not valid JSON; was its writer cut off?"),
    ("plot.py", "", GOOD_SUMMARY, "error: folder: '{run}/metrics.jsonl' holds no lines."),
    ("plot.py", GOOD_LINE, "", "error: folder: '{run}/summary.json' is empty."),
    ("plot.py", GOOD_LINE, GOOD_SUMMARY[:12], "error: folder: '{run}/summary.json' is not valid "
     "JSON (line 1: Unterminated string starting at); was its writer cut off?"),
    ("studies/train_returns.py", GOOD_LINE[:25], GOOD_SUMMARY,
     "error: folder: '{run}/metrics.jsonl' line 1 is not valid JSON; was its writer cut off?"),
])
def test_a_damaged_run_file_is_named_in_one_line(script, metrics, summary, words, tmp_path):
  """Planted bug seen to fail it: the readers before issue 20 (json tracebacks)."""
  run_dir = tmp_path / "run"
  run_dir.mkdir()
  (run_dir / "metrics.jsonl").write_text(metrics)
  (run_dir / "summary.json").write_text(summary)
  p = run(script, str(run_dir), f"--out={tmp_path}/out." + ("png" if script == "plot.py" else "md"))
  assert p.returncode == 2, p.stderr[-2000:]
  assert "Traceback" not in p.stderr
  assert [l for l in p.stderr.splitlines() if l.startswith("error:")] == [
      words.replace("{run}", str(run_dir))]
  assert sorted(os.listdir(tmp_path)) == ["run"]  # no figure or table written


@pytest.mark.parametrize("args,words", [
    (["--temperature=-1"], "error: temperature=-1.0 is invalid; it must be > 0."),
    (["--env=cartpole"], "error: env='cartpole' is not known; allowed: idp, hopper, walker, idp_brax, hopper_brax, hopper_gym."),
    (["--num_samples=30", "--branching=per_sample"],
     "error: num_samples=30 is invalid; with branching='per_sample' it must be divisible by ensemble_size=4."),
    (["--seeds=0"], "error: seeds=0 is invalid; it must be an integer >= 1."),
])
def test_train_rejects_bad_config_in_one_line(args, words, tmp_path):
  out = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "train.py"),
       f"--out_dir={tmp_path}/run", *args],
      capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, out.stderr
  lines = [l for l in out.stderr.splitlines() if l.startswith("error:")]
  assert lines == [words], out.stderr
  assert "Traceback" not in out.stderr
  assert not os.path.exists(f"{tmp_path}/run")  # nothing written, nothing compiled


# Issue 28, case 11.

def test_sac_bad_input_is_one_line_and_nothing_else():
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "sac.py"),
                      "--total_steps=-1"], capture_output=True, text=True, timeout=300)
  assert p.returncode == 2
  assert "warp" not in p.stdout + p.stderr, p.stdout + p.stderr
  assert p.stderr.strip().splitlines() == [
      "error: total_steps=-1 is invalid; it must be an integer >= 1."]


def test_make_idp_keeps_a_folder_name_with_spaces_whole():
  p = subprocess.run(["make", "-n", "-s", "-C", ROOT, "-o", "install", "idp", "OUT=my runs"],
                     capture_output=True, text=True, timeout=60)
  assert p.returncode == 0, p.stderr
  assert '--out_dir="my runs/idp"' in p.stdout, p.stdout


def test_an_unwritable_run_folder_is_named_not_its_parent(tmp_path, monkeypatch, capsys):
  run = tmp_path / "run"
  run.mkdir()
  monkeypatch.setattr(os, "access", lambda p, mode: os.fspath(p) != str(run))
  with pytest.raises(SystemExit) as e:
    files.check_dir(str(run))
  assert e.value.code == 2
  assert capsys.readouterr().err.strip() == (
      f"error: out_dir={str(run)!r} cannot be created or written: {str(run)!r} is not a "
      "writable directory.")


OUT_OF_MEMORY = """
import sys
sys.path.insert(0, {root!r})
from experiments.harness import cli
def main(argv):
  raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
                     "400000000000 bytes.\\nBufferAssignment OOM Debugging.\\n" + "x\\n" * 30)
cli.run(main, lambda: None, backend=False)
"""


def test_out_of_memory_is_one_line():
  p = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY.format(root=ROOT)],
                     capture_output=True, text=True, timeout=120)
  assert p.returncode == 1
  assert p.stderr.strip().splitlines() == [
      "error: out of memory: RESOURCE_EXHAUSTED: Out of memory while trying to allocate "
      "400000000000 bytes.; choose smaller sizes (batch, samples, seeds, buffer) or a device "
      "with more memory."]
