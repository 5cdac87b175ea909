"""The IQM and its bootstrap interval (scipy.stats) give the numbers our own
code gave before it: the same formula written out here, and a summary
recorded with the old code."""

import json
import os

import numpy as np
import pytest

from experiments.harness import stats

from tests.helpers import ROOT


def sorted_trim_iqm(v):
  """The old IQM: sort, drop floor(n/4) from each end, mean the rest."""
  v = np.sort(np.asarray(v, np.float64))
  k = len(v) // 4
  return float(np.mean(v[k:len(v) - k]))


def resampled_iqm_ci(v, level=0.95, resamples=10_000, seed=0):
  """The old interval: resample seeds with replacement (one integers draw of
  shape (resamples, n) from default_rng(seed)), the IQM of each, percentiles."""
  v = np.asarray(v, np.float64)
  idx = np.random.default_rng(seed).integers(0, len(v), (resamples, len(v)))
  boot = np.array([sorted_trim_iqm(row) for row in v[idx]])
  tail = 100 * (1 - level) / 2
  return [float(np.percentile(boot, tail)), float(np.percentile(boot, 100 - tail))]


def test_iqm_on_hand_counted_cases():
  assert stats.iqm([1, 2, 3, 4]) == 2.5  # drops 1 and 4
  assert stats.iqm([0, 0, 0, 100]) == 0.0  # the outlier is trimmed
  assert stats.iqm([5, 1, 100, 2, 3, 4, -50, 6]) == pytest.approx(3.5)  # middle 4: 2..5
  assert stats.iqm([1, 2, 3]) == 2.0  # floor(3/4) = 0: the plain mean
  assert stats.iqm([7.0]) == 7.0


@pytest.mark.parametrize("n", range(1, 13))
def test_iqm_and_interval_equal_the_old_code(n):
  v = np.random.default_rng(100 + n).normal(5000, 3000, n)
  assert stats.iqm(v) == pytest.approx(sorted_trim_iqm(v), rel=1e-12)
  expected = resampled_iqm_ci(v) if n > 1 else [v[0], v[0]]
  assert stats.iqm_ci(v) == pytest.approx(expected, rel=1e-12)


def test_a_summary_recorded_with_the_old_code_reproduces():
  with open(os.path.join(ROOT, "results/serial_cut_idp25k/summary.json")) as f:
    s = json.load(f)
  assert stats.iqm(s["final_returns"]) == pytest.approx(s["final_return_iqm"], rel=1e-12)
  assert stats.iqm_ci(s["final_returns"]) == pytest.approx(s["final_return_iqm_ci95"], rel=1e-12)
  assert round(s["final_return_iqm"], 1) == 8775.8  # the figure results/README.md quotes
