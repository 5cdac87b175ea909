"""Run folders and the files in them: one run per folder, held by one
process; paths checked before any work; strict JSON written atomically; run
files read back with a damaged one named in one line."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil

import numpy as np

from experiments.harness.cli import fail


def strict(obj):
  """`obj` with every non-finite float replaced by None (strict JSON)."""
  if isinstance(obj, dict):
    return {k: strict(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict(v) for v in obj]
  if isinstance(obj, (float, np.floating)):
    return float(obj) if np.isfinite(obj) else None
  if isinstance(obj, np.integer):
    return int(obj)
  return obj


def write_json(path, obj):
  """Strict JSON (NaN and inf become null), written atomically: a write that
  fails (a full disk) leaves the previous file as it was."""
  with atomic(path) as tmp, open(tmp, "w") as f:
    json.dump(strict(obj), f, indent=2, allow_nan=False)
    f.write("\n")


@contextlib.contextmanager
def atomic(path):
  """Yields a temporary name beside `path` to write; renamed to `path` when
  the block succeeds, removed when it fails."""
  root, ext = os.path.splitext(str(path))
  tmp = f"{root}.tmp{ext}"
  try:
    yield tmp
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def _short(path: str) -> str:
  """`path` quoted, its middle elided when long (a line stays readable)."""
  return repr(path) if len(path) <= 100 else repr(path[:48] + "..." + path[-48:])


# Room a run needs below its folder: orbax's checkpoint paths run to about
# 130 characters (checkpoints/<step>.orbax-checkpoint-tmp-<time>/state/
# ocdbt.process_0/d/<32 hex digits>).
PATH_ROOM = 200


def check_dir(path, flag="out_dir", room=PATH_ROOM):
  """Exits with one line when `path` cannot be a directory we write into,
  `room` characters of paths below it included."""
  if os.path.exists(path) and not os.path.isdir(path):
    fail(f"{flag}={path!r} is invalid; it is a file, it must be a directory.")
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  target = path if os.path.isdir(path) else parent  # what must be writable
  if not os.path.isdir(parent) or not os.access(target, os.W_OK):
    fail(f"{flag}={path!r} cannot be created or written: {target!r} is not a writable "
         f"directory.")
  name_max = os.pathconf(parent, "PC_NAME_MAX")
  long_name = next((n for n in os.path.abspath(path).split(os.sep) if len(n) > name_max), None)
  if long_name:
    fail(f"{flag}={_short(path)} is invalid; a name in it has {len(long_name)} characters, "
         f"this filesystem allows at most {name_max}.")
  path_max = os.pathconf(parent, "PC_PATH_MAX")
  if len(os.path.abspath(path)) + room > path_max:
    fail(f"{flag}={_short(path)} is too long: its absolute path has {len(os.path.abspath(path))} "
         f"characters; the files below it need {room} more, and paths may have at most "
         f"{path_max}.")


def ensure_dir(path, flag="out_dir", room=PATH_ROOM):
  check_dir(path, flag, room)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    fail(f"{flag}={path!r} cannot be created: {e.strerror}.")
  return path


def check_out_file(path, flag, suffixes):
  """Exits with one line, before any work, when the file `path` could not be
  written at the end: a directory, a suffix other than `suffixes`, or a
  parent folder that cannot be made or written."""
  if not path.endswith(tuple(suffixes)):
    fail(f"{flag}={path!r} is invalid; it must end in {', '.join(suffixes)}.")
  if os.path.isdir(path):
    fail(f"{flag}={path!r} is invalid; it is a directory, it must be a file.")
  if os.path.exists(path) and not os.access(path, os.W_OK):
    fail(f"{flag}={path!r} cannot be written.")
  parent = os.path.dirname(os.path.abspath(path))
  existing = parent
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
    fail(f"{flag}={path!r} cannot be created or written: {existing!r} is not a writable "
         f"directory.")
  check_dir(parent, flag, room=len(os.path.basename(path)) + 8)


# What each driver leaves in its out_dir, besides LOCK and OWNER.
RUN_FILES = {
    "train.py": ("metrics.jsonl", "summary.json", "returns.png", "checkpoints", "tensorboard",
                 "checkpoints_damaged"),
    "sweep.py": ("metrics.jsonl", "summary.json", "table.md", "returns.png", "heatmap.png",
                 "checkpoints", "tensorboard", "checkpoints_damaged"),
    "sac.py": ("metrics.jsonl", "summary.json"),
}


LOCK = ".lock"  # flock'ed by the process that runs in the folder, for its lifetime


OWNER = ".owner"  # the driver whose run the folder holds


_held = []  # the open lock files of this process (closing one would release it)


def lock_dir(path, flag="out_dir"):
  """Holds PATH/.lock (an exclusive flock) until this process exits; one line
  and exit 2 when another process holds it. The kernel drops the lock when
  its holder dies, however it dies: a stale lock file locks nothing."""
  f = open(os.path.join(path, LOCK), "a+")
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      raise
    f.seek(0)
    pid = f.read().strip() or "?"
    f.close()
    fail(f"{flag}={path!r} is in use by another process (pid {pid}); wait for it to end "
         f"or choose another {flag}.")
  f.seek(0)
  f.truncate()
  f.write(f"{os.getpid()}\n")
  f.flush()
  _held.append(f)


def owner(path):
  """The driver that owns run folder `path` (its OWNER file), or None."""
  try:
    with open(os.path.join(path, OWNER)) as f:
      return f.read().strip() or None
  except OSError:
    return None


def claim_run_dir(path, driver, resume=False, overwrite=False, flag="out_dir"):
  """Makes `path` this process's run folder, or exits with one line (code 2):
  another process holds it; it holds another driver's run (by its OWNER, or
  for a folder from before OWNER existed, by files `driver` does not write);
  or it holds a previous run and neither `resume` nor `overwrite` is given
  (`overwrite` removes that run's files, and only where OWNER names
  `driver`). Returns the run's files present."""
  check_dir(path, flag)
  if resume and not os.path.isdir(path):
    fail(f"resume: {flag}={path!r} does not exist; there is no run to continue.")
  ensure_dir(path, flag)
  lock_dir(path, flag)
  others = sorted({f for files in RUN_FILES.values() for f in files})
  present = [f for f in others if os.path.exists(os.path.join(path, f))]
  own = RUN_FILES[driver]
  held_by = owner(path)
  foreign = present if held_by not in (None, driver) else [f for f in present if f not in own]
  if foreign:
    fail(f"{flag}={path!r} holds a run of "
         f"{held_by if held_by not in (None, driver) else 'another driver'} "
         f"({', '.join(present)}); {driver} does not write into it: choose another {flag}.")
  previous = [f for f in own if f in present]
  if previous and not resume:
    if not overwrite:
      fail(f"{flag}={path!r} holds a previous run ({', '.join(previous)}); "
           + ("pass --resume to continue it or --overwrite to replace it." if "checkpoints" in own
              else "pass --overwrite to replace it, or choose another out_dir."))
    if held_by is None:  # files by our names, but no run of ours said it made them
      fail(f"{flag}={path!r} holds {', '.join(previous)} but no {OWNER} file: no driver of "
           f"ours made that run, so --overwrite deletes nothing there; choose another {flag}, "
           "or remove those files yourself.")
    for f in previous:
      p = os.path.join(path, f)
      shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
  with open(os.path.join(path, OWNER), "w") as f:
    f.write(driver + "\n")
  return previous if resume else []


def read_json(path, flag="folder"):
  """The JSON object in `path`, or one line and exit 2."""
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    fail(f"{flag}: {path!r} cannot be read: {e.strerror}.")
  if not text.strip():
    fail(f"{flag}: {path!r} is empty.")
  try:
    obj = json.loads(text)
  except ValueError as e:
    fail(f"{flag}: {path!r} is not valid JSON (line {getattr(e, 'lineno', '?')}: "
         f"{getattr(e, 'msg', e)}); was its writer cut off?")
  if not isinstance(obj, dict):
    fail(f"{flag}: {path!r} holds no JSON object.")
  return obj


def read_jsonl(path, flag="folder", need=()):
  """The JSON objects of `path`, one a line (blank lines skipped), each
  holding the keys `need`, or one line naming the file and line, exit 2."""
  try:
    with open(path) as f:
      rows = f.read().splitlines()
  except OSError as e:
    fail(f"{flag}: {path!r} cannot be read: {e.strerror}.")
  lines = []
  for i, row in enumerate(rows, 1):
    if not row.strip():
      continue
    try:
      line = json.loads(row)
    except ValueError:
      fail(f"{flag}: {path!r} line {i} is not valid JSON; was its writer cut off?")
    missing = [k for k in need if not isinstance(line, dict) or k not in line]
    if missing:
      fail(f"{flag}: {path!r} line {i} has no {', '.join(missing)}.")
    lines.append(line)
  if not lines:
    fail(f"{flag}: {path!r} holds no lines.")
  return lines
