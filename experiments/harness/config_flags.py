"""One absl flag per Config field, the Config they give, and the command
line a run was started with."""

from __future__ import annotations

import dataclasses
import os
import sys
import typing

from absl import flags

from experiments.harness.cli import fail  # first: it checks the environment before mujoco loads
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
