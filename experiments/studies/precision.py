"""Does learning hold with bfloat16 products in the planners (issue 31)?
Two comparisons, printed as markdown and written as JSON:

  python -m experiments.studies.precision --idp=RUN:REF --hopper=RUN:REF1,REF2 \
      [--window=10000] [--out=results/mixed_precision.json]

--idp: a pendulum run folder and its float32 reference; holds if the run's
final-evaluation IQM lies inside the reference's 95% bootstrap interval.
--hopper: a Hopper run folder and float32 reference folders; per window of
--window env steps, each seed's median training-episode return; holds in a
window if the run's median over its seeds lies inside the spread (lowest to
highest) of the reference seeds' medians. Windows past either side's last
step are left out.
"""

from __future__ import annotations

import json
import os

from absl import flags
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import stats


@cli.once
def define_flags():
  flags.DEFINE_string("idp", "", "RUN:REF, two run folders (summary.json in each).")
  flags.DEFINE_string("hopper", "", "RUN:REF1,REF2,... run folders (metrics.jsonl in each).")
  flags.DEFINE_integer("window", 10_000, "Env steps per window of training returns.")
  flags.DEFINE_string("out", "", "JSON file for the comparison (optional).")


FLAGS = flags.FLAGS


def _folders(spec: str, name: str) -> tuple[str, list]:
  run, sep, refs = spec.partition(":")
  if not sep or not run or not refs:
    cli.fail(f"{name}={spec!r} is invalid; give RUN:REF[,REF...] (run folders).")
  refs = refs.split(",")
  for folder in [run] + refs:
    if not os.path.isdir(folder):
      cli.fail(f"{name}: {folder!r} is not a folder.")
  return run, refs


def idp_comparison(run: str, ref: str) -> dict:
  """The run's final-evaluation IQM against the reference's 95% interval."""
  mine, theirs = (json.load(open(os.path.join(f, "summary.json"))) for f in (run, ref))
  lo, hi = theirs["final_return_iqm_ci95"]
  got = mine["final_return_iqm"]
  return dict(run=run, reference=ref, iqm=got, iqm_ci95=mine["final_return_iqm_ci95"],
              final_returns=mine["final_returns"], reference_iqm=theirs["final_return_iqm"],
              reference_ci95=[lo, hi], reference_final_returns=theirs["final_returns"],
              holds=bool(lo <= got <= hi))


def window_medians(folder: str, window: int) -> tuple[list, int]:
  """Per seed, the median training-episode return of each window (NaN where
  a window has no episode), and the last step the run logged."""
  seeds = stats.our_episodes(folder)
  end = seeds[0][1]
  out = []
  for episodes, _ in seeds:
    meds = []
    for a in range(0, end - window + 1, window):
      r = [ret for s, ret in episodes if a < s <= a + window]
      meds.append(float(np.median(r)) if r else float("nan"))
    out.append(meds)
  return out, end


def hopper_comparison(run: str, refs: list, window: int) -> dict:
  mine, _ = window_medians(run, window)
  theirs = [seed for ref in refs for seed in window_medians(ref, window)[0]]
  n = min(len(mine[0]), min(len(s) for s in theirs))
  rows = []
  for w in range(n):
    ours = float(np.nanmedian([s[w] for s in mine]))
    lo, hi = (float(f([s[w] for s in theirs])) for f in (np.nanmin, np.nanmax))
    rows.append(dict(steps=[w * window, (w + 1) * window], median=ours,
                     seeds=[s[w] for s in mine], reference_spread=[lo, hi],
                     reference_seeds=[s[w] for s in theirs], holds=bool(lo <= ours <= hi)))
  return dict(run=run, references=refs, window=window, windows=rows,
              holds=bool(rows) and all(r["holds"] for r in rows))


def main(argv):
  cli.no_positional(argv)
  result = {}
  if FLAGS.idp:
    run, refs = _folders(FLAGS.idp, "idp")
    c = result["idp"] = idp_comparison(run, refs[0])
    print(f"idp: IQM {c['iqm']:.0f} (95% CI {c['iqm_ci95'][0]:.0f}-{c['iqm_ci95'][1]:.0f}); "
          f"float32 reference IQM {c['reference_iqm']:.0f}, 95% CI "
          f"{c['reference_ci95'][0]:.0f}-{c['reference_ci95'][1]:.0f}: "
          f"{'inside' if c['holds'] else 'OUTSIDE'}")
  if FLAGS.hopper:
    run, refs = _folders(FLAGS.hopper, "hopper")
    c = result["hopper"] = hopper_comparison(run, refs, FLAGS.window)
    print("| env steps | median over seeds (per seed) | float32 seeds' spread | inside |")
    print("| --- | ---: | ---: | :---: |")
    for r in c["windows"]:
      a, b = r["steps"]
      print(f"| {a // 1000}-{b // 1000}k | {r['median']:.0f} ("
            + ", ".join(f"{s:.0f}" for s in r["seeds"]) + f") | {r['reference_spread'][0]:.0f}-"
            f"{r['reference_spread'][1]:.0f} | {'yes' if r['holds'] else 'NO'} |")
    print(f"hopper: {'holds in every window' if c['holds'] else 'does NOT hold in every window'}")
  if not result:
    cli.fail("give --idp, --hopper or both.")
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(result, f, indent=1)
      f.write("\n")
    print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main, define_flags, backend=False)
