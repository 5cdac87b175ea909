"""The README's library example runs as written, at tiny sizes."""

import os
import re

import pytest

from tests.helpers import ROOT

# The example's sizes, made tiny (each replacement must find its text).
TINY = [
    ('sj.preset("idp", total_steps=20_000)',
     'sj.preset("idp", total_steps=40, num_samples=8, target_samples=4, hidden_sizes=(8,), '
     'batch_size=4, episode_length=15)'),
    ("sj.run(s, 1000)", "sj.run(s, 20)"),
    ("jax.random.split(key, 5)", "jax.random.split(key, 2)"),
    ("num_episodes=4", "num_episodes=1"),
    ("seeds=5", "seeds=2"),
    ("chunk_steps=1000", "chunk_steps=20"),
]


def library_example() -> str:
  with open(os.path.join(ROOT, "README.md")) as f:
    text = f.read()
  section = text.split("## As a library", 1)[1]
  return re.search(r"```python\n(.*?)```", section, re.S)[1]


@pytest.mark.slow  # seven small compiles: `make test-slow`
def test_readme_library_example_runs(capsys):
  code = library_example()
  for old, new in TINY:
    assert old in code, old
    code = code.replace(old, new)
  scope = {}
  exec(compile(code, "README.md", "exec"), scope)
  assert int(scope["state"].step[0]) == 40  # the runner's vmapped state, run to the end
  assert int(scope["final"].step) == 40 and scope["returns"].shape == (1,)
  assert capsys.readouterr().out.count("'episode_returns'") == 2  # one line per chunk
