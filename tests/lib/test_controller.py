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
import types

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
      (["--run_dir=x", "--compute_dtype=float16", "--latency_actions=-1"],
       "error: compute_dtype='float16' is invalid; allowed: float32, bfloat16."),
      (["--run_dir=x", "--latency_actions=10", "--out=c.npz"],
       "error: out='c.npz' is invalid; it must end in .bin."),
      (["--run_dir=x", "--platforms=cpu,gpu"], "error: platforms='cpu,gpu' is invalid; allowed: "
                                               "cpu, cuda, rocm, tpu, comma separated.")):
    p = subprocess.run([sys.executable, "-m", "experiments.export", *args],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 2
    assert [l for l in p.stderr.splitlines() if l.startswith("error:")] == [words]


@pytest.mark.slow  # the run_dir fixture's Hopper compile
def test_a_gymnasium_episode_is_the_mjx_episode_from_the_same_state(run_dir):
  """The loader's Gymnasium episodes (controller_loader.gymnasium_returns)
  against our MJX env driven by the same controller with the same keys from
  Gymnasium's own reset state: the same return, step by step, to float32
  rounding (so the observation, action and reward pass through unchanged)."""
  import gymnasium as gym
  sys.path.insert(0, os.path.join(ROOT, "experiments"))
  import controller_loader
  _, state = run_dir
  ctrl = controller.make(state)
  steps = state.config.episode_length
  in_package = types.SimpleNamespace(  # what gymnasium_returns reads of a loaded file
      meta=dict(env="hopper", config=dict(episode_length=steps)),
      act=jax.jit(ctrl.act), initial_plan=jax.jit(ctrl.initial_plan))
  got = controller_loader.gymnasium_returns(in_package, episodes=3, seed=4)
  env = sj.train.parts(state.config).environment.env
  g = gym.make("Hopper-v5", exclude_current_positions_from_observation=False)

  @jax.jit
  def mjx_return(q, v, keys):
    def step(carry, k):
      s, plan, alive, total = carry
      action, plan = ctrl.act(s.obs, plan, k)
      s = env.step(s, action)
      total = total + alive * s.reward
      return (s, plan, alive * (1 - s.done), total), None
    carry = (env.init_state(q, v), ctrl.initial_plan(keys[-1]), 1.0, 0.0)
    return jax.lax.scan(step, carry, keys[:-1])[0][3]

  want = []
  for i in range(3):
    g.reset(seed=4 + i)
    q, v = (np.asarray(x, np.float32) for x in (g.unwrapped.data.qpos, g.unwrapped.data.qvel))
    keys = jax.random.split(jax.random.PRNGKey(4 + i), steps + 1)
    want.append(float(mjx_return(q, v, keys)))
  np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)
  assert len(set(np.round(got, 3))) == 3  # three different episodes


@pytest.mark.slow  # two exports and MJX evaluations of the fixture's Hopper run
def test_make_controller_reports_returns_and_latency_for_both_dtypes(run_dir, tmp_path):
  out, state = run_dir
  p = subprocess.run(["make", "-s", "-C", ROOT, "-o", "install", "controller", f"RUN={out}",
                      "SEED_INDEX=1", "NAME=tiny", "CONTROLLER_EPISODES=3",
                      "CONTROLLER_ACTIONS=7", f"RESULTS={tmp_path}",
                      f"VENV={os.path.dirname(os.path.dirname(sys.executable))}"],
                     capture_output=True, text=True, timeout=900)
  assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-3000:])
  folder = tmp_path / "controller"
  for dtype in ("float32", "bfloat16"):
    report = json.load(open(folder / f"tiny_{dtype}.json"))
    assert report["compute_dtype"] == dtype and report["controller"]["seed_index"] == 1
    returns = report["returns"]
    assert len(returns["gymnasium"]["returns"]) == len(returns["mjx"]["returns"]) == 3
    assert returns["gymnasium_env"] == "Hopper-v5"
    lo, hi = returns["mjx"]["iqm_ci95"]
    assert lo <= returns["mjx"]["iqm"] <= hi and 0 <= returns["mann_whitney_p"] <= 1
    latency = report["latency"]
    assert latency["actions"] == 7 and 0 < latency["median_s"] <= latency["p99_s"]
    assert latency["control_period_s"] == pytest.approx(0.008)
    assert 0 <= latency["over_period"] <= 7
    assert (folder / f"tiny_{dtype}.bin").stat().st_size > 0
  # MJX evaluation of the same state with PRNGKey(0), as the report says.
  want = jax.jit(sj.evaluation.evaluate, static_argnums=2)(state, jax.random.PRNGKey(0), 3)
  got = json.load(open(folder / "tiny_float32.json"))["returns"]["mjx"]["returns"]
  np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5)
  table = (folder / "table.md").read_text().splitlines()
  assert [l.split(" | ")[:2] for l in table[2:4]] == [["| tiny_bfloat16", "bfloat16"],
                                                      ["| tiny_float32", "float32"]]
  assert (folder / "command.txt").read_text().count("--latency_actions=7") == 2
  # The loader's own flags on the exported file.
  p = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "controller_loader.py"),
                      str(folder / "tiny_float32.bin"), "--steps=0", "--gymnasium=1",
                      "--latency=3"], capture_output=True, text=True, timeout=300)
  assert p.returncode == 0, p.stderr[-3000:]
  assert "Gymnasium Hopper-v5, 1 episodes: median" in p.stdout
  assert "latency over 3 actions at batch 1: median" in p.stdout


def test_the_controller_table_refuses_a_folder_without_reports(tmp_path):
  p = subprocess.run([sys.executable, "-m", "experiments.studies.controller_table",
                      f"--dir={tmp_path}"], capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert p.returncode == 2 and p.stderr.startswith(f"error: dir={str(tmp_path)!r} holds no")
