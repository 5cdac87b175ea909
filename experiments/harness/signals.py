"""Graceful stop on SIGINT/SIGTERM: the first asks the driver to stop after
the current chunk, a second exits at once.

The compiled chunk runs with the interpreter blocked, so a Python signal
handler would only run when the chunk returns. Instead the handlers are
no-ops and Python's wakeup fd carries each signal's number to a small thread,
which reacts at once: it records the first and ends the process on the second.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
  """`.signum` is None until SIGINT or SIGTERM arrives; then the driver should
  stop at the next chunk boundary and exit with `.exit_code` (128 + signum)."""

  def __init__(self):
    self.signum = None
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
        if signum not in SIGNALS:
          continue
        if self.signum is None:
          self.signum = signum
          self._say(f"received {signal.Signals(signum).name}: stopping after this chunk "
                    f"(a second signal stops at once)")
        else:
          self._say(f"received {signal.Signals(signum).name} again: exiting now")
          os._exit(128 + signum)

  def _say(self, line):
    sys.stderr.flush()
    os.write(self._stderr, (line + "\n").encode())

  @property
  def requested(self) -> bool:
    return self.signum is not None

  @property
  def exit_code(self) -> int:
    return 128 + self.signum

  @property
  def name(self) -> str:
    return signal.Signals(self.signum).name
