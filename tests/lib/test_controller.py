"""The deployable controller (issue 30): `controller.make(state)` is what
evaluation runs; `python -m experiments.export` serialises it with its
parameters, and experiments/controller_loader.py runs that file with jax and
numpy alone, in a process where importing smpc_jax, flax, optax, brax or
mujoco fails, giving the in-package controller's actions for the same keys."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import smpc_jax as sj
from smpc_jax import checkpoint as ckpt
from smpc_jax import controller, runner
from tests.helpers import ROOT

TINY = dict(total_steps=20, episode_length=20, num_samples=16, target_samples=4,
            hidden_sizes=(16, 16), batch_size=4)
KEYS = 5  # actions compared


def reference_actions(state, obs):
  """Actions and plans of the in-package controller from its initial plan,
  keys PRNGKey(100 + t), at the given observations [KEYS, obs]."""
  ctrl = controller.make(state)
  act = jax.jit(ctrl.act)
  plan = jax.jit(ctrl.initial_plan)(jax.random.PRNGKey(7))
  actions = []
  for t in range(KEYS):
    action, plan = act(obs[t], plan, jax.random.PRNGKey(100 + t))
    actions.append(np.asarray(action))
  return np.stack(actions), np.asarray(plan)


@pytest.fixture(scope="module", params=[  # about 50 s each: `make test-slow`
    pytest.param("mppi", marks=pytest.mark.slow), pytest.param("actor", marks=pytest.mark.slow)])
def run_dir(request, tmp_path_factory):
  """A run folder with the checkpoint of a fresh run of 2 seeds (the
  controller is the same function of its parameters, trained or not)."""
  out = tmp_path_factory.mktemp(f"run_{request.param}")
  config = sj.preset("hopper", control=request.param, **TINY)
  spec = runner.Spec(config, seed=3, seeds=2)
  state, progress = runner.start(spec)
  runner.save(ckpt.manager(str(out / "checkpoints")), state, progress, spec)
  return out, controller.run_of(state, 1)


LOADER_WITHOUT_THE_PACKAGE = textwrap.dedent("""
    import json, sys
    class Refuse:  # importing any of these fails, as where they are not installed
      def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("smpc_jax", "flax", "optax", "brax", "mujoco", "orbax", "chex"):
          raise ImportError(f"{{name}} is not available here")
    sys.meta_path.insert(0, Refuse())
    sys.path.insert(0, {loader_dir!r})
    import jax, numpy as np
    from controller_loader import load
    ctrl = load({path!r})
    obs = np.asarray(json.loads(sys.stdin.read()), np.float32)
    plan = ctrl.initial_plan(jax.random.PRNGKey(7))
    actions = []
    for t in range(len(obs)):
      action, plan = ctrl.act(obs[t], plan, jax.random.PRNGKey(100 + t))
      actions.append(np.asarray(action).tolist())
    assert not any(m.split(".")[0] in ("smpc_jax", "flax", "brax", "mujoco") for m in sys.modules)
    print(json.dumps(dict(actions=actions, plan=np.asarray(plan).tolist(), meta=ctrl.meta)))
    """)


def test_exported_controller_acts_as_the_package_without_it(run_dir, tmp_path):
  out, state = run_dir
  path = tmp_path / "controller.bin"
  p = subprocess.run([sys.executable, "-m", "experiments.export", f"--run_dir={out}",
                      f"--out={path}", "--seed_index=1"],
                     capture_output=True, text=True, timeout=600, cwd=ROOT)
  assert p.returncode == 0, p.stderr[-3000:]
  assert p.stdout.startswith(f"wrote {path} (")
  size = sj.train.parts(state.config).environment.obs_size
  obs = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (KEYS, size)), np.float32)
  want_actions, want_plan = reference_actions(state, obs)
  p = subprocess.run([sys.executable, "-c", LOADER_WITHOUT_THE_PACKAGE.format(
      loader_dir=os.path.join(ROOT, "experiments"), path=str(path))],
                     input=json.dumps(obs.tolist()), capture_output=True, text=True,
                     timeout=300, cwd=str(tmp_path))
  assert p.returncode == 0, p.stderr[-3000:]
  got = json.loads(p.stdout)
  np.testing.assert_allclose(got["actions"], want_actions, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got["plan"], want_plan, rtol=1e-5, atol=1e-6)
  meta = got["meta"]
  assert (meta["env"], meta["obs_size"], meta["action_size"]) == ("hopper", size, 3)
  assert meta["control"] == state.config.control and meta["run"]["step"] == 0
  assert meta["dt"] == pytest.approx(0.008)
  # The loader's own command (the README's): a few actions from a zero observation.
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "controller_loader.py"),
                      str(path), "--steps=2"], capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-3000:]
  assert p.stdout.startswith("hopper: obs ") and "action 1: [" in p.stdout


def test_export_refuses_what_it_cannot_export(tmp_path):
  for args, words in (
      ([f"--run_dir={tmp_path}"], f"error: run_dir={str(tmp_path)!r} holds no checkpoints/."),
      (["--run_dir=x", "--platforms=cpu,gpu"], "error: platforms='cpu,gpu' is invalid; allowed: "
                                               "cpu, cuda, rocm, tpu, comma separated.")):
    p = subprocess.run([sys.executable, "-m", "experiments.export", *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 2
    assert [l for l in p.stderr.splitlines() if l.startswith("error:")] == [words]
