"""Seeds over devices and hosts: a one-axis mesh and the shardings of the
seed axis. Used by the drivers in experiments/; the pure step never imports it.

Runs are independent per seed, so the leading seed axis of every leaf of a
vmapped `TrainState` (and of the keys that make it, and of the metrics and
evaluation returns that come out) is split over a mesh axis "seeds"; the
compiled program then needs no communication at all.

  mesh = seed_mesh()                      # all devices, every process
  check_divisible(num_seeds, mesh.size)   # before anything compiles
  keys = place(np_keys, mesh)             # [S, 2], sharded
  init = jax.jit(jax.vmap(...), out_shardings=seed_sharding(mesh))
  metrics = gather(metrics)               # numpy, whole seed axis, every process

Several processes (hosts): call `distributed_init` first, before any other
JAX call; `seed_mesh` then spans the devices of every process and each
process holds (and computes) the seeds of its own devices.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import jax
from jax.experimental import multihost_utils
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "seeds"


def check_divisible(num_runs: int, num_devices: int, label: Optional[str] = None) -> None:
  """Raises one ValueError naming the flag unless `num_runs` splits evenly over
  `num_devices` (each device then holds num_runs / num_devices runs).
  label: how the runs were asked for (default "seeds=<num_runs>")."""
  if num_runs < 1 or num_runs % num_devices:
    label = label or f"seeds={num_runs}"
    raise ValueError(
        f"{label} is invalid with --shard_seeds; the run count must be a multiple of the "
        f"device count {num_devices} (e.g. {max(1, -(-num_runs // num_devices)) * num_devices}).")


def seed_mesh(devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A 1-D mesh named "seeds" over `devices` (default: every device of every
  process, in jax.devices() order, so each process owns a contiguous block)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (AXIS,))


def seed_sharding(mesh: Mesh) -> NamedSharding:
  """Leading axis over the mesh's seeds axis, the rest whole on each device."""
  return NamedSharding(mesh, PartitionSpec(AXIS))


def seed_jit(fn, mesh: Optional[Mesh], **kwargs):
  """`jax.jit(fn)` whose every output keeps its leading (seed) axis on `mesh`
  (None: plain jit). Inputs follow their own shardings."""
  if mesh is not None:
    kwargs["out_shardings"] = seed_sharding(mesh)
  return jax.jit(fn, **kwargs)


def reshard(tree: Any, mesh: Optional[Mesh]) -> Any:
  """`tree` with every leaf's leading axis on `mesh` exactly as `seed_jit`'s
  outputs are, so a program compiled for those takes it (e.g. a state rebuilt
  from a checkpoint by eager ops). No-op without a mesh."""
  if mesh is None:
    return tree
  return jax.jit(lambda t: t, out_shardings=seed_sharding(mesh), donate_argnums=0)(tree)


def place(x: np.ndarray, mesh: Optional[Mesh]) -> jax.Array:
  """A numpy array [R, ...] on the device (mesh None), or with its leading
  (run) axis sharded over `mesh`. Every process holds the same `x` (cheap:
  keys, swept values) and places only the rows its own devices hold, so this
  is the same call with one process or many."""
  x = np.asarray(x)
  if mesh is None:
    return jax.numpy.asarray(x)
  return jax.make_array_from_callback(x.shape, seed_sharding(mesh), lambda idx: x[idx])


def gather(tree: Any) -> Any:
  """Numpy copies of a pytree of seed-sharded arrays, whole on every process.
  One process: a plain device_get. Several: the shards of the other processes
  come over the network (multihost_utils.process_allgather)."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def any_process(flag: bool) -> bool:
  """Whether `flag` holds on any process (each may see a signal alone), so
  that all take the same branch; a plain bool with one process."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.asarray(bool(flag)))))


def barrier(name: str, timeout_s: float = 3600.0) -> None:
  """Every process waits here for the others (no-op with one process).

  Through the coordination service's key-value barrier, which waits up to
  `timeout_s`, not through a collective: a gloo collective gives up after
  30 s, and one process may compile for minutes longer than another."""
  if jax.process_count() == 1:
    return
  from jax._src import distributed  # the client jax.distributed.initialize made
  client = distributed.global_state.client
  if client is None:
    multihost_utils.sync_global_devices(name)
  else:
    client.wait_at_barrier(f"smpc_jax_{name}", int(timeout_s * 1000))


def is_writer() -> bool:
  """Only process 0 writes files and prints summaries."""
  return jax.process_index() == 0


def distributed_init(coordinator_address: str = "", num_processes: int = 0,
                     process_id: int = -1) -> bool:
  """`jax.distributed.initialize` when a multi-process run is asked for, by
  arguments or by the environment (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES,
  JAX_PROCESS_ID; or SLURM, whose variables jax detects by itself when
  SMPC_DISTRIBUTED=1). Returns whether it initialised. Must run before any
  other JAX call. On CPU the processes exchange data through gloo."""
  address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS", "")
  n = num_processes or int(os.environ.get("JAX_NUM_PROCESSES", "0") or 0)
  pid = process_id if process_id >= 0 else int(os.environ.get("JAX_PROCESS_ID", "-1") or -1)
  auto = os.environ.get("SMPC_DISTRIBUTED", "") == "1"
  if not (address or auto):
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if address:
    jax.distributed.initialize(coordinator_address=address, num_processes=n or None,
                               process_id=pid if pid >= 0 else None)
  else:  # SLURM / cloud TPU / MPI: let jax read the cluster's own variables.
    jax.distributed.initialize()
  return True


def check_distributed_flags(coordinator_address: str, num_processes: int,
                            process_id: int) -> None:
  """One ValueError naming the flag when the multi-process flags disagree."""
  if not coordinator_address:
    if num_processes or process_id >= 0:
      raise ValueError("coordinator_address='' is invalid with --num_processes/--process_id; "
                       "give host:port of process 0.")
    return
  if ":" not in coordinator_address:
    raise ValueError(f"coordinator_address={coordinator_address!r} is invalid; it must be host:port.")
  if num_processes < 1:
    raise ValueError(f"num_processes={num_processes} is invalid; it must be >= 1 with "
                     "--coordinator_address.")
  if not 0 <= process_id < num_processes:
    raise ValueError(f"process_id={process_id} is invalid; it must lie in "
                     f"[0, {num_processes - 1}].")
