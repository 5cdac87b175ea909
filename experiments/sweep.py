"""A vmapped hyperparameter sweep: a grid of values x seeds, one compiled program.

  python experiments/sweep.py --env=idp --param=tau --values=0.005,0.02 \\
      --seeds=2 --total_steps=20000 --out_dir=DIR
  python experiments/sweep.py --grid=temperature=0.1,1 --grid=tau=0.005,0.05 \\
      --seeds=3 --out_dir=DIR          # 2 x 2 combinations x 3 seeds = 12 runs
  python -m experiments.sweep ...same flags... --resume      # continue DIR's sweep

Swept parameters are the hyperparameters held as array leaves of the state
(smpc_jax.config.SWEEPABLE: temperature, noise_var, gamma, tau,
learning_rate). `--grid=NAME=V1,V2,...` (repeatable) sweeps every combination
of the given values; `--param/--values` is the one-parameter form. Every
other flag is train.py's, and the run is train.py's (smpc_jax.runner): seed
j of every combination is jax.random.PRNGKey(--seed + j), so combinations
differ only by their values. Writes what train.py writes, and DIR/table.md
(final-return IQM with a 95% bootstrap interval and median per combination)
and, for two parameters, DIR/heatmap.png.
"""

from __future__ import annotations

from absl import flags

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import driver, grid
from smpc_jax.config import SWEEPABLE

FLAGS = flags.FLAGS


@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_string("param", "tau", f"What to sweep: {', '.join(SWEEPABLE)}.")
  flags.DEFINE_list("values", ["0.005", "0.02"], "Values of --param, comma separated.")
  flags.DEFINE_multi_string("grid", [], "NAME=V1,V2,...: one swept parameter of a grid "
                            "(repeat the flag for more; replaces --param/--values).")
  driver.define_flags(seeds=2, out_dir="runs/sweep", keep_checkpoints=2)


def grid_of(config):
  try:
    return grid.parse(FLAGS.grid, FLAGS.param, FLAGS.values, config,
                      FLAGS["param"].present or FLAGS["values"].present)
  except ValueError as e:
    cli.fail(str(e))


def main(argv):
  driver.main(argv, "sweep.py", grid_of)


if __name__ == "__main__":
  cli.run(main, define_flags)
