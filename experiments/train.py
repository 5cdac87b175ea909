"""Train softMPCritic on several seeds at once, in one compiled program.

  python experiments/train.py --env=idp --seeds=5 --total_steps=20000 --out_dir=DIR
  python experiments/train.py ...same flags... --resume     # continue DIR's run

Every Config field is a flag (see --helpfull); unset ones keep the env preset.
The run is `jax.vmap(sj.make_train(config))` over jax.random.PRNGKey(--seed),
..., PRNGKey(--seed + --seeds - 1), bit for bit: each env step has its own
key, so --chunk_steps, a stop and a resume change nothing in the results.
Writes DIR/metrics.jsonl (one line per chunk), DIR/summary.json, DIR/returns.png
(refreshed during the run), DIR/checkpoints/ (orbax, every --checkpoint_every
steps, the last --keep_checkpoints kept) and, with --tensorboard,
DIR/tensorboard/. SIGINT/SIGTERM stop after the current chunk with a
checkpoint; a second signal stops at once. The run itself is
smpc_jax.runner; this file is its flags (experiments/harness/driver.py).
"""

from __future__ import annotations

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import driver


@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  driver.define_flags(seeds=1, out_dir="runs/latest", keep_checkpoints=3)


def main(argv):
  driver.main(argv, "train.py")


if __name__ == "__main__":
  cli.run(main, define_flags)
