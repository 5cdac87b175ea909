"""Overlay the learning curves of any set of run folders, and tabulate their
final IQM with 95% intervals.

  python experiments/plot.py DIR1 DIR2 ... --labels=a,b --out=fig.png [--dashed=b]

Each DIR holds metrics.jsonl and summary.json as experiments/train.py and
experiments/sac.py write them. One line per folder: the median over seeds
against environment steps, with a percentile band (--band, 25-75 by default).
The curve is the evaluation returns (`eval_returns` lines of metrics.jsonl,
ending with summary.json's final_returns), or, with --curve=train or where a
run logged no evaluation, the mean return of the training episodes finished
in each chunk (`mean_return`). --dashed draws those folders' final IQM as a
horizontal dashed line, as the paper's Fig. 4 does for SAC and DDPG at 1e6.
Writes the PNG and a markdown table (--table, by default beside the PNG) and
prints the table.
"""

from __future__ import annotations

import os
import warnings

from absl import flags
import numpy as np

import cli

flags.DEFINE_list("labels", None, "One legend label per folder (default: folder names).")
flags.DEFINE_string("out", "runs/overlay.png", "The PNG to write.")
flags.DEFINE_string("table", None, "The markdown table to write (default: --out with .md).")
flags.DEFINE_string("title", "", "Figure title.")
flags.DEFINE_enum("curve", "auto", ["auto", "eval", "train"],
                  "auto: evaluation returns where the run logged them, else training returns.")
flags.DEFINE_list("band", ["25", "75"], "Lower and upper percentile over seeds of the band.")
flags.DEFINE_list("dashed", [], "Labels whose final IQM is drawn as a horizontal dashed line.")
FLAGS = flags.FLAGS
FIGURES = (".png", ".pdf", ".svg")  # what matplotlib's savefig writes


def load_run(folder: str):
  """(metrics lines, summary) of one run folder; one line and exit 2 for a
  file that is empty, cut off or not what the drivers write."""
  lines = cli.read_jsonl(os.path.join(folder, "metrics.jsonl"), need=("step",))
  summary = cli.read_json(os.path.join(folder, "summary.json"))
  return lines, summary


def curve(lines, summary, kind: str = "auto"):
  """steps [T], returns [S, T] (NaN where a seed has no value), and the kind
  used ("eval" or "train")."""
  if kind == "auto":
    kind = "eval" if any("eval_returns" in l for l in lines) else "train"
  if kind == "eval":
    points = [(l["step"], l["eval_returns"]) for l in lines if "eval_returns" in l]
    final_step = summary.get("total_steps")
    if "final_returns" in summary and (not points or points[-1][0] != final_step):
      points.append((final_step, summary["final_returns"]))
  else:
    points = [(l["step"], l["mean_return"]) for l in lines if "mean_return" in l]
  if not points:
    return np.zeros((0,)), np.zeros((0, 0)), kind
  steps = np.array([p[0] for p in points], np.float64)
  values = np.array([[np.nan if v is None else v for v in p[1]] for p in points],
                    np.float64).T  # [S, T]
  return steps, values, kind


def final(lines, summary):
  """(env steps, returns per seed, note) of a run's last evaluation: the
  summary's final one, or for a run stopped early (no final_returns) its
  last logged one, noted as such; None where it has neither."""
  if "final_returns" in summary:
    return summary.get("total_steps", "?"), summary["final_returns"], ""
  evals = [l for l in lines if "eval_returns" in l]
  if not evals:
    return None
  return evals[-1]["step"], evals[-1]["eval_returns"], " (stopped; last evaluation)"


def table(rows) -> str:
  """Markdown table of final IQM and 95% interval, one row per run.
  rows: (label, (env steps, returns per seed, note) or None)."""
  out = ["| run | seeds | env steps | final IQM | 95% interval | final return per seed |",
         "| --- | ---: | ---: | ---: | --- | --- |"]
  for label, fin in rows:
    if fin is None:
      out.append(f"| {label} | | | no evaluation | | |")
      continue
    step, returns, note = fin
    lo, hi = cli.iqm_ci(returns)
    per_seed = ", ".join(f"{r:.0f}" for r in returns)
    out.append(f"| {label} | {len(returns)} | {step}{note} | {cli.iqm(returns):.0f} | "
               f"{lo:.0f} to {hi:.0f} | {per_seed} |")
  return "\n".join(out) + "\n"


def plot(path, runs, band, title="", dashed=()):
  """runs: (label, steps [T], returns [S, T], `final`'s triple or None); one
  coloured line each."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7.5, 4.5))
  for i, (label, steps, values, fin) in enumerate(runs):
    color = f"C{i}"
    if label in dashed:
      if fin is not None:
        ax.axhline(cli.iqm(fin[1]), color=color, ls="--", lw=1.5,
                   label=f"{label}, final IQM at {fin[0]} steps")
      continue
    if not len(steps):
      continue
    with np.errstate(all="ignore"), warnings.catch_warnings():
      warnings.simplefilter("ignore")  # all-NaN columns: no value at that step
      lo, med, hi = np.nanpercentile(values, [band[0], 50, band[1]], axis=0)
    ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(steps, med, color=color, lw=2, label=f"{label} (median of {values.shape[0]})")
  ax.set_xlabel("environment steps")
  ax.set_ylabel("episode return")
  ax.set_title(title or f"median over seeds, {band[0]:g}-{band[1]:g} percentile band",
               fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  cli.save_figure(fig, path)
  plt.close(fig)


def main(argv):
  folders = argv[1:]
  if not folders:
    cli.fail("no run folders given; pass one or more folders with metrics.jsonl and "
             "summary.json.")
  cli.check_out_file(FLAGS.out, "out", FIGURES)
  table_path = FLAGS.table or os.path.splitext(FLAGS.out)[0] + ".md"
  cli.check_out_file(table_path, "table", (".md",))
  for d in folders:
    for name in ("metrics.jsonl", "summary.json"):
      if not os.path.isfile(os.path.join(d, name)):
        cli.fail(f"folder={d!r} is invalid; it has no {name}.")
  labels = FLAGS.labels or [os.path.basename(os.path.normpath(d)) for d in folders]
  if len(labels) != len(folders):
    cli.fail(f"labels={','.join(labels)!r} is invalid; it must name each of the "
             f"{len(folders)} folders.")
  try:
    band = [float(b) for b in FLAGS.band]
  except ValueError:
    band = []
  if len(band) != 2 or not 0 <= band[0] < band[1] <= 100:
    cli.fail(f"band={','.join(FLAGS.band)!r} is invalid; it must be two percentiles "
             "lo,hi with 0 <= lo < hi <= 100.")
  unknown = [d for d in FLAGS.dashed if d not in labels]
  if unknown:
    cli.fail(f"dashed={','.join(FLAGS.dashed)!r} is invalid; allowed: {', '.join(labels)}.")

  runs, rows = [], []
  for label, d in zip(labels, folders):
    lines, summary = load_run(d)
    steps, values, kind = curve(lines, summary, FLAGS.curve)
    fin = final(lines, summary)
    runs.append((label if FLAGS.curve != "auto" or kind == "eval" else f"{label} (train)",
                 steps, values, fin))
    rows.append((label, fin))
  dashed = {runs[labels.index(l)][0] for l in FLAGS.dashed}
  cli.ensure_dir(os.path.dirname(os.path.abspath(FLAGS.out)), "out")
  cli.ensure_dir(os.path.dirname(os.path.abspath(table_path)), "table")
  plot(FLAGS.out, runs, band, FLAGS.title, dashed)
  md = table(rows)
  with open(table_path, "w") as f:
    f.write(md)
  print(md, end="")
  print(f"wrote {FLAGS.out}, {table_path}")


if __name__ == "__main__":
  cli.run(main, backend=False)
