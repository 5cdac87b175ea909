"""Graceful stop on SIGINT, SIGTERM and SIGHUP (the terminal closed): the
first asks the driver to stop after the current chunk and save; a second
exits at once, with two exceptions:
- a signal within REPEAT_S of the first is the same request: `timeout`,
  `make` and schedulers signal the whole process group, so the run is told
  twice at once;
- a second signal while a checkpoint is being saved (`critical`) does not
  abort the save: the stop goes on once the save is complete.

The compiled chunk runs with the interpreter blocked, so a Python signal
handler would only run when the chunk returns. Instead the handlers are
no-ops and Python's wakeup fd carries each signal's number to a small thread,
which reacts at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT_S = 2.0  # signals this close to the first are one request


class StopRequest:
  """`.signum` is None until SIGINT or SIGTERM arrives; then the driver should
  stop at the next chunk boundary and exit with `.exit_code` (128 + signum)."""

  def __init__(self):
    self.signum = None
    self._first_at = 0.0
    self._lock = threading.Lock()
    self._critical = 0  # saves in progress
    self._deferred = False  # a second signal came during a save
    # Its own copy of stderr: a checkpoint save holds fd 2 back while it runs
    # (smpc_jax/checkpoint.py), and a second signal exits before it is restored.
    self._stderr = os.dup(2)
    read, write = os.pipe()
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    for s in SIGNALS:
      signal.signal(s, lambda *_: None)
    threading.Thread(target=self._watch, args=(read,), daemon=True).start()

  def _watch(self, fd):
    while True:
      for signum in os.read(fd, 64):
        if signum in SIGNALS:
          self._receive(signum)

  def _receive(self, signum):
    name = signal.Signals(signum).name
    with self._lock:
      if self.signum is None:
        self.signum, self._first_at = signum, time.monotonic()
        self._say(f"received {name}: stopping after this chunk, with a checkpoint "
                  f"(a second signal stops at once)")
      elif time.monotonic() - self._first_at < REPEAT_S:
        pass  # the same request, sent to the process and to its group
      elif self._critical:
        if not self._deferred:
          self._deferred = True
          self._say(f"received {name} again: stopping once the checkpoint being saved is "
                    f"complete")
      else:
        self._say(f"received {name} again: exiting now")
        os._exit(128 + signum)

  @contextlib.contextmanager
  def critical(self):
    """A block (a checkpoint's save) that a second signal does not cut
    short; the stop already requested goes on after it."""
    with self._lock:
      self._critical += 1
    try:
      yield
    finally:
      with self._lock:
        self._critical -= 1

  def _say(self, line):
    try:
      sys.stderr.flush()
    except OSError:
      pass
    try:
      os.write(self._stderr, (line + "\n").encode())
    except OSError:  # the terminal or pipe is gone: nothing to tell
      pass

  @property
  def requested(self) -> bool:
    return self.signum is not None

  @property
  def exit_code(self) -> int:
    return 128 + self.signum

  @property
  def name(self) -> str:
    return signal.Signals(self.signum).name
