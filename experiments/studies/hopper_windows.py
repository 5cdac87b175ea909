"""The Hopper side-by-side tables (results/hopper_vs_authors/README.md): the
median training-episode return per window of env steps, pooled over seeds,
with the episode counts in brackets.
  PYTHONPATH=. python experiments/studies/hopper_windows.py [OUT]
Table 1 (windows.json): the 2026-12-02 side by side to 43k, our variants and
the authors' logs. Table 2 (windows_100k.json, where OUT/choices_100k exists):
the issue's windows to 100k, the authors' five choices beside our own choices'
earlier run (results/hopper, steps past 100k left out)."""
import glob, json, os, sys
import numpy as np
from experiments.harness import stats

OUT = sys.argv[1] if len(sys.argv) > 1 else "results/hopper_vs_authors"
WINDOWS_43K = [(0, 10000), (10000, 20000), (20000, 30000), (30000, 43000)]
WINDOWS_100K = [(10000, 20000), (30000, 50000), (50000, 70000), (70000, 90000), (90000, 100000)]


def ours(folder, label):
  seeds = stats.our_episodes(folder)  # [(episodes [(step, return)], last step)]
  return f"ours, {label} ({len(seeds)} seeds, to {seeds[0][1]})", [e for eps, _ in seeds
                                                                    for e in eps]


def table(rows: dict, windows, path):
  """Prints a markdown table of window medians and writes it as JSON."""
  print("| run | " + " | ".join(f"{a//1000}-{b//1000}k" for a, b in windows) + " |")
  print("| --- |" + " ---: |" * len(windows))
  out = {}
  for label, episodes in rows.items():
    meds = []
    for a, b in windows:
      r = [ret for s, ret in episodes if a < s <= b]
      meds.append(f"{np.median(r):.0f} ({len(r)})" if r else "-")
    out[label] = meds
    print(f"| {label} | " + " | ".join(meds) + " |")
  json.dump(out, open(path, "w"), indent=1)


rows = dict(ours(f"{OUT}/{name}", name) for name in ("choices", "choices2"))
logs = sorted(glob.glob(f"{OUT}/authors/seed*.log"))
eps = [stats.authors_episodes(l) for l in logs]
rows[f"authors' code ({len(logs)} seeds, to {min(e[1] for e in eps)})"] = [
    x for e, _ in eps for x in e]
table(rows, WINDOWS_43K, f"{OUT}/windows.json")

if os.path.exists(f"{OUT}/choices_100k/metrics.jsonl"):
  print()
  table(dict([ours(f"{OUT}/choices_100k", "the authors' five choices, 2026-12-05"),
              ours("results/hopper", "our own choices (the hopper preset), 2026-11-27")]),
        WINDOWS_100K, f"{OUT}/windows_100k.json")
