"""The two scripts a lent GPU runs (experiments/gpu/), each at its tiny size on
this CPU: a device call is one try of 15 minutes, so a script that fails
there has cost the session its GPU. Both are compile-heavy: `make test-slow`."""

import json
import os
import subprocess
import sys
import tarfile

import imageio.v2 as imageio
import pytest

from tests.helpers import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def env(**extra):
  return dict(os.environ, PYTHONPATH=ROOT, PY=sys.executable,
              JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", **extra)


def script(name, timeout, **extra):
  p = subprocess.run(["bash", os.path.join(ROOT, "experiments", "gpu", name)],
                     capture_output=True, text=True, timeout=timeout, env=env(**extra))
  assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
  return p


@pytest.mark.slow  # one Hopper compile
def test_hopper_sh_runs_its_first_study_and_skips_the_rest_past_its_budget(tmp_path):
  """TINY=1 with a budget of 0 s: the first study (`make hopper`) runs to its
  figure, the second is skipped and the skip written down, not crashed on."""
  p = script("hopper.sh", 1200, TINY="1", TINY_RESULTS=str(tmp_path),
             STUDIES="hopper ablations", BUDGET_S="0")
  summary = json.load(open(tmp_path / "hopper" / "summary.json"))
  assert summary["finished"] and summary["steps_done"] == 200 and summary["seeds"] == 2
  assert (tmp_path / "hopper" / "returns.png").read_bytes()[:8] == PNG
  assert "--env=hopper" in (tmp_path / "hopper" / "command.txt").read_text()
  assert not (tmp_path / "fig3").exists()
  assert "skipping ablations" in (tmp_path / "skipped.txt").read_text()
  assert "hopper_gpu: done" in p.stderr


@pytest.mark.slow  # idp and Hopper benchmarks, three learning runs and two renders
def test_check_sh_runs_every_stage_at_its_tiny_size(tmp_path):
  """GPU_CHECK_TINY=1, what BUILD.md offers to test the script before a
  device call: the benchmarks' JSONs, the serial-kernel count, three learning
  runs in runs.tar.gz (checkpoints left behind), two GIFs of the agent and the
  report of targets."""
  out = tmp_path / "out"
  script("check.sh", 1500, OUT=str(out), GPU_CHECK_TINY="1", GPU_CHECK_BUDGET_S="1200",
         GPU_CHECK_RUN_DIR=str(tmp_path / "runs"))
  for name, env_name in (("bench_cpu.json", "idp"), ("bench_cpu_hopper.json", "hopper")):
    bench = json.load(open(out / name))
    assert bench["env"] == env_name and [r["seeds"] for r in bench["runs"]] == [1, 2], name
  assert json.load(open(out / "serial_cpu_idp.json"))
  with tarfile.open(out / "runs.tar.gz") as tar:
    names = tar.getnames()
  for run in ("hopper16", "idp_per_step", "idp_per_sample"):
    assert f"{run}/metrics.jsonl" in names and f"{run}/log.txt" in names, (run, names)
    assert not any(n.startswith(f"{run}/checkpoints") for n in names), run
  assert "bench_cpu_hopper_bfloat16.json" in names
  log = (out / "gpu_check.log").read_text()
  assert "targets (issue 10)" in log and "no chunk finished" not in log, log[-3000:]
  assert "idp_per_step finished: 60 steps x 2 seeds" in log, log[-3000:]
  # The best seed of two runs, rendered with EGL as on the device: a GIF a person opens.
  for run in ("idp_per_step", "hopper16"):
    gif = out / f"{run}_agent.gif"
    assert gif.exists(), (run, log[-3000:])
    assert gif.read_bytes()[:6] == b"GIF89a" and len(imageio.mimread(gif)) > 1, run
