"""Imported first by the package: keeps two third-party notices out of every
run, and nothing else.

- mujoco.mjx prints "Failed to import warp: ..." and "Failed to import
  mujoco_warp: ..." to stdout when the optional NVIDIA Warp backend is absent
  (we use the JAX backend). Those two lines are dropped; any other output of
  that import passes through.
- brax warns, each time an environment is built, that its System and
  pipelines are no longer maintained; we use brax's MJX pipeline on purpose.
  Only that message is filtered.
"""

import contextlib
import io
import sys
import warnings

warnings.filterwarnings(
    "ignore", message=r"Brax System, piplines and environments are not actively",
    category=UserWarning)

_out = io.StringIO()
with contextlib.redirect_stdout(_out):
  import mujoco.mjx  # noqa: F401  (prints the warp notices, once per process)
for _line in _out.getvalue().splitlines(keepends=True):
  if not _line.startswith(("Failed to import warp:", "Failed to import mujoco_warp:")):
    sys.stdout.write(_line)
del _out
