"""A sweep's grid: parsed from its flags, and its results as a table (and a
heatmap for two parameters)."""

from __future__ import annotations

import itertools
import os

import numpy as np

from experiments.harness import plots, stats
from smpc_jax.config import SWEEPABLE, Config, validate


def check_distinct(flag: str, text: str, values):
  """A ValueError when two values are one float32 (the state holds float32):
  the sweep would run the same thing twice under two labels."""
  as_f32 = [float(np.float32(v)) for v in values]
  for i, v in enumerate(as_f32):
    if v in as_f32[:i]:
      raise ValueError(f"{flag}={text!r} is invalid; {values[i]:g} is given twice"
                       + ("" if values[i] in values[:i] else " (as float32)") + ".")


def _numbers(flag: str, text: str, items, config: Config, name: str) -> list:
  if not text.strip() or any(not v.strip() for v in items):
    raise ValueError(f"{flag}={text!r} is invalid; give one or more numbers, comma separated.")
  try:
    values = [float(v) for v in items]
  except ValueError:
    raise ValueError(f"{flag}={text!r} is invalid; the values must be numbers.") from None
  for v in values:  # each passes the Config field's own checks
    validate(config.replace(**{name: v}))
  check_distinct(flag, text, values)
  return values


def parse(specs, param: str, values, config: Config, param_given: bool) -> list:
  """[(name, [values])] from --grid=NAME=V1,V2,... specs (repeatable) or,
  without them, from --param/--values; a ValueError naming the flag, the
  value and what is allowed."""
  if not specs:
    if param not in SWEEPABLE:
      raise ValueError(f"param={param!r} is invalid; allowed: {', '.join(SWEEPABLE)}.")
    return [(param, _numbers("values", ",".join(values), values, config, param))]
  if param_given:
    raise ValueError(f"grid={specs[0]!r} is invalid together with --param/--values; "
                     "use one form.")
  grid = []
  for spec in specs:
    name, eq, text = spec.partition("=")
    name = name.strip()
    if not eq or name not in SWEEPABLE:
      raise ValueError(f"grid={spec!r} is invalid; it must be NAME=V1,V2,... with NAME one "
                       f"of {', '.join(SWEEPABLE)}.")
    if name in [n for n, _ in grid]:
      raise ValueError(f"grid={spec!r} is invalid; {name} is swept twice.")
    grid.append((name, _numbers("grid", spec, text.split(","), config, name)))
  return grid


def rows(spec, returns) -> list:
  """One dict per combination of `spec`: its label, values, and the final
  return's IQM (95% bootstrap interval) and median over its seeds, failed
  runs (NaN) left out (NaN where all failed). returns: [R] (runs
  combination-major)."""
  by_combo = np.asarray(returns, np.float64).reshape(len(spec.combinations), spec.seeds)
  out = []
  for c, (combo, r) in enumerate(zip(spec.combinations, by_combo)):
    ok = r[np.isfinite(r)]  # a failed run's return is NaN: left out
    nan = float("nan")
    out.append(dict(label=spec.label(c), **dict(zip(spec.params, combo)),
                    iqm=stats.iqm(ok) if len(ok) else nan,
                    iqm_ci95=stats.iqm_ci(ok) if len(ok) else [nan, nan],
                    median=float(np.median(ok)) if len(ok) else nan, returns=r.tolist()))
  return out


def write(out: str, spec, summary: dict) -> None:
  """OUT/table.md and, for two parameters, OUT/heatmap.png."""
  params, table = spec.params, summary["table"]
  lines = [f"Final evaluation return per combination: IQM over {spec.seeds} seed(s) with a "
           f"95% percentile-bootstrap interval, {summary['steps_done']} steps each.", "",
           "| " + " | ".join(params) + " | IQM | 95% CI | median |",
           "|" + "---:|" * (len(params) + 3)]
  for r in table:
    lo, hi = r["iqm_ci95"]
    lines.append("| " + " | ".join(f"{r[p]:g}" for p in params)
                 + f" | {r['iqm']:.1f} | {lo:.0f} - {hi:.0f} | {r['median']:.1f} |")
  with open(os.path.join(out, "table.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  if len(spec.grid) == 2:
    heatmap(os.path.join(out, "heatmap.png"), spec.grid, [r["iqm"] for r in table],
            title=f"{spec.config.env}, {summary['steps_done']} steps, IQM over "
                  f"{spec.seeds} seeds")


def heatmap(path, grid, iqms, title=""):
  """IQM of the final return over a two-parameter grid, one cell per
  combination (rows: the first parameter), values written in the cells."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  (p0, v0), (p1, v1) = grid
  z = np.asarray(iqms, np.float64).reshape(len(v0), len(v1))
  fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(v1), 1.4 + 0.8 * len(v0)))
  im = ax.imshow(z, cmap="viridis", aspect="auto")
  ax.set_xticks(range(len(v1)), [f"{v:g}" for v in v1])
  ax.set_yticks(range(len(v0)), [f"{v:g}" for v in v0])
  ax.set_xlabel(p1)
  ax.set_ylabel(p0)
  mid = np.nanmean(z) if np.isfinite(z).any() else 0.0
  for i, j in itertools.product(range(len(v0)), range(len(v1))):
    ax.text(j, i, f"{z[i, j]:.0f}", ha="center", va="center",
            color="white" if z[i, j] < mid else "black", fontsize=9)
  fig.colorbar(im, ax=ax, label="IQM of final return")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  plots.save_figure(fig, path)
  plt.close(fig)
