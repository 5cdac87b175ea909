"""Checkpoints of a whole run with orbax: the vmapped `TrainState` of every
run (networks, optimiser states, target network, replay buffer with its
plans, environment state, keys, counters) and the run's record (a small JSON
dict: what was run, steps done; see smpc_jax.runner).

Used by smpc_jax.runner; the pure step never imports it. Errors are
CheckpointError; what a process does with the noise of orbax's and
TensorStore's threads is the caller's business (`io` below).

Layout: DIR/<step>/{state,progress}. orbax writes each save into a temporary
directory and renames it when complete, so a save killed midway never
replaces the last good one; `latest_step` only sees finished saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from smpc_jax import replay
from smpc_jax.config import Config
from smpc_jax.train import TrainState, init

# Config fields a resumed run may change: the run's length (the buffer grows
# to match, see `extend`). Any other difference would silently change the
# run, so it is refused.
RESUMABLE_FIELDS = ("total_steps",)


class CheckpointError(ValueError):
  """A checkpoint that is missing, damaged or does not match the flags; a
  failed write keeps the library's error as __cause__ (the OS's reason)."""


def _first_sentence(e: Exception) -> str:
  """The gist of a reader's error (TensorStore's run to many lines of spec)."""
  text = str(e).splitlines()[0] if str(e) else ""
  text = text.split(". See ")[0].split(" See full")[0].split(" [source")[0]
  return text if len(text) <= 160 else text[:157] + "..."


def manager(directory: str, max_to_keep: int = 3) -> ocp.CheckpointManager:
  """A synchronous manager (the state is donated to the next chunk right
  after a save, so the save must be complete when it returns)."""
  # (orbax 0.12 documents max_to_keep and item_names as deprecated: the
  # preservation policy keeps the latest saves, and the handlers of "state"
  # and "progress" follow from the args each save and restore passes.)
  options = ocp.CheckpointManagerOptions(
      preservation_policy=ocp.checkpoint_managers.LatestN(max_to_keep), create=True,
      cleanup_tmp_directories=True, enable_async_checkpointing=False)
  mngr = ocp.CheckpointManager(os.path.abspath(directory), options=options)
  # Its clean-up of unfinished saves runs in a thread; awaited here, so that a
  # driver that exits right away does not leave it to print into a closed
  # interpreter ("cannot schedule new futures after shutdown").
  getattr(mngr, "_maybe_await_cleanup_tmp_directory", lambda: None)()
  return mngr


def steps(directory: str) -> list:
  """The finished saves in `directory`, oldest first, read from the names of
  its folders (no manager, so no background thread is started)."""
  if not os.path.isdir(directory):
    return []
  return sorted(int(n) for n in os.listdir(directory)
                if n.isdigit() and os.path.isdir(os.path.join(directory, n)))


def save(mngr: ocp.CheckpointManager, step: int, state: TrainState, progress: dict,
         io=contextlib.nullcontext):
  """Saves `state` (every leaf [R, ...]) and `progress` (JSON-able) at `step`.
  A save that fails (a full disk) raises CheckpointError, its cause the
  library's error, and leaves the earlier checkpoints as they were (orbax
  writes into a temporary folder and renames it only when complete).
  io: a context the save runs in (a driver holds back the threads' output)."""
  try:
    with io():
      mngr.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(_flat(state)), progress=ocp.args.JsonSave(progress)),
          force=True)
      mngr.wait_until_finished()
  except Exception as e:  # orbax and TensorStore raise many kinds
    raise CheckpointError(f"saving checkpoint {mngr.directory}/{step} failed") from e


# orbax cannot store zero-size arrays (mjx.Data has several), so the state is
# stored as a flat dict of its non-empty leaves, in tree order; the empty ones
# are rebuilt from the abstract state on restore.
def _flat(tree) -> dict:
  return {f"leaf_{i:05d}": x for i, x in enumerate(jax.tree.leaves(tree)) if x.size}


def _unflat(flat: dict, target):
  leaves, treedef = jax.tree.flatten(target)
  out = [flat[f"leaf_{i:05d}"] if x.size else _zeros(x) for i, x in enumerate(leaves)]
  return jax.tree.unflatten(treedef, out)


def _zeros(x: jax.ShapeDtypeStruct) -> jax.Array:
  """An empty leaf, placed as the target says (sharded targets: on the mesh)."""
  if x.sharding is None:
    return jnp.zeros(x.shape, x.dtype)
  return jax.make_array_from_callback(x.shape, x.sharding,
                                      lambda idx: np.zeros(x.shape, x.dtype)[idx])


def config_to_dict(config: Config) -> dict:
  return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(d: dict) -> Config:
  """The Config a checkpoint was saved under; CheckpointError when it names
  fields this version of Config lacks (a checkpoint of another version)."""
  known = {f.name for f in dataclasses.fields(Config)}
  unknown = sorted(set(d) - known)
  if unknown:
    raise CheckpointError(f"its config has field(s) {', '.join(unknown)} that this version "
                          "does not know")
  return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def read_progress(mngr: ocp.CheckpointManager, step: int) -> dict:
  try:
    return mngr.restore(step, args=ocp.args.Composite(progress=ocp.args.JsonRestore()))[
        "progress"]
  except Exception as e:  # orbax raises many kinds; all mean "unreadable".
    raise CheckpointError(f"checkpoint {mngr.directory}/{step} is damaged: "
                          f"{type(e).__name__}: {_first_sentence(e)}")


def abstract_state(config: Config, num_runs: int,
                   mesh: jax.sharding.Mesh | None = None) -> TrainState:
  """Shapes and dtypes of a vmapped state of `num_runs` runs, without
  computing it; with `mesh`, every leaf's run axis sharded over its "seeds"
  axis (each process then reads only its own runs)."""
  keys = jax.ShapeDtypeStruct((num_runs, 2), jnp.uint32)
  target = jax.eval_shape(jax.vmap(lambda k: init(config, k)), keys)
  if mesh is not None:
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=spec),
                          target)
  return target


def restore(mngr: ocp.CheckpointManager, step: int, target: TrainState,
            io=contextlib.nullcontext) -> TrainState:
  """The state saved at `step`, shaped and placed as `target` (see
  `abstract_state`). CheckpointError when it does not read back whole."""
  try:
    with io():
      flat = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_flat(target))))["state"]
  except Exception as e:
    raise CheckpointError(f"checkpoint {mngr.directory}/{step} is damaged: "
                          f"{type(e).__name__}: {_first_sentence(e)}") from e
  return _unflat(flat, target)


def restore_intact(mngr: ocp.CheckpointManager, target_of, io=contextlib.nullcontext,
                   set_aside: bool = True):
  """(step, state, progress, damaged) of the newest checkpoint that reads
  back whole; `damaged` lists (step, reason) of the newer ones that did not.
  target_of(progress): the abstract state to read into, after any checks on
  the progress (it may raise, e.g. a ValueError that ends the search). With
  `set_aside`, the damaged ones are moved to DIR/../checkpoints_damaged/
  <step>-<time>, kept for a look and out of the way of the saves to come.
  Raises CheckpointError naming each checkpoint when none is intact."""
  damaged = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      progress = read_progress(mngr, step)
      target = target_of(progress)
      state = restore(mngr, step, target, io)
    except CheckpointError as e:
      damaged.append((step, str(e)))
      continue
    if damaged and set_aside:
      aside = os.path.join(os.path.dirname(str(mngr.directory)), "checkpoints_damaged")
      os.makedirs(aside, exist_ok=True)
      for bad, _ in damaged:
        os.replace(os.path.join(str(mngr.directory), str(bad)),
                   os.path.join(aside, f"{bad}-{time.strftime('%Y%m%dT%H%M%S')}"))
      mngr.reload()
    return step, state, progress, damaged
  if not damaged:
    raise CheckpointError(f"no complete checkpoint in {mngr.directory}")
  raise CheckpointError("no intact checkpoint: " + "; ".join(r for _, r in damaged))


def mismatch(saved: Config, wanted: Config) -> str | None:
  """The first field other than RESUMABLE_FIELDS on which two configs differ,
  as 'FIELD=saved (checkpoint) vs wanted (flags)', or None."""
  for f in dataclasses.fields(Config):
    a, b = getattr(saved, f.name), getattr(wanted, f.name)
    if f.name not in RESUMABLE_FIELDS and a != b:
      return f"{f.name}={a!r} in the checkpoint, {b!r} in the flags"
  return None


def extend(state: TrainState, config: Config) -> TrainState:
  """`state` (vmapped) continued under `config`, which may raise total_steps.

  The buffer holds min(buffer_capacity, total_steps) rows. When a longer run
  needs more rows, the buffer grows by zero rows at its end and the cursor
  moves to the first new row. A buffer smaller than buffer_capacity was never
  overwritten (it held exactly total_steps rows), so its rows [0, size) are
  those a run started with the larger total_steps holds at this step, and
  sampling only reads rows below `size`: the extended run continues exactly as
  that longer run would. Shrinking is refused (it would drop data).
  """
  buffer = state.buffer
  old = replay.capacity(jax.tree.map(lambda x: x[0], buffer))
  new = config.capacity
  if new < old:
    raise CheckpointError(f"total_steps={config.total_steps} would shrink the replay buffer "
                          f"from {old} to {new} rows; it must be >= {old}")
  if new > old:
    pad = lambda x: jnp.concatenate(
        [x, jnp.zeros((x.shape[0], new - old) + x.shape[2:], x.dtype)], axis=1)
    buffer = buffer.replace(data=jax.tree.map(pad, buffer.data),
                            cursor=jnp.where(buffer.size >= old, old, buffer.cursor))
  return state.replace(config=config, buffer=buffer)

