"""Fig. 2 in the paper's style, and its table, from the runs of fig2.sh.

  python experiments/studies/fig2_plot.py --dir=results/fig2

One panel per configuration (columns: warm, cold; rows: ensemble, one
model): the median over seeds of the training-episode return against env
steps (each seed's last finished episode), the 20-80th percentiles over
seeds shaded as in the authors' plots, and min-max lighter. The table: final evaluation returns per seed, their IQM with a 95%
bootstrap interval over seeds, and the training episodes of the last 5k
steps. Writes DIR/fig2.png, DIR/table.md and DIR/fig2.json.
"""

from __future__ import annotations

import json
import os
import warnings

from absl import flags
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import files

@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_string("dir", "results/fig2", "The study's folder (fig2.sh's OUT).")
  flags.DEFINE_integer("window", 5000, "Final window of env steps for training returns.")


FLAGS = flags.FLAGS

PANELS = (("warm_ensemble", "warm start, ensemble"), ("cold_ensemble", "cold start, ensemble"),
          ("warm_one", "warm start, one model"), ("cold_one", "cold start, one model"))
BEST = 9000.0  # The paper's bar for a balanced episode (best possible ~9.36k).


def load(run_dir):
  """(steps [T], per-seed held returns [S, T], episodes [(step, seed, return)],
  summary or None) of one configuration; None if it has not started."""
  path = os.path.join(run_dir, "metrics.jsonl")
  if not os.path.exists(path):
    return None
  lines = [json.loads(l) for l in open(path) if l.strip()]
  steps = np.array([l["step"] for l in lines])
  seeds = len(lines[0]["episode_returns"])
  held, last, episodes = np.full((seeds, len(lines)), np.nan), np.full(seeds, np.nan), []
  for t, l in enumerate(lines):
    for s, returns in enumerate(l["episode_returns"]):
      episodes += [(l["step"], s, r) for r in returns]
      if returns:
        last[s] = returns[-1]
    held[:, t] = last
  summary_path = os.path.join(run_dir, "summary.json")
  summary = json.load(open(summary_path)) if os.path.exists(summary_path) else None
  return steps, held, episodes, summary


def row(name, label, data, window):
  steps, _, episodes, summary = data
  end = steps[-1]
  recent = [r for step, _, r in episodes if step > end - window]
  out = dict(config=name, label=label, steps=int(end), seeds=len(data[1]),
             train_median_last=float(np.median(recent)) if recent else None,
             train_episodes_last=len(recent),
             train_episodes_best_last=int(np.sum(np.array(recent) >= BEST)))
  if summary:
    out.update(final_returns=summary["final_returns"], iqm=summary["final_return_iqm"],
               iqm_ci95=summary["final_return_iqm_ci95"])
  return out


def plot(path, runs):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharex=True, sharey=True)
  for ax, (name, label) in zip(axes.ravel(), PANELS):
    data = runs.get(name)
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
    ax.axhline(BEST, color="k", ls="--", lw=0.8)
    if data is None:
      ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
      continue
    steps, held, _, _ = data
    with np.errstate(all="ignore"), warnings.catch_warnings():
      warnings.simplefilter("ignore")  # chunks before a seed's first episode: all NaN
      q = np.nanpercentile(held, [0, 20, 50, 80, 100], axis=0)
    ax.fill_between(steps, q[0], q[4], alpha=0.15, color="C0", lw=0)
    ax.fill_between(steps, q[1], q[3], alpha=0.3, color="C0", lw=0)
    ax.plot(steps, q[2], color="C0", lw=2, label=f"median of {len(held)} seeds")
    ax.legend(loc="lower right", fontsize=8)
  for ax in axes[1]:
    ax.set_xlabel("environment steps")
  for ax in axes[:, 0]:
    ax.set_ylabel("training episode return")
  fig.suptitle("softMPCritic, double pendulum (Gymnasium v5 on MJX): warm/cold targets x ensemble/one model",
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def table(rows, window):
  head = ("| configuration | seeds | steps | final eval returns | IQM (95% CI) | "
          f"median train return, last {window // 1000}k | train episodes >= 9000, last {window // 1000}k |\n"
          "| --- | --- | --- | --- | --- | --- | --- |\n")
  lines = []
  for r in rows:
    if "iqm" in r:
      final = ", ".join(f"{x:.0f}" for x in r["final_returns"])
      iqm = f"{r['iqm']:.0f} ({r['iqm_ci95'][0]:.0f}-{r['iqm_ci95'][1]:.0f})"
    else:
      final, iqm = "(not finished)", "-"
    med = "-" if r["train_median_last"] is None else f"{r['train_median_last']:.0f}"
    lines.append(f"| {r['label']} | {r['seeds']} | {r['steps']} | {final} | {iqm} | {med} | "
                 f"{r['train_episodes_best_last']} of {r['train_episodes_last']} |")
  return head + "\n".join(lines) + "\n"


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; this script takes only flags.")
  if not os.path.isdir(FLAGS.dir):
    cli.fail(f"dir={FLAGS.dir!r} is not a folder; point it at fig2.sh's OUT.")
  runs = {name: load(os.path.join(FLAGS.dir, name)) for name, _ in PANELS}
  runs = {k: v for k, v in runs.items() if v is not None}
  if not runs:
    cli.fail(f"dir={FLAGS.dir!r} holds none of {', '.join(n for n, _ in PANELS)}.")
  rows = [row(name, label, runs[name], FLAGS.window) for name, label in PANELS if name in runs]
  plot(os.path.join(FLAGS.dir, "fig2.png"), runs)
  md = table(rows, FLAGS.window)
  with open(os.path.join(FLAGS.dir, "table.md"), "w") as f:
    f.write(md)
  files.write_json(os.path.join(FLAGS.dir, "fig2.json"), rows)
  print(md, end="")
  print(f"wrote {FLAGS.dir}/fig2.png, table.md, fig2.json")


if __name__ == "__main__":
  cli.run(main, define_flags, backend=False)
