"""Every command the README, BUILD.md and results/ name beside a figure still
runs as written against today's tree: its make target exists, its script
exists, and a driver's flags parse (and, for train and sweep, make a valid
Config) with today's driver. Nothing compiles: the studies themselves take
hours. (`command.txt` files are records of what ran at their commit, and are
not checked.)"""

import glob
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.helpers import ROOT
DOCS = ["README.md", "BUILD.md"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "results/**/*.md"),
                                                recursive=True))
DRIVERS = ("train", "sweep", "sac", "bench", "render", "plot", "step_ops")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*=")
_START = re.compile(r"^((\.venv/bin/)?python3?|make|experiments/)")


def _commands_in(text):
  """Shell lines of fenced blocks (continuations joined, comments cut) and
  inline code spans that start like a command."""
  lines = []
  for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
    for line in block.replace("\\\n", " ").splitlines():
      lines.append(line.split(" # ")[0])
  for span in re.findall(r"`([^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
    lines.append(span.replace("\\", " "))
  for line in lines:
    words = line.split()
    while words and _ENV.match(words[0]):  # VAR=value prefixes
      words = words[1:]
    if words and _START.match(words[0]) and not line.lstrip().startswith(("import", "from")):
      yield words


def commands():
  """[(doc, words)] over every doc, each command once."""
  seen, out = set(), []
  for doc in DOCS:
    with open(os.path.join(ROOT, doc)) as f:
      for words in _commands_in(f.read()):
        if (key := " ".join(words)) not in seen:
          seen.add(key)
          out.append((doc, words))
  return out


def make_targets():
  with open(os.path.join(ROOT, "Makefile")) as f:
    return set(re.findall(r"^([A-Za-z0-9_-]+):", f.read(), re.M))


def driver_call(words):
  """(driver, argv) of a python driver command, else None."""
  if re.match(r"^experiments/\w+\.py$", words[0]):  # run as a script
    words = ["python"] + words
  if len(words) < 2 or not re.match(r"^(\.venv/bin/)?python3?$", words[0]):
    return None
  if words[1] == "-m" and len(words) > 2 and words[2].startswith("experiments."):
    name, args = words[2].split(".", 1)[1], words[3:]
  elif m := re.match(r"^experiments/(\w+)\.py$", words[1]):
    name, args = m[1], words[2:]
  else:
    return None
  return (name, args) if name in DRIVERS else None


def test_the_docs_name_commands_of_each_kind():
  """The extraction finds what it checks (a test that finds nothing passes
  vacuously)."""
  found = commands()
  assert len(found) > 40
  assert any(w[0] == "make" for _, w in found)
  assert {d for d, a in filter(None, (driver_call(w) for _, w in found))} >= {
      "train", "sweep", "bench", "render"}


def test_every_named_make_target_and_script_exists():
  targets, missing = make_targets(), []
  for doc, words in commands():
    if words[0] == "make":
      missing += [f"{doc}: make {t}" for t in words[1:2] if t not in targets]
    paths = [w for w in words if re.match(r"^experiments/[\w/]+\.(py|sh)$", w)]
    if words[1:2] == ["-m"] and len(words) > 2:
      paths.append(words[2].replace(".", "/") + ".py")
    missing += [f"{doc}: {p}" for p in paths if not os.path.exists(os.path.join(ROOT, p))]
  assert not missing, "named but absent:\n" + "\n".join(missing)


_CHECK = """
import importlib, json, sys
from absl import flags
name, calls = sys.argv[1], json.loads(sys.argv[2])
driver = importlib.import_module("experiments." + name)
driver.define_flags()
from experiments.harness import config_flags
bad = []
for doc, argv in calls:
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS([name] + argv)
    if name in ("train", "sweep"):
      config_flags.config_from_flags()
  except (flags.Error, ValueError, SystemExit) as e:
    bad.append(f"{doc}: {name} {' '.join(argv)}: {e}")
print(json.dumps(bad))
"""


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_named_driver_command_parses_today(driver):
  calls = [(doc, args) for doc, words in commands() if not {"--help", "--helpfull"} & set(words)
           if (c := driver_call(words)) and c[0] == driver for args in [c[1]]]
  if not calls:
    pytest.skip(f"no doc names a {driver} command")
  out = subprocess.run([sys.executable, "-c", _CHECK, driver, json.dumps(calls)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert out.returncode == 0, out.stderr[-2000:]
  bad = json.loads(out.stdout.strip().splitlines()[-1])
  assert not bad, "commands that no longer parse:\n" + "\n".join(bad)


def test_a_stale_command_is_caught(tmp_path):
  """The check fails for a flag that is gone and a script that moved."""
  calls = [("doc", ["--no_such_flag=1"]), ("doc", ["--env=idp", "--temperature=-1"])]
  out = subprocess.run([sys.executable, "-c", _CHECK, "train", json.dumps(calls)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, JAX_PLATFORMS="cpu"))
  bad = json.loads(out.stdout.strip().splitlines()[-1])
  assert len(bad) == 2, bad
  assert not os.path.exists(os.path.join(ROOT, "experiments/fig2.sh"))  # moved to studies/
