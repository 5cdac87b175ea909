"""The process around the library's checkpoint reads and writes: what orbax's
and TensorStore's threads print is held back, asyncio's reports of orphaned
reads are dropped, and a failed write is named by the operating system's
words. smpc_jax/checkpoint.py raises typed errors and touches none of this.

  runner.resume(mngr, spec, io=checkpoint_io.held)   # io: the context a
  runner.run(..., io=checkpoint_io.held)             # read or save runs in
  except runner.SaveFailed as e: checkpoint_io.os_reason(e.error)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time


@contextlib.contextmanager
def held():
  """File descriptor 2 (Python's and C's writes alike) goes to a temporary
  file for the block. On success what was held is written out; on a failure
  (a damaged checkpoint, a full disk) it is dropped, after waiting for the
  failed read's pending callbacks, which print there, and asyncio's later
  reports of those reads are silenced (the error already names the file)."""
  sys.stderr.flush()
  saved = os.dup(2)
  failed = False
  with tempfile.TemporaryFile() as tmp:
    os.dup2(tmp.fileno(), 2)
    try:
      yield
    except BaseException:
      failed = True
      time.sleep(1.0)
      _quiet_orphaned_reads()
      raise
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      if not failed:
        tmp.seek(0)
        sys.stderr.write(tmp.read().decode(errors="replace"))
        sys.stderr.flush()


class _OrphanedReads(logging.Filter):
  """Drops asyncio's "exception was never retrieved" reports. A damaged
  array fails one of orbax's reads while others are pending; when their tasks
  are collected, possibly long after the restore (so no wait can hold them
  back), asyncio logs each with a traceback."""

  def filter(self, record: logging.LogRecord) -> bool:
    return "exception was never retrieved" not in str(record.msg)


def _quiet_orphaned_reads():
  log = logging.getLogger("asyncio")
  if not any(isinstance(f, _OrphanedReads) for f in log.filters):
    log.addFilter(_OrphanedReads())


def os_reason(e: BaseException) -> str:
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
  first = text.splitlines()[0] if text else ""
  return f"{type(e).__name__}: {first[:160]}"


def load_run(run_dir: str, seed_index: int):
  """(state of run `seed_index`, env steps done) of the newest intact
  checkpoint in RUN_DIR/checkpoints, for the drivers that read a trained run
  (render.py, export.py); one line and exit 2 when there is none, or the
  index is not one of its runs."""
  from experiments.harness import cli
  from smpc_jax import checkpoint as ckpt
  from smpc_jax import controller, runner
  if not run_dir:
    cli.fail("run_dir is required: the OUT_DIR of a run (it holds checkpoints/).")
  directory = os.path.join(run_dir, "checkpoints")
  if not os.path.isdir(directory):
    cli.fail(f"run_dir={run_dir!r} holds no checkpoints/.")
  if not ckpt.steps(directory):
    cli.fail(f"run_dir={run_dir!r} holds no complete checkpoint.")
  try:
    spec, states, progress, damaged = runner.load(ckpt.manager(directory), io=held)
  except runner.ResumeError as e:
    cli.fail(str(e), hard=True)
  for _, reason in damaged:
    print(f"warning: {reason}; using step {progress.done_steps}, the newest intact checkpoint.",
          file=sys.stderr, flush=True)
  if not 0 <= seed_index < spec.num_runs:
    cli.fail(f"seed_index={seed_index} is invalid; the run has {spec.num_runs} "
             f"seeds (0 to {spec.num_runs - 1}).")
  return controller.run_of(states, seed_index), progress.done_steps
