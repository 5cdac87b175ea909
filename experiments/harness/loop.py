"""The chunk loop of train.py and sweep.py: the only Python loop of a run.

Each pass runs one compiled chunk of env steps (the last one shorter, so a
run does exactly total_steps), stops the run on a non-finite value, hands the
chunk to the driver, saves a checkpoint every `checkpoint_every` steps (and at
the end, and on a signal), and stops cleanly on SIGINT/SIGTERM with a line
that says how to resume. A resumed run continues bit for bit: everything the
driver keeps between chunks lives in `progress` (JSON), saved with the state.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Callable

from experiments.harness import config_flags, progress as show, signals
from smpc_jax import checkpoint as ckpt
from smpc_jax import sharding


@dataclasses.dataclass(frozen=True)
class Chunk:
  """A finished chunk: its metrics (every leaf [R, n], numpy, on every
  process), its first env step (1-based), the steps done after it, its time."""
  metrics: dict
  first: int
  done: int
  seconds: float

  @property
  def steps(self) -> int:
    return self.done - self.first + 1


@dataclasses.dataclass(frozen=True)
class Driver:
  """What a driver does around the shared loop.

  on_chunk(state, chunk): the chunk's records (metrics lines, evaluations,
    printing), kept in `progress` where a resumed run needs them.
  on_stop(reason): the driver's outputs for a run stopped early (a signal's
    name, or "failed save"); may raise OSError when the disk is full.
  on_nonfinite(chunk): records the chunk that went non-finite (optional).
  run_name(i): how the error names run i ("seed 1", "tau=0.02, seed 1").
  kept: what the driver's files keep, for the failed-save line.
  """
  on_chunk: Callable[[Any, Chunk], None]
  on_stop: Callable[[str], None]
  on_nonfinite: Callable[[Chunk], None] = lambda chunk: None
  run_name: Callable[[int], str] = lambda i: f"seed {i}"
  kept: Callable[[int], str] = lambda step: ""


def programs(lower: Callable[[int], Any], total_steps: int, chunk_steps: int, done: int) -> dict:
  """{steps: compiled chunk program}: the full chunk's and, when the steps
  left do not divide into chunks, the short last one's (compiled here, outside
  the timed chunks). lower(n) gives the lowered n-step program."""
  chunk = min(chunk_steps, total_steps)
  sizes = [chunk] + ([(total_steps - done) % chunk] if (total_steps - done) % chunk else [])
  out = {}
  for n in sizes:
    out[n] = lower(n).compile()
    sharding.barrier(f"compiled_{n}")  # no process runs it while another compiles
  return out


def run(state, progress: dict, compiled: dict, total_steps: int, chunk_steps: int,
        mngr, checkpoint_every: int, driver: Driver, stop: signals.StopRequest):
  """Runs the chunks left of `total_steps` from `state`; returns the final
  state. progress: the driver's JSON record, with done_steps, chunk_index and
  run_s kept here. stop: the driver's signal watcher, made before it compiles
  (a signal met while compiling stops the run after its first chunk). Exits 1
  on a non-finite value or a failed save, and with the signal's code when
  stopped by one (after saving a checkpoint)."""
  chunk = min(chunk_steps, total_steps)
  while progress["done_steps"] < total_steps:
    before = progress["done_steps"]
    n = min(chunk, total_steps - before)
    t = time.perf_counter()
    state, m = compiled[n](state)
    m = sharding.gather(m)  # every leaf [R, n], numpy, on every process
    c = Chunk(m, before + 1, before + n, time.perf_counter() - t)
    bad = show.first_nonfinite(m["finite"], c.first)
    if bad:
      driver.on_nonfinite(c)
      run_index, quantity, step = bad
      kept = mngr.latest_step()
      print(f"error: non-finite {quantity} in {driver.run_name(run_index)} at step {step}; "
            "stopped. " + (f"The last good checkpoint (step {kept}) is kept in {mngr.directory}."
                           if kept is not None else "No checkpoint was saved before it."),
            file=sys.stderr, flush=True)
      sys.exit(1)
    progress["done_steps"], progress["run_s"] = c.done, progress["run_s"] + c.seconds
    progress["chunk_index"] += 1
    driver.on_chunk(state, c)
    stopping = sharding.any_process(stop.requested)  # every process stops at one chunk
    if (stopping or c.done == total_steps
        or (checkpoint_every and c.done // checkpoint_every > before // checkpoint_every)):
      try:
        ckpt.save(mngr, c.done, state, progress)
      except ckpt.CheckpointError as e:
        _save_failed(mngr, progress, driver, e)
    if stopping:
      # A process that got no signal itself stops with the others (SIGTERM's code).
      name = stop.name if stop.requested else "another process's signal"
      if sharding.is_writer():
        driver.on_stop(name)
        print(f"stopped by {name} at step {c.done}; resume with: "
              f"{config_flags.command_line(drop=('resume', 'overwrite'), add=('--resume',))}",
              flush=True)
      sharding.barrier("stopped")  # the other processes wait while process 0 writes
      sys.exit(stop.exit_code if stop.requested else 128 + 15)
  return state


def _save_failed(mngr, progress, driver: Driver, error):
  """A checkpoint could not be written (a full disk): the driver's outputs if
  they still fit, one line naming what is kept, exit 1."""
  kept = ckpt.steps(str(mngr.directory))
  if sharding.is_writer():
    try:
      driver.on_stop("failed save")
    except OSError:
      pass  # the disk is full: what was written before stays as it was
  done = progress["done_steps"]
  files = driver.kept(done)
  print(f"error: {error}; stopped at step {done}. Kept: " + (f"{files}, " if files else "")
        + (f"the last good checkpoint (step {kept[-1]})" if kept else "no checkpoint")
        + ". Free some space, then "
        + ("continue with --resume." if kept else "start again with --overwrite."),
        file=sys.stderr, flush=True)
  os._exit(1)  # orbax's threads may still hold the failed save's files

