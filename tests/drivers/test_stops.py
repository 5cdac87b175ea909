"""Nothing lost when a run is stopped the way terminals and schedulers stop
it (issue 28): a signal sent to the whole process group (so twice), a second
signal during a save, Ctrl-C on a run piped through `tee` (the pipe's reader
dies first), SIGHUP (the terminal closes); and --overwrite never deletes
files from a folder that no driver of ours made.

The first tests drive experiments/harness/signals.py and cli.py's output in
small Python processes (no JAX); the runs that must train are in
`make test-slow`, in their own process groups, signalled as a terminal or a
scheduler does."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import ROOT
from tests.drivers.test_resume import FLAGS, TRAIN

SIGNALS_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    sys.path.insert(0, {root!r})
    from experiments.harness import signals
    stop = signals.StopRequest()
    me = os.getpid()
    def wait_for(cond):
      for _ in range(200):
        if cond():
          return
        time.sleep(0.01)
    {body}
    """)


def run_signals(body: str):
  p = subprocess.run([sys.executable, "-c", SIGNALS_SCRIPT.format(root=ROOT, body=body)],
                     capture_output=True, text=True, timeout=60)
  return p.returncode, p.stdout, p.stderr


def test_a_signal_sent_twice_at_once_is_one_request():
  """A process group's signal reaches the run twice (timeout, make,
  schedulers): that is one request to stop after the chunk, not two."""
  code, out, err = run_signals(textwrap.indent(textwrap.dedent("""
      os.kill(me, signal.SIGTERM); os.kill(me, signal.SIGTERM)
      wait_for(lambda: stop.requested)
      time.sleep(0.5)
      print("still running, requested", stop.requested, stop.name)
      """), ""))
  assert code == 0, err
  assert out.strip() == "still running, requested True SIGTERM"
  assert err.count("received SIGTERM") == 1


def test_a_later_second_signal_exits_at_once():
  code, out, err = run_signals(textwrap.dedent(f"""
      os.kill(me, signal.SIGINT)
      wait_for(lambda: stop.requested)
      time.sleep({signals_repeat_s() + 0.3})
      os.kill(me, signal.SIGINT)
      time.sleep(5)
      print("not reached")
      """))
  assert code == 130 and "not reached" not in out
  assert "received SIGINT again: exiting now" in err


def test_a_second_signal_during_a_save_waits_for_the_save():
  code, out, err = run_signals(textwrap.dedent(f"""
      os.kill(me, signal.SIGTERM)
      wait_for(lambda: stop.requested)
      time.sleep({signals_repeat_s() + 0.3})
      with stop.critical():
        os.kill(me, signal.SIGTERM)
        time.sleep(1.0)
        print("save complete", flush=True)
      print("summary written", flush=True)
      """))
  assert code == 0, err
  assert out.split() == ["save", "complete", "summary", "written"]
  assert "stopping once the checkpoint being saved is complete" in err


def test_sighup_is_a_stop_request():
  code, out, err = run_signals(textwrap.dedent("""
      os.kill(me, signal.SIGHUP)
      wait_for(lambda: stop.requested)
      print(stop.name, stop.exit_code)
      """))
  assert code == 0, err
  assert out.strip() == "SIGHUP 129"


def signals_repeat_s():
  sys.path.insert(0, ROOT)
  from experiments.harness import signals
  return signals.REPEAT_S


def test_output_to_a_closed_pipe_costs_nothing(tmp_path):
  """The reader of stdout is gone (tee after Ctrl-C): prints are dropped and
  the program goes on to its end (before: BrokenPipeError, exit 1)."""
  marker = tmp_path / "done"
  script = textwrap.dedent(f"""
      import sys
      sys.path.insert(0, {ROOT!r})
      from experiments.harness import cli
      cli.tolerate_closed_output()
      for i in range(2000):
        print("line", i, "x" * 100, flush=True)
        print("err", i, file=sys.stderr, flush=True)
      open({str(marker)!r}, "w").write("saved")
      """)
  p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
  p.stdout.close()  # the reader dies before the writer is done
  p.stderr.close()
  assert p.wait(timeout=60) == 0
  assert marker.read_text() == "saved"


def test_overwrite_leaves_a_folder_no_driver_of_ours_made(tmp_path):
  out = tmp_path / "theirs"
  (out / "checkpoints" / "epoch_10").mkdir(parents=True)
  (out / "checkpoints" / "epoch_10" / "model.pt").write_text("weights")
  (out / "metrics.jsonl").write_text("{}\n")
  (out / "summary.json").write_text("{}")
  (out / "tensorboard").mkdir()
  p = subprocess.run([sys.executable, TRAIN, f"--out_dir={out}", *FLAGS, "--overwrite"],
                     capture_output=True, text=True, timeout=300)
  assert p.returncode == 2, p.stderr[-2000:]
  errors = [l for l in p.stderr.splitlines() if l.startswith("error:")]
  assert errors == [f"error: out_dir={str(out)!r} holds metrics.jsonl, summary.json, checkpoints, "
                    "tensorboard but no .owner file: no driver of ours made that run, so "
                    "--overwrite deletes nothing there; choose another out_dir, or remove those "
                    "files yourself."], p.stderr[-2000:]
  assert (out / "checkpoints" / "epoch_10" / "model.pt").read_text() == "weights"
  assert (out / "metrics.jsonl").exists() and (out / "summary.json").exists()
  assert (out / "tensorboard").is_dir() and not (out / ".owner").exists()


# Runs that train, each in its own process group, signalled as a terminal or
# a scheduler signals it.

def _env(tmp_path):
  cache = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(tmp_path / "cache")
  return dict(os.environ, PYTHONPATH=ROOT, JAX_COMPILATION_CACHE_DIR=cache,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


def _wait_for_line(path, words, p, timeout=600):
  t = time.time()
  while time.time() - t < timeout:
    if os.path.exists(path) and words in open(path, errors="replace").read():
      return
    if p.poll() is not None:
      raise AssertionError(f"exited {p.returncode} before {words!r}: "
                           + open(path, errors="replace").read()[-3000:])
    time.sleep(0.2)
  raise AssertionError(f"no {words!r} in {timeout}s")


def _assert_stopped_with_everything(out, name):
  summary = json.load(open(out / "summary.json"))
  assert summary["stopped_by"] == name and not summary["finished"], summary
  assert summary["steps_done"] >= 20
  assert any((out / "checkpoints").iterdir())
  assert (out / "metrics.jsonl").read_text().count("\n") >= 1


LONG = ["--total_steps=100000", "--checkpoint_every=100000"]  # stopped long before


@pytest.mark.slow
@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_signal_to_the_process_group_stops_with_a_checkpoint(tmp_path, name):
  """As `timeout` (or a scheduler) does: the whole group is signalled, twice
  at once; SIGHUP as when the terminal closes. The run saves a checkpoint
  and its summary, and exits 128 + the signal."""
  out, log = tmp_path / "run", tmp_path / "log"
  with open(log, "w") as f:
    p = subprocess.Popen([sys.executable, TRAIN, f"--out_dir={out}", *FLAGS, *LONG],
                         stdout=f, stderr=subprocess.STDOUT, env=_env(tmp_path),
                         start_new_session=True)
  _wait_for_line(log, "step       20/", p)
  signum = getattr(signal, name)
  os.killpg(p.pid, signum)
  os.killpg(p.pid, signum)
  assert p.wait(timeout=600) == 128 + signum, open(log).read()[-3000:]
  text = open(log).read()
  assert f"stopped by {name} at step" in text and "Traceback" not in text
  _assert_stopped_with_everything(out, name)


@pytest.mark.slow
def test_ctrl_c_on_a_run_piped_through_tee_still_saves(tmp_path):
  """`make hopper` and the studies pipe through tee: Ctrl-C signals the
  group, tee dies, and the run's next print meets a closed pipe."""
  out, log = tmp_path / "run", tmp_path / "tee.log"
  command = " ".join([sys.executable, TRAIN, f"--out_dir={out}", *FLAGS, *LONG]) + \
      f" 2>&1 | tee {log}"
  p = subprocess.Popen(["bash", "-c", "set -o pipefail; " + command], env=_env(tmp_path),
                       stdout=subprocess.DEVNULL, start_new_session=True)
  _wait_for_line(log, "step       20/", p)
  os.killpg(p.pid, signal.SIGINT)
  assert p.wait(timeout=600) == 130
  _assert_stopped_with_everything(out, "SIGINT")
