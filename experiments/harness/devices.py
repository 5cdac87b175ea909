"""Driver flags for seeds over devices and hosts (see smpc_jax/sharding.py).

  --shard_seeds                    the seed axis over every device (all processes)
  --coordinator_address=HOST:PORT  --num_processes=N --process_id=I
                                   several processes (or the JAX_COORDINATOR_ADDRESS,
                                   JAX_NUM_PROCESSES, JAX_PROCESS_ID variables;
                                   SMPC_DISTRIBUTED=1 lets jax read SLURM's)

`setup(num_runs)` starts the processes' link and checks the run count against
the device count, both before anything compiles; bad input is one line, exit 2.
"""

from __future__ import annotations

from typing import Optional

from absl import flags
import jax

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from smpc_jax import sharding


@cli.once
def define_flags():
  """The device flags of train.py and sweep.py (defined when they run)."""
  flags.DEFINE_boolean("shard_seeds", False,
                       "Split the seeds over all devices (of all processes); the seed "
                       "count must be a multiple of the device count.")
  flags.DEFINE_string("coordinator_address", "",
                      "host:port of process 0, for a run over several processes.")
  flags.DEFINE_integer("num_processes", 0, "Processes in a multi-process run.")
  flags.DEFINE_integer("process_id", -1, "This process's index, 0 .. num_processes-1.")


FLAGS = flags.FLAGS


def setup(num_runs: int, label: Optional[str] = None) -> Optional[sharding.Mesh]:
  """The mesh the runs' leading axis is split over, or None (one device).
  Several processes imply --shard_seeds: each holds its own devices' runs."""
  try:
    sharding.check_distributed_flags(FLAGS.coordinator_address, FLAGS.num_processes,
                                     FLAGS.process_id)
  except ValueError as e:
    cli.fail(str(e))
  sharding.distributed_init(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  cli.check_backend()  # after the processes' link, which must come first
  if not FLAGS.shard_seeds and jax.process_count() == 1:
    return None
  try:
    sharding.check_divisible(num_runs, jax.device_count(), label)
  except ValueError as e:
    cli.fail(str(e))
  return sharding.seed_mesh()


def describe(mesh) -> str:
  if mesh is None:
    return f"on {jax.devices()[0].platform} device 0"
  return (f"sharded over {jax.device_count()} {jax.devices()[0].platform} device(s) in "
          f"{jax.process_count()} process(es)")
