"""The paper's Table I: env steps per second on the double pendulum with
warm-started (1 iteration) or cold-started (1, 5, 10 iterations) target MPPI,
for 10, 20 and 50 target samples; paper defaults otherwise, one seed.

  python experiments/studies/table1.py [--steps=300 --repeats=5 --out=results/table1.md]

Every configuration is compiled first; then the timed chunks go round-robin
over the configurations, so a change in the machine's load touches all of
them alike and the ratios within a run stay comparable. Machines differ, so
the paper's rates and ours are compared as ratios (cold / warm at each N).
"""

from __future__ import annotations

import json
import os
import platform
import time

from absl import flags, logging
import jax
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import files
import smpc_jax as sj

@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_integer("steps", 300, "Training steps per timed chunk.")
  flags.DEFINE_integer("repeats", 5, "Timed chunks per configuration (median and std).")
  flags.DEFINE_list("samples", ["10", "20", "50"], "Target MPPI samples N.")
  flags.DEFINE_string("out", "results/table1.md", "Markdown table; a .json is written beside it.")


FLAGS = flags.FLAGS

COLUMNS = (("warm, 1 iter.", True, 1), ("cold, 1 iter.", False, 1),
           ("cold, 5 iters.", False, 5), ("cold, 10 iters.", False, 10))
# Table I of the paper (mean env steps/s, their machine), by N then column.
PAPER = {10: (175, 175, 89, 55), 20: (163, 160, 73, 44), 50: (128, 128, 45, 25)}


def main(argv):
  if len(argv) > 1:
    cli.fail(f"unexpected arguments {argv[1:]}; this script takes only flags.")
  for name in ("steps", "repeats"):
    if getattr(FLAGS, name) < 1:
      cli.fail(f"{name}={getattr(FLAGS, name)} is invalid; it must be an integer >= 1.")
  try:
    samples = [int(n) for n in FLAGS.samples]
    assert samples and all(n >= 1 for n in samples)
  except (ValueError, AssertionError):
    cli.fail(f"samples={','.join(FLAGS.samples)!r} is invalid; it must be integers >= 1.")
  logging.set_verbosity(logging.WARNING)
  total = FLAGS.steps * (FLAGS.repeats + 1)
  programs = {}
  for n in samples:
    for label, warm, iters in COLUMNS:
      config = sj.preset("idp", total_steps=total, target_samples=n, warm_start=warm,
                         target_iterations=iters)
      state = jax.jit(sj.init, static_argnums=0)(config, jax.random.PRNGKey(0))
      t = time.perf_counter()
      chunk = jax.jit(lambda s: sj.run(s, FLAGS.steps), donate_argnums=0).lower(state).compile()
      state, _ = chunk(state)  # Warm-up chunk.
      jax.block_until_ready(state)
      print(f"N={n} {label}: compiled and warmed up in {time.perf_counter() - t:.0f}s", flush=True)
      programs[n, label] = [chunk, state, []]
  for _ in range(FLAGS.repeats):
    for p in programs.values():
      chunk, state, times = p
      t = time.perf_counter()
      p[1] = jax.block_until_ready(chunk(state)[0])
      times.append(time.perf_counter() - t)
  sps = {k: FLAGS.steps / np.asarray(p[2]) for k, p in programs.items()}
  rows, lines = [], []
  for n in samples:
    ours = [sps[n, label] for label, _, _ in COLUMNS]
    cells = " | ".join(f"{np.median(s):.0f} ± {np.std(s):.0f}" for s in ours)
    ratio = np.median(ours[3]) / np.median(ours[0])
    paper = PAPER.get(n)
    paper_ratio = f"{paper[3] / paper[0]:.2f}" if paper else "-"
    paper_cells = " / ".join(str(x) for x in paper) if paper else "-"
    lines.append(f"| {n} | {cells} | {ratio:.2f} | {paper_cells} | {paper_ratio} |")
    rows.append(dict(target_samples=n, sps={label: s.tolist() for (label, _, _), s in
                                            zip(COLUMNS, ours)},
                     cold10_over_warm1=float(ratio), paper=paper))
  command = (f"python experiments/studies/table1.py --steps={FLAGS.steps} --repeats={FLAGS.repeats} "
             f"--samples={','.join(map(str, samples))}")
  machine = (f"{platform.machine()}, {os.cpu_count()} cores, {jax.devices()[0].platform} "
             f"({jax.devices()[0].device_kind}), jax {jax.__version__}")
  md = (f"# Table I: env steps per second, warm vs cold target MPPI\n\n"
        f"`{command}` (`make table1`) on {machine}, "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}. One seed, paper defaults, "
        f"env idp; median ± std over {FLAGS.repeats} chunks of {FLAGS.steps} steps, "
        f"timed round-robin.\n\n"
        "| N | " + " | ".join(label for label, _, _ in COLUMNS) +
        " | ours: cold 10 / warm 1 | paper (warm 1 / cold 1 / 5 / 10) | paper: cold 10 / warm 1 |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |\n" + "\n".join(lines) + "\n")
  os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
  with open(FLAGS.out, "w") as f:
    f.write(md)
  files.write_json(os.path.splitext(FLAGS.out)[0] + ".json",
                 dict(command=command, machine=machine, rows=rows))
  print(md, end="")


if __name__ == "__main__":
  cli.run(main, define_flags)
