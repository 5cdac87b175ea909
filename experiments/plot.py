"""Overlay the learning curves of any set of run folders, and tabulate their
final IQM with 95% intervals.

  python experiments/plot.py DIR1 DIR2 ... --labels=a,b --out=fig.png [--dashed=b]
  python experiments/plot.py GROUP1+GROUP2+GROUP3 ...     # seed groups pooled as one run

Each DIR holds metrics.jsonl and summary.json as experiments/train.py and
experiments/sac.py write them. One line per folder: the median over seeds
against environment steps, with a percentile band (--band, 25-75 by default).
The curve is the evaluation returns (`eval_returns` lines of metrics.jsonl,
ending with summary.json's final_returns), or, with --curve=train or where a
run logged no evaluation, the mean return of the training episodes finished
in each chunk (`mean_return`). --dashed draws those folders' final IQM as a
horizontal dashed line, as the paper's Fig. 4 does for SAC and DDPG at 1e6.
--reference="LABEL=VALUE" (repeatable) draws a published figure (for example
CleanRL's SAC at 1M steps) as a grey dashed line, named in the legend and the
table.

--curve=paper draws the authors' statistic (their plotting/wandb_*_plot.py):
each seed's training-episode return held at every env step until its next
episode ends, the median and the 20th/80th percentiles over seeds at each
step, each smoothed by a trailing --window (5000) step moving average, read
every --window steps; --dashed then draws a run's last value of that median,
and the table adds each run's last median with its 20-80% band. It also writes
each seed's own figures beside the table (`<table>_seeds.md`): its moving
average at the end, its highest (and where), the first step it reaches
--first_past (when given), and its final evaluation return.
A run that logged no training episodes (brax's SAC) holds its evaluation
returns instead. Arguments ending in .log are seeds of the authors' code
(experiments/authors/run.sh), drawn together as one more run, "authors".
Writes the PNG and a markdown table (--table, by default beside the PNG) and
prints the table.
"""

from __future__ import annotations

import os
import re
import warnings

from absl import flags
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import files, stats, plots

@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_list("labels", None, "One legend label per folder (default: folder names).")
  flags.DEFINE_string("out", "runs/overlay.png", "The PNG to write.")
  flags.DEFINE_string("table", None, "The markdown table to write (default: --out with .md).")
  flags.DEFINE_string("title", "", "Figure title.")
  flags.DEFINE_enum("curve", "auto", ["auto", "eval", "train", "paper"],
                    "auto: evaluation returns where the run logged them, else training returns; "
                    "paper: the authors' smoothed training-return statistic.")
  flags.DEFINE_list("band", None, "Lower and upper percentile over seeds of the band "
                    "(default 25,75; with --curve=paper 20,80, the authors').")
  flags.DEFINE_integer("window", 5000, "With --curve=paper: the moving average's env steps.")
  flags.DEFINE_list("dashed", [], "Labels whose final IQM is drawn as a horizontal dashed line.")
  flags.DEFINE_float("first_past", None, "With --curve=paper: the per-seed table gives the "
                     "first step each seed's moving average reaches this return.")
  flags.DEFINE_multi_string("reference", [], "LABEL=VALUE: a published return drawn as a grey "
                            "dashed line (repeatable).")


FLAGS = flags.FLAGS
FIGURES = (".png", ".pdf", ".svg")  # what matplotlib's savefig writes


def load_run(folder: str):
  """(metrics lines, summary) of one run folder, or of seed groups pooled as
  one run ("DIR1+DIR2+...", see `pool`); one line and exit 2 for a file that
  is empty, cut off or not what the drivers write."""
  loaded = []
  for part in folder.split("+"):
    lines = files.read_jsonl(os.path.join(part, "metrics.jsonl"), need=("step",))
    loaded.append((lines, files.read_json(os.path.join(part, "summary.json"))))
  return loaded[0] if len(loaded) == 1 else pool(folder, loaded)


def pool(name: str, loaded):
  """Seed groups of one configuration (the same config, other seeds: the
  Hopper study runs a few seeds per session) as one run: each metrics line
  at a step every group logged, its per-seed lists joined in group order;
  the final returns joined where every group has them (else left out, so
  the groups' last common evaluation stands for them)."""
  summaries = [s for _, s in loaded]
  configs = [s.get("config") for s in summaries]
  if any(c != configs[0] for c in configs[1:]):
    differ = sorted(k for k in configs[0] if any(c.get(k) != configs[0][k] for c in configs[1:]))
    cli.fail(f"{name!r}: the seed groups ran different configurations ({', '.join(differ)}); "
             "only groups of one configuration pool.")
  by_step = [{l["step"]: l for l in lines} for lines, _ in loaded]
  lines = []
  for step in sorted(set.intersection(*(set(b) for b in by_step))):
    rows = [b[step] for b in by_step]
    line = dict(step=step)
    for key in rows[0]:
      if key != "step" and all(isinstance(r.get(key), list) for r in rows):
        line[key] = [v for r in rows for v in r[key]]
    lines.append(line)
  summary = dict(summaries[0], seeds=sum(s.get("seeds", 0) for s in summaries),
                 total_steps=min(s.get("total_steps", 0) for s in summaries))
  summary.pop("final_returns", None)
  if all("final_returns" in s for s in summaries):
    summary["final_returns"] = [r for s in summaries for r in s["final_returns"]]
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


def held(episodes, end: int) -> np.ndarray:
  """[end] the return of the last episode ended at or before each env step
  1..end (before the first: the first's), from episodes [(end step, return)]."""
  steps = np.array([t for t, _ in episodes], np.int64)
  returns = np.array([r for _, r in episodes], np.float64)
  order = np.argsort(steps, kind="stable")
  steps, returns = steps[order], returns[order]
  i = np.searchsorted(steps, np.arange(1, end + 1), side="right") - 1
  return returns[np.maximum(i, 0)]


def paper_curve(seed_episodes, end: int, window: int):
  """The authors' statistic: steps [K] (window, 2 window, .. <= end) and
  (20th percentile, median, 80th percentile) [3, K] over seeds of the held
  returns, each a trailing `window`-step moving average.
  seed_episodes: one [(end step, return)] list per seed (none empty)."""
  per_step = np.stack([held(e, end) for e in seed_episodes])  # [S, end]
  bands = np.percentile(per_step, [20, 50, 80], axis=0, method="midpoint")  # [3, end]
  sums = np.concatenate([np.zeros((3, 1)), np.cumsum(bands, axis=1)], axis=1)  # [3, end + 1]
  steps = np.arange(window, end + 1, window)  # each the mean over steps (t - window, t]
  return steps, (sums[:, steps] - sums[:, steps - window]) / window


def episodes_of(folder, lines, summary):
  """Per seed [(end step, return)] and the last step: training episodes, or
  for a run that logged none (brax's SAC) its evaluation returns. Pooled
  groups ("DIR1+DIR2"): their seeds joined, up to the step all reached."""
  seeds = ([s for part in folder.split("+") for s in stats.our_episodes(part)]
           if any("episode_returns" in l for l in lines) else [])
  if seeds and all(e for e, _ in seeds):
    end = min(last for _, last in seeds)
    return [[(t, r) for t, r in e if t <= end] for e, _ in seeds], end
  steps, values, _ = curve(lines, summary, "eval")
  return [[(int(t), v) for t, v in zip(steps, row) if np.isfinite(v)] for row in values], \
      int(steps[-1]) if len(steps) else 0


def per_seed(seed_episodes, end: int, window: int, past=None):
  """Each seed's own trailing `window`-step average of its held returns, read
  every `window` steps as `paper_curve` reads the median: (the last value,
  (the highest, its step), the first step it is >= `past` or None), or None
  for a seed with no episode or a run shorter than one window."""
  steps = np.arange(window, end + 1, window)  # [K]
  out = []
  for episodes in seed_episodes:
    if not episodes or not len(steps):
      out.append(None)
      continue
    sums = np.concatenate([[0.0], np.cumsum(held(episodes, end))])  # [end + 1]
    average = (sums[steps] - sums[steps - window]) / window  # [K]
    best = int(np.argmax(average))
    reached = np.flatnonzero(average >= past) if past is not None else []
    out.append((float(average[-1]), (float(average[best]), int(steps[best])),
                int(steps[reached[0]]) if len(reached) else None))
  return out


def seed_names(folder) -> list:
  """Each seed's number in a run folder, or in seed groups joined by "+": its
  group's base seed (summary.json's `seed`, else the folder name's `sN` ending that
  the make targets give) plus its place in the group; else "#i" in the run."""
  names = []
  for part in folder.split("+"):
    summary = files.read_json(os.path.join(part, "summary.json"))
    base = summary.get("seed")
    if base is None:
      match = re.search(r"(?:^|_)s(\d+)$", os.path.basename(os.path.normpath(part)))
      base = int(match.group(1)) if match else None
    count = summary.get("seeds", 1)
    names += [f"#{len(names) + i}" if base is None else str(base + i) for i in range(count)]
  return names


def seed_table(seed_rows, window: int, past=None) -> str:
  """Markdown: one row per seed of each run. seed_rows: (label, seed names,
  `per_seed` of its seeds, final returns per seed or None)."""
  head = (f"| run | seed | its {window}-step average at the end | its highest (at step) |"
          + (f" first step it reaches {past:g} |" if past is not None else "")
          + " final evaluation return |")
  out = [head, "| --- | --- | ---: | ---: |" + (" ---: |" if past is not None else "") + " ---: |"]
  for label, names, figures, finals in seed_rows:
    for i, fig in enumerate(figures):
      name = names[i] if i < len(names) else f"#{i}"
      last = ret = first = best = ""
      if fig is not None:
        last, best = f"{fig[0]:.0f}", f"{fig[1][0]:.0f} ({fig[1][1]})"
        first = "not reached" if fig[2] is None else str(fig[2])
      if finals is not None and i < len(finals):
        ret = f"{finals[i]:.0f}"
      out.append(f"| {label} | {name} | {last} | {best} |"
                 + (f" {first} |" if past is not None else "") + f" {ret} |")
  return "\n".join(out) + "\n"


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


def table(rows, smoothed=None, window=5000, references=(), dashed=()) -> str:
  """Markdown table of final IQM and 95% interval, one row per run.
  rows: (label, (env steps, returns per seed, note) or None). smoothed: per
  label, (step, 20th percentile, median, 80th percentile) of the authors'
  statistic at its last step, or None (a column when given). references:
  (label, value) published figures, listed under the table. dashed: the
  labels drawn as a dashed line at their last value, named under it."""
  head = "| run | seeds | env steps | final IQM | 95% interval | final return per seed |"
  rule = "| --- | ---: | ---: | ---: | --- | --- |"
  if smoothed is not None:
    head += f" training return, {window}-step moving average: median (20-80%) at step |"
    rule += " --- |"
  out = [head, rule]
  for label, fin in rows:
    extra = ""
    if smoothed is not None:
      m = smoothed.get(label)
      extra = " |" if m is None else f" {m[2]:.0f} ({m[1]:.0f} to {m[3]:.0f}) at {m[0]} |"
    if fin is None:
      out.append(f"| {label} | | | no evaluation | | |{extra}")
      continue
    step, returns, note = fin
    lo, hi = stats.iqm_ci(returns)
    per_seed = ", ".join(f"{r:.0f}" for r in returns)
    out.append(f"| {label} | {len(returns)} | {step}{note} | {stats.iqm(returns):.0f} | "
               f"{lo:.0f} to {hi:.0f} | {per_seed} |{extra}")
  if dashed:
    out += ["", "Drawn as a dashed line at its last value: " + ", ".join(dashed) + "."]
  if references:
    out += ["", "Published figures drawn dashed: " +
            "; ".join(f"{label}: {value:g}" for label, value in references) + "."]
  return "\n".join(out) + "\n"


def plot(path, runs, title="", dashed=(), ylabel="episode return", references=()):
  """runs: (label, steps [T], (low, median, high) [3, T], seeds, the dashed
  line's (value, legend text) or None); one coloured line and band each.
  references: (label, value), grey dashed lines."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7.5, 4.5))
  for i, (label, steps, (lo, med, hi), seeds, line) in enumerate(runs):
    color = f"C{i}"
    if label in dashed:
      if line is not None:
        ax.axhline(line[0], color=color, ls="--", lw=1.5, label=f"{label}, {line[1]}")
      continue
    if not len(steps):
      continue
    ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)
    ax.plot(steps, med, color=color, lw=2, label=f"{label} (median of {seeds})")
  for j, (label, value) in enumerate(references):
    ax.axhline(value, color="0.45", ls=("--", ":", "-.")[j % 3], lw=1.2, label=label)
  ax.set_xlabel("environment steps")
  ax.set_ylabel(ylabel)
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  plots.save_figure(fig, path)
  plt.close(fig)


def percentile_bands(values, band):
  """(low, median, high) [3, T] over seeds of values [S, T], ignoring NaN."""
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # all-NaN columns: no value at that step
    return np.nanpercentile(values, [band[0], 50, band[1]], axis=0)


def main(argv):
  logs = sorted(a for a in argv[1:] if a.endswith(".log"))
  folders = [a for a in argv[1:] if not a.endswith(".log")]
  if logs and FLAGS.curve != "paper":
    cli.fail(f"{logs[0]!r}: the authors' logs are drawn only with --curve=paper.")
  for log in logs:
    if not os.path.isfile(log):
      cli.fail(f"{log!r} is invalid; it is not a file.")
  if not folders and not logs:
    cli.fail("no run folders given; pass one or more folders with metrics.jsonl and "
             "summary.json.")
  files.check_out_file(FLAGS.out, "out", FIGURES)
  table_path = FLAGS.table or os.path.splitext(FLAGS.out)[0] + ".md"
  files.check_out_file(table_path, "table", (".md",))
  seeds_path = os.path.splitext(table_path)[0] + "_seeds.md"
  if FLAGS.curve == "paper":
    files.check_out_file(seeds_path, "table", (".md",))
  elif FLAGS.first_past is not None:
    cli.fail(f"first_past={FLAGS.first_past:g} is invalid without --curve=paper; it reads "
             "the authors' moving average.")
  for d in folders:
    for part in d.split("+"):
      for name in ("metrics.jsonl", "summary.json"):
        if not os.path.isfile(os.path.join(part, name)):
          cli.fail(f"folder={part!r} is invalid; it has no {name}.")
  labels = FLAGS.labels or ["+".join(os.path.basename(os.path.normpath(p)) for p in d.split("+"))
                            for d in folders]
  if len(labels) != len(folders):
    cli.fail(f"labels={','.join(labels)!r} is invalid; it must name each of the "
             f"{len(folders)} folders.")
  paper = FLAGS.curve == "paper"
  band_flag = FLAGS.band or (["20", "80"] if paper else ["25", "75"])
  try:
    band = [float(b) for b in band_flag]
  except ValueError:
    band = []
  if len(band) != 2 or not 0 <= band[0] < band[1] <= 100:
    cli.fail(f"band={','.join(band_flag)!r} is invalid; it must be two percentiles "
             "lo,hi with 0 <= lo < hi <= 100.")
  if paper and band != [20.0, 80.0]:
    cli.fail(f"band={','.join(band_flag)!r} is invalid with --curve=paper; the authors' "
             "statistic is the 20,80 band.")
  if FLAGS.window < 1:
    cli.fail(f"window={FLAGS.window} is invalid; it must be an integer >= 1.")
  references = []
  for ref in FLAGS.reference:
    label, _, value = ref.rpartition("=")
    try:
      references.append((label, float(value)))
    except ValueError:
      label = ""
    if not label:
      cli.fail(f"reference={ref!r} is invalid; it must be LABEL=VALUE, e.g. "
               "'SAC, CleanRL at 1M=2310'.")
  unknown = [d for d in FLAGS.dashed if d not in labels]
  if unknown:
    cli.fail(f"dashed={','.join(FLAGS.dashed)!r} is invalid; allowed: {', '.join(labels)}.")

  runs, rows, smoothed, seed_rows = [], [], {}, []
  for label, d in zip(labels, folders):
    lines, summary = load_run(d)
    fin = final(lines, summary)
    rows.append((label, fin))
    if paper:
      seeds, end = episodes_of(d, lines, summary)
      runs.append(paper_run(label, seeds, end))
      seed_rows.append((label, seed_names(d), per_seed(seeds, end, FLAGS.window, FLAGS.first_past),
                        None if fin is None else fin[1]))
      _, steps, (lo, med, hi), _, _ = runs[-1]
      smoothed[label] = (int(steps[-1]), lo[-1], med[-1], hi[-1]) if len(steps) else None
      continue
    steps, values, kind = curve(lines, summary, FLAGS.curve)
    line = None if fin is None else (stats.iqm(fin[1]), f"final IQM at {fin[0]} steps")
    runs.append((label if FLAGS.curve != "auto" or kind == "eval" else f"{label} (train)",
                 steps, percentile_bands(values, band), values.shape[0], line))
  if logs:
    seeds = [stats.authors_episodes(log) for log in logs]
    end = min(end for _, end in seeds)
    runs.append(paper_run("authors", [e for e, _ in seeds], end))
    seed_rows.append(("authors", [os.path.basename(log) for log in logs],
                      per_seed([e for e, _ in seeds], end, FLAGS.window, FLAGS.first_past), None))
  dashed = {runs[labels.index(l)][0] for l in FLAGS.dashed}
  files.ensure_dir(os.path.dirname(os.path.abspath(FLAGS.out)), "out")
  files.ensure_dir(os.path.dirname(os.path.abspath(table_path)), "table")
  title = FLAGS.title or (
      f"training return, {FLAGS.window}-step moving average: median, 20-80% over seeds"
      if paper else f"median over seeds, {band[0]:g}-{band[1]:g} percentile band")
  plot(FLAGS.out, runs, title, dashed,
       "training episode return (held, smoothed)" if paper else "episode return", references)
  md = table(rows, smoothed if paper else None, FLAGS.window, references,
             [l for l in labels if l in FLAGS.dashed])
  with open(table_path, "w") as f:
    f.write(md)
  print(md, end="")
  if paper:
    with open(seeds_path, "w") as f:
      f.write(seed_table(seed_rows, FLAGS.window, FLAGS.first_past))
  print(f"wrote {FLAGS.out}, {table_path}" + (f", {seeds_path}" if paper else ""))


def paper_run(label, seed_episodes, end):
  """A `plot` run of the authors' statistic; seeds with no episode are left out."""
  seed_episodes = [e for e in seed_episodes if e]
  if not seed_episodes or end < FLAGS.window:
    return label, np.zeros((0,)), np.zeros((3, 0)), len(seed_episodes), None
  steps, (lo, med, hi) = paper_curve(seed_episodes, end, FLAGS.window)
  return label, steps, (lo, med, hi), len(seed_episodes), (
      med[-1], f"smoothed median at {steps[-1]} steps")


if __name__ == "__main__":
  cli.run(main, define_flags, backend=False)
