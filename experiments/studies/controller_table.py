"""The deployed controllers' table (issue 30) from the reports that
`python -m experiments.export --gymnasium_episodes=N --latency_actions=M`
writes (`make controller` writes two per run, float32 and bfloat16):

  python -m experiments.studies.controller_table --dir=results/controller [--out=FILE.md]

One row per report: returns in Gymnasium's env and in MJX evaluation of the
same checkpoint (median; IQM with its 95% bootstrap interval), the
Mann-Whitney p of the two, the time per action at batch 1 (median, p99),
and the control rate the p99 sustains beside the env's own.
"""

from __future__ import annotations

import glob
import os

from absl import flags

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import files


@cli.once
def define_flags():
  flags.DEFINE_string("dir", "results/controller", "The reports' folder (make controller's).")
  flags.DEFINE_string("out", "", "The table to write (default: DIR/table.md).")


FLAGS = flags.FLAGS


def returns_cell(r: dict) -> str:
  lo, hi = r["iqm_ci95"]
  return f"{r['median']:.0f} ({r['iqm']:.0f}, {lo:.0f} to {hi:.0f})"


def row(name: str, report: dict) -> str:
  ret, lat = report.get("returns"), report.get("latency")
  cells = [name, report["compute_dtype"], str(report["controller"]["step"])]
  if ret:
    cells += [str(ret["episodes"]), returns_cell(ret["gymnasium"]), returns_cell(ret["mjx"]),
              f"{ret['mann_whitney_p']:.2g}"]
  else:
    cells += ["", "", "", ""]
  if lat:
    period = lat["control_period_s"]
    cells += [f"{lat['median_s'] * 1e3:.2f}", f"{lat['p99_s'] * 1e3:.2f}",
              f"{1 / lat['p99_s']:.0f} Hz", f"{1 / period:.0f} Hz ({period * 1e3:g} ms)",
              "yes" if lat["p99_s"] < period else "no",
              f"{lat['over_period']} of {lat['actions']}" if "over_period" in lat
              else "not recorded"]
  else:
    cells += ["", "", "", "", "", ""]
  return "| " + " | ".join(cells) + " |"


def table(reports: dict) -> str:
  head = ("| controller | products | step | episodes | Gymnasium: median (IQM, 95% CI) | "
          "MJX: median (IQM, 95% CI) | Mann-Whitney p | latency median (ms) | p99 (ms) | "
          "rate at p99 | env's rate (period) | keeps up at p99 | actions over the period |")
  lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
  lines += [row(name, r) for name, r in sorted(reports.items())]
  some = next(iter(reports.values()))
  lines += ["", f"CPU: {some.get('cpu', '?')}, {some.get('cores', '?')} cores; latency from an "
            f"observation in numpy to the action in numpy, one action at a time, each plan "
            f"warm-started from the last. Commands: each report's `command` (and command.txt)."]
  return "\n".join(lines) + "\n"


def main(argv):
  cli.no_positional(argv)
  reports = {}
  for path in sorted(glob.glob(os.path.join(FLAGS.dir, "*.json"))):
    report = files.read_json(path, "dir")
    if "compute_dtype" in report and "controller" in report:
      reports[os.path.splitext(os.path.basename(path))[0]] = report
  if not reports:
    cli.fail(f"dir={FLAGS.dir!r} holds no controller reports (NAME.json, written by "
             f"python -m experiments.export with --gymnasium_episodes or --latency_actions).")
  text = table(reports)
  path = FLAGS.out or os.path.join(FLAGS.dir, "table.md")
  with files.atomic(path) as tmp, open(tmp, "w") as f:
    f.write(text)
  print(text, end="")
  print(f"wrote {path}")


if __name__ == "__main__":
  cli.run(main, define_flags, backend=False)
