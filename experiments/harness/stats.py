"""Statistics over seeds (IQM and its bootstrap interval) and training-episode
returns, ours and the authors' code's logs read alike."""

from __future__ import annotations

import os
import re

import numpy as np
from scipy import stats

from experiments.harness.files import read_jsonl


def iqm(values) -> float:
  """Interquartile mean: the mean of the middle 50% (25% trimmed each side)."""
  return float(stats.trim_mean(np.asarray(values, np.float64), 0.25))


def iqm_ci(values, level=0.95, resamples=10_000, seed=0) -> list:
  """Percentile-bootstrap confidence interval [lo, hi] of the IQM over seeds
  (seeds resampled with replacement). Wide with few seeds, as it should be;
  one seed gives [its value, its value]."""
  v = np.asarray(values, np.float64)
  if len(v) < 2 or np.all(v == v[0]):  # scipy needs two distinct values
    return [float(v[0]), float(v[0])]
  ci = stats.bootstrap((v,), lambda x, axis: stats.trim_mean(x, 0.25, axis=axis),
                       confidence_level=level, n_resamples=resamples, method="percentile",
                       rng=np.random.default_rng(seed)).confidence_interval
  return [float(ci.low), float(ci.high)]


BEST_RETURN = 9000.0  # the paper's bar for a balanced double pendulum (best ~9.36k)
_AUTHORS_LINE = re.compile(r"global_step=(\d+), episodic_return=\[?([-0-9.eE+]+)")


def our_episodes(folder):
  """[(seed episodes [(step, return)], last step)] of one of our runs. An
  episode's step is the env step where it ended (`episode_steps`), or in
  runs logged before that field the end of its chunk."""
  lines = read_jsonl(os.path.join(folder, "metrics.jsonl"), need=("step", "episode_returns"))
  seeds = len(lines[0]["episode_returns"])
  end = lines[-1]["step"]

  def ends(l, s):
    return l["episode_steps"][s] if "episode_steps" in l else [l["step"]] * len(
        l["episode_returns"][s])

  return [([(t, r) for l in lines for t, r in zip(ends(l, s), l["episode_returns"][s])], end)
          for s in range(seeds)]


def authors_episodes(log):
  """(episodes [(step, return)], steps run) of one authors' seed. Their
  global_step is 0-based, +1 here to count steps taken as ours does; they
  print "SPS: .." after every 100th step, so those lines count the steps run."""
  text = open(log).read().splitlines()
  episodes = [(int(m[1]) + 1, float(m[2])) for m in map(_AUTHORS_LINE.search, text) if m]
  steps = 100 * sum(" SPS: " in l for l in text)
  return episodes, max([steps] + [s for s, _ in episodes])


def seed_returns(episodes, end, window):
  """One seed's row: its first episode >= BEST_RETURN, and over the last
  `window` env steps before `end` the median return and the count >= it."""
  first = next((s for s, r in episodes if r >= BEST_RETURN), None)
  recent = [r for s, r in episodes if s > end - window]
  return dict(end=end, first_best=first, median_last=float(np.median(recent)) if recent else None,
              best_last=int(sum(r >= BEST_RETURN for r in recent)), episodes_last=len(recent),
              returns_last=recent)
