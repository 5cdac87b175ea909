"""experiments/studies/precision.py (does learning hold with bfloat16?) on
run folders made here, and precision_parts.py at the pendulum's preset."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def _run_folder(path, returns_by_seed, iqm=None, ci=None, step=30000):
  """metrics.jsonl with one chunk per 10k steps: seed i's episodes of window
  w have returns returns_by_seed[i][w]; summary.json with the given IQM."""
  path.mkdir(parents=True)
  with open(path / "metrics.jsonl", "w") as f:
    for w in range(step // 10000):
      eps = [list(r[w]) for r in returns_by_seed]
      f.write(json.dumps(dict(step=(w + 1) * 10000, episode_returns=eps,
                              episode_steps=[[(w + 1) * 10000] * len(e) for e in eps])) + "\n")
  if iqm is not None:
    (path / "summary.json").write_text(json.dumps(dict(
        final_return_iqm=iqm, final_return_iqm_ci95=ci, final_returns=[iqm, iqm])))


def test_precision_compares_windows_and_intervals(tmp_path):
  ref_a = [[[100, 120], [300], [500]], [[90], [250, 260], [700]]]  # medians 110/300/500, 90/255/700
  mine = [[[100], [280], [900]], [[95], [270], [850]]]  # medians 97.5, 275, 875
  _run_folder(tmp_path / "ref", ref_a, iqm=7900.0, ci=[4488.0, 9331.0])
  _run_folder(tmp_path / "mine", mine, iqm=8000.0, ci=[5000.0, 9300.0])
  out = tmp_path / "cmp.json"
  p = subprocess.run([sys.executable, "-m", "experiments.studies.precision",
                      f"--idp={tmp_path}/mine:{tmp_path}/ref",
                      f"--hopper={tmp_path}/mine:{tmp_path}/ref", f"--out={out}"],
                     capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert p.returncode == 0, p.stderr[-2000:]
  c = json.load(open(out))
  assert c["idp"]["holds"] and c["idp"]["reference_ci95"] == [4488.0, 9331.0]
  windows = c["hopper"]["windows"]
  assert [w["median"] for w in windows] == [97.5, 275.0, 875.0]
  assert [w["reference_spread"] for w in windows] == [[90, 110], [255, 300], [500, 700]]
  assert [w["holds"] for w in windows] == [True, True, False] and not c["hopper"]["holds"]
  assert "| 20-30k | 875 (900, 850) | 500-700 | NO |" in p.stdout


def test_precision_refuses_a_missing_folder_in_one_line(tmp_path):
  p = subprocess.run([sys.executable, "-m", "experiments.studies.precision",
                      f"--idp={tmp_path}/a:{tmp_path}/b"],
                     capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert p.returncode == 2
  assert p.stderr.strip().splitlines() == [f"error: idp: '{tmp_path}/a' is not a folder."]


@pytest.mark.slow  # six pendulum planner programs
def test_precision_parts_tabulates_both_dtypes(tmp_path):
  out = tmp_path / "parts.md"
  p = subprocess.run([sys.executable, "-m", "experiments.studies.precision_parts", "--env=idp",
                      "--rounds=1", f"--out={out}"],
                     capture_output=True, text=True, timeout=900, cwd=ROOT)
  assert p.returncode == 0, p.stderr[-3000:]
  rows = [l for l in out.read_text().splitlines() if l.startswith(("| online", "| targets"))]
  assert len(rows) == 2 and all(len(r.split("|")) == 7 for r in rows)
