"""Shared driver helpers: one absl flag per Config field, statistics, plots."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import typing
import warnings

from absl import flags
import numpy as np

from smpc_jax import Config, envs, preset

FLAGS = flags.FLAGS


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


def fail(message: str, hard: bool = False):
  """One line on stderr, exit 2. hard: skip interpreter teardown, for errors
  met while a library still has I/O in flight (a damaged checkpoint leaves
  TensorStore reads that would print tracebacks into a closed event loop)."""
  if hard:  # other threads' late tracebacks go nowhere; our line goes to the real stderr
    sys.stdout.flush()
    real = os.dup(2)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
    sys.stderr = open(os.devnull, "w")
    os.write(real, f"error: {message}\n".encode())
    os._exit(2)
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(2)


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
  """Strict JSON (NaN and inf become null), written atomically."""
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    json.dump(strict(obj), f, indent=2, allow_nan=False)
    f.write("\n")
  os.replace(tmp, path)


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
  fig.savefig(path, dpi=120)
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
  fig.savefig(path, dpi=120)
  plt.close(fig)


def check_dir(path, flag="out_dir"):
  """Exits with one line when `path` cannot be a directory we write into."""
  if os.path.exists(path) and not os.path.isdir(path):
    fail(f"{flag}={path!r} is invalid; it is a file, it must be a directory.")
  parent = os.path.dirname(os.path.abspath(path))
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent) or not os.access(parent if not os.path.isdir(path) else path,
                                                 os.W_OK):
    fail(f"{flag}={path!r} cannot be created or written: {parent!r} is not a writable "
         f"directory.")


def ensure_dir(path, flag="out_dir"):
  check_dir(path, flag)
  try:
    os.makedirs(path, exist_ok=True)
  except OSError as e:
    fail(f"{flag}={path!r} cannot be created: {e.strerror}.")
  return path


# --- Training-episode returns, ours and the authors' code read alike ---------

BEST_RETURN = 9000.0  # the paper's bar for a balanced double pendulum (best ~9.36k)
_AUTHORS_LINE = re.compile(r"global_step=(\d+), episodic_return=\[?([-0-9.eE+]+)")


def our_episodes(folder):
  """[(seed episodes [(step, return)], last step)] of one of our runs. An
  episode's step is the env step where it ended (`episode_steps`), or in
  runs logged before that field the end of its chunk."""
  lines = [json.loads(l) for l in open(os.path.join(folder, "metrics.jsonl")) if l.strip()]
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
