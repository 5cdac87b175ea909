"""experiments/plot.py's --curve=paper: the authors' statistic of training
returns (held per step, median and 20/80 percentiles over seeds, a trailing
moving average), checked against a step-by-step computation."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT

from experiments import plot  # noqa: E402

SEEDS = [[(2, 10.0), (6, 20.0), (9, 5.0)],
         [(3, 0.0), (8, 40.0)],
         [(1, 7.0), (4, 1.0), (5, 3.0), (10, 9.0)]]


def _reference(seed_episodes, end, window):
  """Step by step: each seed's last finished return (the first's before it),
  per-step percentiles, then each window's plain mean."""
  per_step = np.zeros((len(seed_episodes), end))
  for s, episodes in enumerate(seed_episodes):
    for t in range(1, end + 1):
      done = [r for step, r in episodes if step <= t]
      per_step[s, t - 1] = done[-1] if done else episodes[0][1]
  stats = np.stack([np.percentile(per_step[:, t], [20, 50, 80], method="midpoint")
                    for t in range(end)], axis=1)  # [3, end]
  steps = list(range(window, end + 1, window))
  return steps, np.stack([stats[:, t - window:t].mean(axis=1) for t in steps], axis=1)


@pytest.mark.parametrize("end,window", [(10, 5), (10, 3), (10, 1), (12, 4)])
def test_paper_curve_matches_a_step_by_step_computation(end, window):
  """Planted bugs seen to fail it: the moving average over the seeds' own
  curves before the percentiles; a window off by one step."""
  steps, bands = plot.paper_curve(SEEDS, end, window)
  want_steps, want = _reference(SEEDS, end, window)
  assert steps.tolist() == want_steps
  np.testing.assert_allclose(bands, want, rtol=1e-12)


def test_held_returns_by_hand():
  np.testing.assert_array_equal(plot.held(SEEDS[0], 10),
                                [10, 10, 10, 10, 10, 20, 20, 20, 5, 5])
  # Steps 1-5 of the three seeds: medians 7, 7, 7, 1, 3 -> mean 5.
  assert plot.paper_curve(SEEDS, 10, 5)[1][1, 0] == pytest.approx(5.0)


@pytest.mark.parametrize("end,window", [(10, 5), (10, 3), (12, 4)])
def test_per_seed_figures_match_a_step_by_step_computation(end, window):
  """Each seed's own moving average (the step-by-step reference of one seed
  alone), its highest point and the first read at or past a return."""
  figures = plot.per_seed(SEEDS + [[]], end, window, past=10.0)
  assert figures[-1] is None  # a seed with no episode
  for seed, (last, (best, best_step), first) in zip(SEEDS, figures):
    steps, own = _reference([seed], end, window)
    own = own[1]  # the median of one seed is that seed
    assert last == pytest.approx(own[-1])
    assert (best, best_step) == (pytest.approx(own.max()), steps[int(np.argmax(own))])
    reached = [t for t, v in zip(steps, own) if v >= 10.0]
    assert first == (reached[0] if reached else None)
  # Seed 0 by hand, window 5: steps 1-5 hold 10, 6-10 hold 20, 20, 20, 5, 5.
  assert plot.per_seed(SEEDS[:1], 10, 5, past=14.0) == [(14.0, (14.0, 10), 10)]
  assert plot.per_seed(SEEDS[:1], 4, 5) == [None]  # shorter than one window


def _run(folder, lines):
  os.makedirs(folder)
  with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines)
  with open(os.path.join(folder, "summary.json"), "w") as f:
    json.dump(dict(total_steps=lines[-1]["step"], final_returns=[1.0, 2.0]), f)


def test_paper_figure_from_runs_and_authors_logs(tmp_path):
  """The driver end to end: our training episodes (with their end steps),
  a run with evaluations only (held instead) dashed, an authors' log."""
  ours, sac = str(tmp_path / "ours"), str(tmp_path / "sac")
  _run(ours, [dict(step=1000 * (i + 1), episode_returns=[[float(i)], [2.0 * i]],
                   episode_steps=[[1000 * i + 500], [1000 * i + 900]]) for i in range(6)])
  _run(sac, [dict(step=1000 * i, eval_returns=[float(i), 1.0]) for i in range(7)])
  log = tmp_path / "seed1.log"
  log.write_text("".join(f"global_step={700 * i}, episodic_return=[{i}.5]\nSPS: 10\n"
                         for i in range(10)))
  png = str(tmp_path / "paper.png")
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "plot.py"), ours, sac,
                      str(log), "--curve=paper", "--window=2000", "--dashed=sac", f"--out={png}"],
                     capture_output=True, text=True)
  assert p.returncode == 0, p.stderr
  assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
  rows = open(tmp_path / "paper_seeds.md").read().splitlines()
  figures = plot.per_seed([[(1000 * i + 500, float(i)) for i in range(6)]], 6000, 2000)
  assert rows[2] == f"| ours | #0 | {figures[0][0]:.0f} | {figures[0][1][0]:.0f} (6000) | 1 |"
  assert rows[-1].startswith("| authors | seed1.log | ") and rows[-1].endswith(" |  |")
  steps, bands = plot.paper_curve([[(1000 * i + 500, float(i)) for i in range(6)],
                                   [(1000 * i + 900, 2.0 * i) for i in range(6)]], 6000, 2000)
  assert steps.tolist() == [2000, 4000, 6000]
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "plot.py"), ours,
                      str(log)], capture_output=True, text=True)
  assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--curve=paper" in p.stderr


def _group(folder, seeds, returns, final, config=None):
  """A seed group: chunks at steps 10 and 20, each seed's episodes."""
  os.makedirs(folder)
  lines = [dict(step=10 * (i + 1), mean_return=[r[i] for r in returns],
                episode_returns=[[r[i]] for r in returns],
                episode_steps=[[10 * (i + 1)] for _ in returns]) for i in range(2)]
  with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines)
  with open(os.path.join(folder, "summary.json"), "w") as f:
    json.dump(dict(total_steps=20, seeds=seeds, final_returns=final,
                   config=config or dict(env="hopper")), f)


def test_seed_groups_pool_into_one_run(tmp_path):
  """Issue 29: groups of seeds run in different sessions, one configuration:
  `A+B` is one run of all their seeds (curve, table and the paper's
  statistic)."""
  a, b = str(tmp_path / "s0"), str(tmp_path / "s2")
  _group(a, 2, [[1.0, 2.0], [3.0, 4.0]], [10.0, 30.0])
  _group(b, 1, [[5.0, 6.0]], [50.0])
  lines, summary = plot.load_run(f"{a}+{b}")
  assert [l["mean_return"] for l in lines] == [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]
  assert summary["final_returns"] == [10.0, 30.0, 50.0] and summary["seeds"] == 3
  seeds, end = plot.episodes_of(f"{a}+{b}", lines, summary)
  assert end == 20 and [e[-1][1] for e in seeds] == [2.0, 4.0, 6.0]
  out = tmp_path / "fig.png"
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "plot.py"),
                      f"{a}+{b}", f"--out={out}", "--curve=train"],
                     capture_output=True, text=True, timeout=120)
  assert p.returncode == 0, p.stderr[-2000:]
  assert "| s0+s2 | 3 | 20 | 30 |" in p.stdout, p.stdout
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "plot.py"),
                      f"{a}+{b}", f"--out={out}", "--curve=paper", "--window=1",
                      "--first_past=4"], capture_output=True, text=True, timeout=120)
  assert p.returncode == 0, p.stderr[-2000:]
  # Seeds named by each group folder's `sN` ending (no `seed` in these summaries).
  assert open(tmp_path / "fig_seeds.md").read().splitlines()[2:] == [
      "| s0+s2 | 0 | 2 | 2 (20) | not reached | 10 |",
      "| s0+s2 | 1 | 4 | 4 (20) | 20 | 30 |",
      "| s0+s2 | 2 | 6 | 6 (20) | 1 | 50 |"]


def test_groups_of_different_configurations_do_not_pool(tmp_path):
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  _group(a, 1, [[1.0, 2.0]], [1.0], dict(env="hopper", tau=0.005))
  _group(b, 1, [[1.0, 2.0]], [1.0], dict(env="hopper", tau=0.05))
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "plot.py"),
                      f"{a}+{b}", f"--out={tmp_path}/f.png"],
                     capture_output=True, text=True, timeout=120)
  assert p.returncode == 2
  assert p.stderr.strip().splitlines()[-1] == (
      f"error: '{a}+{b}': the seed groups ran different configurations (tau); only groups of "
      "one configuration pool.")
