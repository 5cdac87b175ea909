"""Checkpoints of a whole run with orbax: the vmapped `TrainState` of every
seed (networks, optimiser states, target network, replay buffer with its
plans, environment state, keys, counters) and the driver's progress (a JSON
dict: chunk index, evaluation key, curves, metrics lines).

Used by the drivers in `experiments/`; the pure step never imports it.

Layout: DIR/<step>/{state,progress}. orbax writes each save into a temporary
directory and renames it when complete, so a save killed midway never
replaces the last good one; `latest_step` only sees finished saves.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from smpc_jax import replay
from smpc_jax.config import Config
from smpc_jax.train import TrainState, init

# Config fields a resumed run may change: the run's length (the buffer grows
# to match, see `extend`) and the evaluation budget. Any other difference
# would silently change the run, so it is refused.
RESUMABLE_FIELDS = ("total_steps", "eval_episodes")


class CheckpointError(ValueError):
  """A checkpoint that is missing, damaged or does not match the flags."""


@contextlib.contextmanager
def _held_stderr():
  """File descriptor 2 (Python's and C's writes alike) goes to a temporary
  file for the block; yields a function that returns what was held."""
  sys.stderr.flush()
  saved, text = os.dup(2), []
  with tempfile.TemporaryFile() as held:
    os.dup2(held.fileno(), 2)
    try:
      yield lambda: "".join(text)
    except BaseException:
      time.sleep(1.0)  # a failed read's pending callbacks print here, held
      raise
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      held.seek(0)
      text.append(held.read().decode(errors="replace"))


class _OrphanedReads(logging.Filter):
  """Drops asyncio's "exception was never retrieved" reports. A damaged
  array fails one of orbax's reads while the others are still pending; when
  their tasks are collected, possibly long after the restore (so no wait can
  hold them back), asyncio logs each with a traceback. The restore's own
  error already names the checkpoint."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "exception was never retrieved" not in str(record.msg)


def _quiet_orphaned_reads():
  """Installs _OrphanedReads on asyncio's logger, once."""
  log = logging.getLogger("asyncio")
  if not any(isinstance(f, _OrphanedReads) for f in log.filters):
    log.addFilter(_OrphanedReads())


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


def save(mngr: ocp.CheckpointManager, step: int, state: TrainState, progress: dict):
  """Saves `state` (every leaf [S, ...]) and `progress` (JSON-able) at `step`.
  A save that fails (a full disk) raises CheckpointError with the reason, and
  leaves the earlier checkpoints as they were (orbax writes into a temporary
  folder and renames it only when complete)."""
  try:
    with _held_stderr() as noise:  # TensorStore's and orbax's threads report there too
      mngr.save(step, args=ocp.args.Composite(
          state=ocp.args.StandardSave(_flat(state)), progress=ocp.args.JsonSave(progress)),
          force=True)
      mngr.wait_until_finished()
  except Exception as e:  # orbax and TensorStore raise many kinds
    raise CheckpointError(f"saving checkpoint {mngr.directory}/{step} failed: "
                          f"{_os_reason(e)}") from None
  sys.stderr.write(noise())


def _os_reason(e: BaseException) -> str:
  """The operating system's words for why a write failed (No space left on
  device, File too large...), found in `e` or its causes, else its gist."""
  seen = e
  while seen is not None:
    if isinstance(seen, OSError) and seen.strerror:
      return seen.strerror
    seen = seen.__cause__ or seen.__context__
  text = str(e)
  for words in ("No space left on device", "File too large", "Disk quota exceeded",
                "Read-only file system", "Permission denied"):
    if words in text:
      return words
  return f"{type(e).__name__}: {_first_sentence(e)}"


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
  return Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def read_progress(mngr: ocp.CheckpointManager, step: int) -> dict:
  try:
    return mngr.restore(step, args=ocp.args.Composite(progress=ocp.args.JsonRestore()))[
        "progress"]
  except Exception as e:  # orbax raises many kinds; all mean "unreadable".
    raise CheckpointError(f"checkpoint {mngr.directory}/{step} is damaged: "
                          f"{type(e).__name__}: {_first_sentence(e)}")


def abstract_state(config: Config, num_seeds: int) -> TrainState:
  """Shapes and dtypes of a vmapped state, without computing it."""
  keys = jax.ShapeDtypeStruct((num_seeds, 2), jnp.uint32)
  return jax.eval_shape(jax.vmap(lambda k: init(config, k)), keys)


def restore(mngr: ocp.CheckpointManager, step: int,
            mesh: jax.sharding.Mesh | None = None) -> tuple[TrainState, dict]:
  """The state and progress saved at `step`, with the config they were saved
  under (progress["config"]) and progress["seeds"] seeds. With `mesh`, every
  leaf comes back with its seed axis sharded over the mesh's "seeds" axis
  (see smpc_jax/sharding.py): each process reads only its own seeds."""
  progress = read_progress(mngr, step)
  try:
    config = config_from_dict(progress["config"])
    target = abstract_state(config, int(progress["seeds"]))
    if mesh is not None:
      spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
      target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=spec),
                            target)
    # A damaged array makes TensorStore's pending reads print tracebacks into
    # orbax's closed event loop: kept back, and shown only if the read succeeds.
    with _held_stderr() as noise:
      flat = mngr.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(_flat(target))))["state"]
    sys.stderr.write(noise())
    state = _unflat(flat, target)
  except Exception as e:
    _quiet_orphaned_reads()
    raise CheckpointError(f"checkpoint {mngr.directory}/{step} is damaged: "
                          f"{type(e).__name__}: {_first_sentence(e)}")
  return state, progress


def restore_intact(mngr: ocp.CheckpointManager, mesh: jax.sharding.Mesh | None = None,
                   check=None, set_aside: bool = True):
  """(step, state, progress, damaged) of the newest checkpoint that reads
  back whole; `damaged` lists (step, reason) of the newer ones that did not.
  With `set_aside`, those are moved to DIR/../checkpoints_damaged/<step>-<time>,
  kept for a look and out of the way of the saves to come. `check(progress)`, if given, runs on a
  checkpoint's progress before its state is read (it may raise). Raises
  CheckpointError naming each checkpoint when none is intact."""
  damaged = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      progress = read_progress(mngr, step)
      if check is not None:
        check(progress)
      state, progress = restore(mngr, step, mesh)
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


def to_jsonable(x):
  """numpy/jax scalars and arrays as lists of Python numbers."""
  return np.asarray(x).tolist()
