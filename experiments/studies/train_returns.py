"""Training-episode returns of runs, ours and the authors' code, side by side.

  python experiments/studies/train_returns.py results/choices50k/ours \
      results/authors/seed*.log --out=results/authors/table.md

A folder is one of our runs (its metrics.jsonl: every seed's finished
episodes per chunk); a .log file is one seed of the authors' code
(experiments/authors/run.sh: "global_step=N, episodic_return=R" lines). Runs
are grouped by label: a folder's name, or "authors" for the logs. Per group
and seed: the first episode >= 9000 (the paper's bar for a balanced
pendulum), and over the last WINDOW env steps of the run the median return
and the count of episodes >= 9000. Then, per group, the seeds' medians with
their IQM and 95% bootstrap interval. Both codes log an episode at the env
step where it ends, so the windows mean the same in both.
"""

from __future__ import annotations

import os

from absl import flags
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import files, stats

@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_string("out", None, "Markdown table to write (and .json beside it).")
  flags.DEFINE_integer("window", 5000, "Final window of env steps.")
  flags.DEFINE_string("labels", None, "Labels for the folders, comma separated (default: names).")


FLAGS = flags.FLAGS


def main(argv):
  paths = argv[1:]
  if not paths:
    cli.fail("give one or more run folders or authors' .log files.")
  if FLAGS.window < 1:
    cli.fail(f"window={FLAGS.window} is invalid; it must be an integer >= 1 (env steps).")
  if FLAGS.out:
    files.check_out_file(FLAGS.out, "out", (".md",))
  for p in paths:
    if not (os.path.isfile(os.path.join(p, "metrics.jsonl")) or (p.endswith(".log") and os.path.isfile(p))):
      cli.fail(f"{p!r} is neither a run folder with metrics.jsonl nor an authors' .log file.")
  folders = [p for p in paths if not p.endswith(".log")]
  labels = FLAGS.labels.split(",") if FLAGS.labels else [os.path.basename(p.rstrip("/")) for p in folders]
  if len(labels) != len(folders):
    cli.fail(f"labels has {len(labels)} names for {len(folders)} folders.")
  groups = {label: [stats.seed_returns(e, end, FLAGS.window) for e, end in stats.our_episodes(f)]
            for label, f in zip(labels, folders)}
  logs = sorted(p for p in paths if p.endswith(".log"))
  if logs:
    groups["authors"] = [stats.seed_returns(*stats.authors_episodes(p), FLAGS.window) for p in logs]
  w = f"{FLAGS.window / 1000:g}"
  md = (f"| code | seeds | steps | first episode >= 9000, per seed | median return, last {w}k, per seed "
        f"| IQM of those (95% CI) | median of all seeds' episodes, last {w}k "
        f"| episodes >= 9000, last {w}k |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n")
  out = {}
  for label, rows in groups.items():
    meds = [r["median_last"] for r in rows if r["median_last"] is not None]
    iqm = stats.iqm(meds) if meds else None
    ci = stats.iqm_ci(meds) if meds else None
    first = ", ".join("-" if r["first_best"] is None else f"{r['first_best'] / 1000:.0f}k" for r in rows)
    med = ", ".join("-" if r["median_last"] is None else f"{r['median_last']:.0f}" for r in rows)
    ends = sorted({r["end"] for r in rows})
    pooled = [x for r in rows for x in r["returns_last"]]
    pooled = f"{np.median(pooled):.0f}" if pooled else "-"
    md += (f"| {label} | {len(rows)} | {', '.join(map(str, ends))} | {first} | {med} | "
           f"{'-' if iqm is None else f'{iqm:.0f} ({ci[0]:.0f}-{ci[1]:.0f})'} | {pooled} | "
           f"{sum(r['best_last'] for r in rows)} of {sum(r['episodes_last'] for r in rows)} |\n")
    out[label] = dict(median_all_last=None if pooled == "-" else float(pooled), seeds=rows, iqm_median_last=iqm, iqm_ci95=ci)
  print(md, end="")
  if FLAGS.out:
    files.ensure_dir(os.path.dirname(os.path.abspath(FLAGS.out)), "out")
    with open(FLAGS.out, "w") as f:
      f.write(md)
    files.write_json(os.path.splitext(FLAGS.out)[0] + ".json", out)
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main, define_flags, backend=False)
