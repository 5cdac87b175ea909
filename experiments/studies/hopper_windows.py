"""The Hopper side-by-side table (results/hopper_vs_authors/README.md): the
median training-episode return per window of env steps, pooled over seeds,
for our variants and the authors' logs, with the episode counts.
  PYTHONPATH=. python experiments/studies/hopper_windows.py [OUT]"""
import glob, json, sys
import numpy as np
from experiments.harness import stats
OUT = sys.argv[1] if len(sys.argv) > 1 else "results/hopper_vs_authors"
WINDOWS = [(0, 10000), (10000, 20000), (20000, 30000), (30000, 43000)]
rows = {}
for name in ("choices", "choices2"):
  seeds = stats.our_episodes(f"{OUT}/{name}")
  rows[f"ours, {name} ({len(seeds)} seeds, to {seeds[0][1]})"] = [e for eps, _ in seeds for e in eps]
logs = sorted(glob.glob(f"{OUT}/authors/seed*.log"))
eps = [stats.authors_episodes(l) for l in logs]
rows[f"authors' code ({len(logs)} seeds, to {min(e[1] for e in eps)})"] = [x for e, _ in eps for x in e]
print("| run | " + " | ".join(f"{a//1000}-{b//1000}k" for a, b in WINDOWS) + " |")
print("| --- |" + " ---: |" * len(WINDOWS))
table = {}
for label, ep in rows.items():
  meds = []
  for a, b in WINDOWS:
    r = [ret for s, ret in ep if a < s <= b]
    meds.append(f"{np.median(r):.0f} ({len(r)})" if r else "-")
  table[label] = meds
  print(f"| {label} | " + " | ".join(meds) + " |")
json.dump(table, open(f"{OUT}/windows.json", "w"), indent=1)
