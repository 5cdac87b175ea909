"""Shared driver helpers: flag parsing that answers bad input in one line,
one absl flag per Config field, run folders (a lock, an owner, checks of
paths), readers of run files, statistics, plots."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import typing
import warnings

from absl import app, flags
import numpy as np

FLAGS = flags.FLAGS


def fail(message: str, hard: bool = False, code: int = 2):
  """One line on stderr, exit `code` (2: bad input; 1: a fault met while
  running). hard: skip interpreter teardown, for errors met while a library
  still has I/O in flight (a damaged checkpoint leaves TensorStore reads that
  would print tracebacks into a closed event loop)."""
  if hard:  # other threads' late tracebacks go nowhere; our line goes to the real stderr
    sys.stdout.flush()
    real = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    sys.stderr = open(os.devnull, "w")
    os.write(real, f"error: {message}\n".encode())
    os._exit(code)
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(code)


# --- The environment, checked before mujoco or a JAX backend loads -----------

_OFF = ("", "0", "false", "no", "off")
# What mujoco accepts on Linux (mujoco/rendering/classic/gl_context.py).
MUJOCO_GL = ("egl", "osmesa", "glx", "glfw", "disable", "disabled", "off", "false", "0",
             "enable", "enabled", "on", "true", "1")


def check_environment():
  """One line and exit 2 for environment variables the runs cannot work
  under: JAX_ENABLE_X64 (every array of the step is float32; x64 turns
  Python scalars into float64 and the compiled loops' carries disagree) and
  a MUJOCO_GL that mujoco refuses at import."""
  x64 = os.environ.get("JAX_ENABLE_X64", "")
  if x64.strip().lower() not in _OFF:
    fail(f"JAX_ENABLE_X64={x64!r} is not supported; the runs are float32: unset it "
         "(or set it to 0).")
  gl = os.environ.get("MUJOCO_GL")
  if gl is not None and gl.strip().lower() not in MUJOCO_GL + ("",):
    fail(f"MUJOCO_GL={gl!r} is invalid; allowed: egl, osmesa, glx, glfw (or unset it).")


check_environment()  # before smpc_jax imports mujoco
from smpc_jax import Config, envs, preset  # noqa: E402


def check_backend():
  """Starts JAX's backend; one line and exit 2 when JAX_PLATFORMS names one
  this machine lacks. (Multi-process runs call it after jax.distributed.)"""
  import jax
  try:
    jax.devices()
  except RuntimeError as e:
    platforms = os.environ.get("JAX_PLATFORMS", "")
    reason = str(e).splitlines()[0].split(" (set JAX_PLATFORMS")[0]
    fail(f"JAX_PLATFORMS={platforms!r} cannot be used on this machine ({reason}); "
         "unset it to use the devices it has." if platforms else
         f"no JAX backend could start: {reason}.")


# --- Flags -------------------------------------------------------------------

_KINDS = {"int": "an integer", "float": "a number", "bool": "true or false"}


def flag_error(e: flags.Error) -> str:
  """absl's parsing error as our one line: the flag, its value, what is allowed."""
  if isinstance(e, flags.UnrecognizedFlagError):
    hint = re.search(r"Did you mean: (.*?) \?", str(e))
    return (f"unknown flag --{e.flagname}"
            + (f"; did you mean --{hint[1].split(', ')[0]}?" if hint else "")
            + " (see --helpfull for every flag).")
  m = re.match(r"flag --([^=]+)=(.*?): (.*)$", str(e), re.S)
  if not m or m[1] not in FLAGS:
    return str(e).splitlines()[0]
  name, value, reason = m[1], m[2], m[3].splitlines()[0]
  flag = FLAGS[name]
  parser = getattr(flag, "parser", None)
  allowed = getattr(parser, "enum_values", None) or getattr(
      getattr(parser, "_enum_parser", None), "enum_values", None)
  if allowed:
    return f"{name}={value!r} is invalid; allowed: {', '.join(allowed)}."
  kind = _KINDS.get(flag.flag_type())
  if kind:
    low, high = getattr(parser, "lower_bound", None), getattr(parser, "upper_bound", None)
    bounds = (f" >= {low}" if low is not None else "") + (
        f"{' and' if low is not None else ''} <= {high}" if high is not None else "")
    return f"{name}={value!r} is invalid; it must be {kind}{bounds}."
  return f"{name}={value!r} is invalid; {reason}."


def parse_flags(argv, backend=True):
  """absl's parse, with its errors as one line and exit 2 (absl: two lines,
  exit 1); then (`backend`) the JAX backend is started, unless the driver
  starts it after linking several processes (devices.setup)."""
  try:
    rest = FLAGS(argv)
  except flags.Error as e:
    fail(flag_error(e))
  if backend and "coordinator_address" not in FLAGS:
    check_backend()
  return rest


@contextlib.contextmanager
def write_faults(kept: str):
  """A write that fails in the block (a full disk, a folder removed) ends
  the process with one line, naming the file, the reason and `kept` (what
  survives), and exit 1."""
  try:
    yield
  except OSError as e:
    if e.errno is None:
      raise
    fail(f"writing {e.filename or 'a file'} failed: {e.strerror}; stopped. {kept}", code=1)


def run(main, backend=True):
  """app.run(main) with `parse_flags`: every driver's entry point. backend:
  False for the readers of run files, which compute nothing with JAX (and
  should not take a GPU's memory to draw a plot)."""
  app.run(main, flags_parser=lambda argv: parse_flags(argv, backend))


def define_config_flags():
  """--FIELD for every Config field; unset flags keep the env's preset."""
  hints = typing.get_type_hints(Config)
  for field in dataclasses.fields(Config):
    kind, help_ = hints[field.name], f"Config.{field.name} (default: the env preset)"
    if field.name == "env":
      flags.DEFINE_string("env", "idp", f"Environment: {' | '.join(envs.names())}.")
    elif kind is bool:
      flags.DEFINE_boolean(field.name, None, help_)
    elif kind is int:
      flags.DEFINE_integer(field.name, None, help_)
    elif kind is float:
      flags.DEFINE_float(field.name, None, help_)
    elif kind is str:
      flags.DEFINE_string(field.name, None, help_)
    else:  # tuple of ints
      flags.DEFINE_list(field.name, None, help_ + ", comma separated")


def config_from_flags() -> Config:
  """The preset of --env with every flag that was set; exits with one line
  naming the bad field when the result is invalid."""
  overrides = {}
  for field in dataclasses.fields(Config):
    value = getattr(FLAGS, field.name)
    if field.name == "env" or value is None:
      continue
    if isinstance(value, list):
      try:
        value = tuple(int(v) for v in value)
      except ValueError:
        fail(f"{field.name}={','.join(value)!r} is invalid; it must be integers.")
    overrides[field.name] = value
  try:
    return preset(FLAGS.env, **overrides)
  except ValueError as e:
    fail(str(e))


def iqm(values) -> float:
  """Interquartile mean: the mean of the middle 50% (25% trimmed each side)."""
  v = np.sort(np.asarray(values, np.float64))
  k = int(np.floor(0.25 * len(v)))
  return float(np.mean(v[k:len(v) - k]))


def iqm_ci(values, level=0.95, resamples=10_000, seed=0) -> list:
  """Percentile-bootstrap confidence interval [lo, hi] of the IQM over seeds
  (seeds resampled with replacement). Wide with few seeds, as it should be."""
  v = np.asarray(values, np.float64)
  idx = np.random.default_rng(seed).integers(0, len(v), (resamples, len(v)))
  boot = np.sort(v[idx], axis=1)
  k = int(np.floor(0.25 * len(v)))
  stats = boot[:, k:len(v) - k].mean(1)
  tail = 100 * (1 - level) / 2
  return [float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))]


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


def save_figure(fig, path):
  """fig.savefig(path), atomically (see `atomic`)."""
  with atomic(path) as tmp:
    fig.savefig(tmp, dpi=120)


def no_positional(argv):
  """absl passes unparsed words through; a stray one is a typo, not a no-op."""
  if len(argv) > 1:
    fail(f"unexpected argument {argv[1]!r}; flags take the form --name=value "
         f"(see --help).")


def flag_values(names) -> dict:
  """{name: value} of the given flags, as the run saw them."""
  return {n: getattr(FLAGS, n) for n in names}


def command_line(drop=(), add=()) -> str:
  """The command that started this process, minus flags named in `drop`,
  plus the words in `add` (for the resume hint)."""
  import shlex
  args = [a for a in sys.argv[1:] if a.lstrip("-").split("=")[0] not in drop]
  python = sys.executable or "python"
  if not os.path.relpath(python).startswith(".."):
    python = os.path.relpath(python)
  return shlex.join([python, sys.argv[0], *args, *add])


def plot_returns(path, steps, curves, eval_points=None, title=""):
  """Median and spread over seeds of the training-episode returns.

  steps [T]; curves [S, T] (NaN where a seed finished no episode in a chunk);
  eval_points: optional (step, [S] returns) pairs, drawn as markers.
  """
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  curves = np.asarray(curves, np.float64)
  fig, ax = plt.subplots(figsize=(7, 4.2))
  with np.errstate(all="ignore"), warnings.catch_warnings():
    warnings.simplefilter("ignore")  # all-NaN columns: chunks with no finished episode
    med = np.nanmedian(curves, 0)
    lo, hi = np.nanmin(curves, 0), np.nanmax(curves, 0)
    q1, q3 = np.nanpercentile(curves, 25, 0), np.nanpercentile(curves, 75, 0)
  ax.fill_between(steps, lo, hi, alpha=0.15, color="C0", lw=0, label="min-max over seeds")
  ax.fill_between(steps, q1, q3, alpha=0.3, color="C0", lw=0, label="25-75%")
  ax.plot(steps, med, color="C0", lw=2, label=f"median of {len(curves)} seeds")
  if eval_points:
    for i, (s, r) in enumerate(eval_points):
      ax.scatter(np.full(len(r), s), r, color="C3", s=12, zorder=3,
                 label="evaluation (per seed)" if i == 0 else None)
  ax.set_xlabel("environment steps")
  ax.set_ylabel("episode return")
  ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower right", fontsize=8)
  fig.tight_layout()
  save_figure(fig, path)
  plt.close(fig)


def plot_sweep(path, steps, curves, values, title=""):
  """One median-over-seeds learning curve per swept value, 25-75% shaded.
  curves [V, S, T] (NaN where a run finished no episode in a chunk)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 4.2))
  for i, (v, c) in enumerate(zip(values, np.asarray(curves, np.float64))):
    with np.errstate(all="ignore"), warnings.catch_warnings():
      warnings.simplefilter("ignore")
      q1, med, q3 = np.nanpercentile(c, [25, 50, 75], 0)
    ax.fill_between(steps, q1, q3, alpha=0.2, color=f"C{i}", lw=0)
    name = v if isinstance(v, str) else f"{v:g}"
    ax.plot(steps, med, color=f"C{i}", lw=2, label=f"{name} (median of {len(c)})")
  ax.set_xlabel("environment steps")
  ax.set_ylabel("episode return")
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(loc="upper left", fontsize=8)
  fig.tight_layout()
  save_figure(fig, path)
  plt.close(fig)


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
  if not os.path.isdir(parent) or not os.access(parent if not os.path.isdir(path) else path,
                                                 os.W_OK):
    fail(f"{flag}={path!r} cannot be created or written: {parent!r} is not a writable "
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


# --- Run folders: one run each, held by one process --------------------------

# What each driver leaves in its out_dir, besides LOCK and OWNER.
RUN_FILES = {
    "train.py": ("metrics.jsonl", "summary.json", "returns.png", "checkpoints", "tensorboard",
                 "checkpoints_damaged"),
    "sweep.py": ("summary.json", "table.md", "returns.png", "heatmap.png"),
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
  (`overwrite` removes that run's files). Returns the run's files present."""
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
           + ("pass --resume to continue it or --overwrite to replace it." if driver == "train.py"
              else "pass --overwrite to replace it, or choose another out_dir."))
    for f in previous:
      p = os.path.join(path, f)
      shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
  with open(os.path.join(path, OWNER), "w") as f:
    f.write(driver + "\n")
  return previous if resume else []


# --- Reading run files: a damaged or empty one is named in one line -----------

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


# --- Training-episode returns, ours and the authors' code read alike ---------

BEST_RETURN = 9000.0  # the paper's bar for a balanced double pendulum (best ~9.36k)
_AUTHORS_LINE = re.compile(r"global_step=(\d+), episodic_return=\[?([-0-9.eE+]+)")


def our_episodes(folder):
  """[(seed episodes [(step, return)], last step)] of one of our runs. An
  episode's step is the env step where it ended (`episode_steps`), or in
  runs logged before that field the end of its chunk."""
  lines = read_jsonl(os.path.join(folder, "metrics.jsonl"), need=("step", "episode_returns"))
  seeds = len(lines[0]["episode_returns"])
  end = lines[-1]["step"]

  def ends(l, s):
    return l["episode_steps"][s] if "episode_steps" in l else [l["step"]] * len(
        l["episode_returns"][s])

  return [([(t, r) for l in lines for t, r in zip(ends(l, s), l["episode_returns"][s])], end)
          for s in range(seeds)]


def authors_episodes(log):
  """(episodes [(step, return)], steps run) of one authors' seed. Their
  global_step is 0-based, +1 here to count steps taken as ours does; they
  print "SPS: .." after every 100th step, so those lines count the steps run."""
  text = open(log).read().splitlines()
  episodes = [(int(m[1]) + 1, float(m[2])) for m in map(_AUTHORS_LINE.search, text) if m]
  steps = 100 * sum(" SPS: " in l for l in text)
  return episodes, max([steps] + [s for s, _ in episodes])


def seed_returns(episodes, end, window):
  """One seed's row: its first episode >= BEST_RETURN, and over the last
  `window` env steps before `end` the median return and the count >= it."""
  first = next((s for s, r in episodes if r >= BEST_RETURN), None)
  recent = [r for s, r in episodes if s > end - window]
  return dict(end=end, first_best=first, median_last=float(np.median(recent)) if recent else None,
              best_last=int(sum(r >= BEST_RETURN for r in recent)), episodes_last=len(recent),
              returns_last=recent)
