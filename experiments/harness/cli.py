"""The drivers' entry point: the environment checked before mujoco or a JAX
backend loads, absl's flag errors as one line and exit 2, faults met while
writing as one line and exit 1."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys

from absl import app, flags

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


def once(define_flags):
  """A driver's flag definitions, run at most once per process: a driver
  defines its flags when it runs (`run`), or when a test asks, never on import."""
  done = []

  @functools.wraps(define_flags)
  def define():
    if not done:
      define_flags()
      done.append(True)
  return define


class _Tolerant:
  """A text stream whose failures cost nothing: once a write or flush fails
  (the reader of a pipe is gone, as `tee` is after Ctrl-C; the terminal is
  closed), its file descriptor goes to /dev/null and output is dropped, so a
  run can still stop, save and write its files."""

  def __init__(self, stream):
    self._stream = stream

  def _drop(self):
    try:
      devnull = os.open(os.devnull, os.O_WRONLY)
      os.dup2(devnull, self._stream.fileno())
      os.close(devnull)
    except (OSError, ValueError):
      pass

  def write(self, text):
    try:
      return self._stream.write(text)
    except OSError:
      self._drop()
      return len(text)

  def flush(self):
    try:
      self._stream.flush()
    except OSError:
      self._drop()
      with contextlib.suppress(OSError):
        self._stream.flush()  # what was buffered goes to /dev/null

  def __getattr__(self, name):
    return getattr(self._stream, name)


def tolerate_closed_output():
  """sys.stdout and sys.stderr become `_Tolerant` (once)."""
  for name in ("stdout", "stderr"):
    stream = getattr(sys, name)
    if stream is not None and not isinstance(stream, _Tolerant):
      setattr(sys, name, _Tolerant(stream))


def run(main, define_flags, backend=True):
  """Defines the driver's flags, then app.run(main) with `parse_flags`:
  every driver's entry point. backend: False for the readers of run files,
  which compute nothing with JAX (and should not take a GPU's memory to
  draw a plot). Output that cannot be written is dropped
  (`tolerate_closed_output`): it never costs a run its save."""
  tolerate_closed_output()
  define_flags()
  app.run(out_of_memory_in_one_line(main),
          flags_parser=lambda argv: parse_flags(argv, backend))


def out_of_memory_in_one_line(main):
  """`main`, where running out of memory (XLA's RESOURCE_EXHAUSTED) ends in
  one line naming the allocation, exit 1, rather than a long traceback."""
  @functools.wraps(main)
  def guarded(argv):
    try:
      return main(argv)
    except Exception as e:  # XlaRuntimeError/JaxRuntimeError: matched by its text
      text = str(e)
      if "RESOURCE_EXHAUSTED" not in text and "Out of memory" not in text:
        raise
      detail = next((l.strip() for l in text.splitlines() if "memory" in l.lower()),
                    text.splitlines()[0] if text else "")
      fail(f"out of memory: {detail[:200]}; choose smaller sizes (batch, samples, seeds, "
           "buffer) or a device with more memory.", hard=True, code=1)
  return guarded


def check_run_flags(at_least: dict):
  """The checks train.py and sweep.py share: each flag in `at_least` (name ->
  lowest allowed integer), --resume against --overwrite, and --seed."""
  for name, low in at_least.items():
    if getattr(FLAGS, name) < low:
      fail(f"{name}={getattr(FLAGS, name)} is invalid; it must be an integer >= {low}.")
  if FLAGS.resume and FLAGS.overwrite:
    fail("resume and overwrite were both given; choose one.")
  import smpc_jax  # here: mujoco loads after check_environment()
  try:
    smpc_jax.config.check_seed(FLAGS.seed)
  except ValueError as e:
    fail(str(e))


def no_positional(argv):
  """absl passes unparsed words through; a stray one is a typo, not a no-op."""
  if len(argv) > 1:
    fail(f"unexpected argument {argv[1]!r}; flags take the form --name=value "
         f"(see --help).")
