"""Learning-curve figures, written atomically."""

from __future__ import annotations

import warnings

import numpy as np

from experiments.harness.files import atomic


def save_figure(fig, path):
  """fig.savefig(path), atomically (see `atomic`)."""
  with atomic(path) as tmp:
    fig.savefig(tmp, dpi=120)


def plot_returns(path, steps, curves, eval_points=None, title=""):
  """Median and spread over seeds of the training-episode returns.

  steps [T]; curves [S, T] (NaN where a seed finished no episode in a chunk);
  eval_points: optional (step, [S] returns) pairs, drawn as markers.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  curves = np.asarray(curves, np.float64)
  fig, ax = plt.subplots(figsize=(7, 4.2))
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # all-NaN columns: chunks with no finished episode
    med = np.nanmedian(curves, 0)
    lo, hi = np.nanmin(curves, 0), np.nanmax(curves, 0)
    q1, q3 = np.nanpercentile(curves, 25, 0), np.nanpercentile(curves, 75, 0)
  ax.fill_between(steps, lo, hi, alpha=0.15, color="C0", lw=0, label="min-max over seeds")
  ax.fill_between(steps, q1, q3, alpha=0.3, color="C0", lw=0, label="25-75%")
  ax.plot(steps, med, color="C0", lw=2, label=f"median of {len(curves)} seeds")
  if eval_points:
    for i, (s, r) in enumerate(eval_points):
      ax.scatter(np.full(len(r), s), r, color="C3", s=12, zorder=3,
                 label="evaluation (per seed)" if i == 0 else None)
  ax.set_xlabel("environment steps")
  ax.set_ylabel("episode return")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  save_figure(fig, path)
  plt.close(fig)


def plot_sweep(path, steps, curves, values, title=""):
  """One median-over-seeds learning curve per swept value, 25-75% shaded.
  curves [V, S, T] (NaN where a run finished no episode in a chunk)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.2))
  for i, (v, c) in enumerate(zip(values, np.asarray(curves, np.float64))):
    with np.errstate(all="ignore"), warnings.catch_warnings():
      warnings.simplefilter("ignore")
      q1, med, q3 = np.nanpercentile(c, [25, 50, 75], 0)
    ax.fill_between(steps, q1, q3, alpha=0.2, color=f"C{i}", lw=0)
    name = v if isinstance(v, str) else f"{v:g}"
    ax.plot(steps, med, color=f"C{i}", lw=2, label=f"{name} (median of {len(c)})")
  ax.set_xlabel("environment steps")
  ax.set_ylabel("episode return")
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  save_figure(fig, path)
  plt.close(fig)
