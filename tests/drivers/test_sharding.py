"""Seeds over devices (--shard_seeds) and over processes (jax.distributed), on
CPU devices that XLA_FLAGS=--xla_force_host_platform_device_count fakes. Each
run is a subprocess, so the flag takes effect before jax initialises."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT
TRAIN = os.path.join(ROOT, "experiments", "train.py")
# Two chunks of 50 steps: the second chunk must reuse the first's program.
TINY = ["--total_steps=100", "--chunk_steps=50", "--episode_length=30",
        "--num_samples=8", "--target_samples=4", "--hidden_sizes=16", "--batch_size=4",
        "--eval_episodes=1"]


def env_with(devices: int) -> dict:
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  env["PYTHONPATH"] = os.pathsep.join([ROOT, env.get("PYTHONPATH", "")])
  return env


def train(out_dir, devices, *args, timeout=1800):
  return subprocess.run([sys.executable, TRAIN, "--seeds=4", *TINY, f"--out_dir={out_dir}", *args],
                        env=env_with(devices), capture_output=True, text=True, timeout=timeout)


def results(out_dir):
  """(summary, metrics lines) of a finished run."""
  summary = json.load(open(os.path.join(out_dir, "summary.json")))
  lines = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl"))]
  return summary, lines


LEARNED = ("episode_returns", "mean_return", "q_loss", "dyn_loss", "q_mean", "target_mean",
           "online_ess")


def assert_same_runs(a, b):
  (sa, la), (sb, lb) = a, b
  assert sa["final_episode_returns"] == sb["final_episode_returns"]
  assert len(la) == len(lb) == 2
  for x, y in zip(la, lb):
    for k in LEARNED:
      np.testing.assert_equal(x[k], y[k], err_msg=k)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
  """4 seeds over 4 devices, one process: 50 steps, then resumed from the
  sharded checkpoint to 100 steps."""
  out = tmp_path_factory.mktemp("sharded")
  first = train(out, 4, "--shard_seeds", "--total_steps=50")
  assert first.returncode == 0, first.stderr[-3000:]
  half = results(out)
  p = train(out, 4, "--shard_seeds", "--resume")
  assert p.returncode == 0, p.stderr[-3000:]
  return half, results(out)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
  """4 seeds over two processes of 2 CPU devices each, linked on localhost."""
  out = tmp_path_factory.mktemp("two_processes")
  address = f"localhost:{free_port()}"
  procs = [subprocess.Popen(
      [sys.executable, TRAIN, "--seeds=4", *TINY, f"--out_dir={out}/run",
       f"--coordinator_address={address}", "--num_processes=2", f"--process_id={i}"],
      env=env_with(2), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
      for i in range(2)]
  outs = [p.communicate(timeout=1800) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  return out, outs


@pytest.mark.slow  # 130 s cold: `make test-slow` (make test's 15 minutes)
def test_sharded_run_compiles_one_chunk_program_and_resumes(sharded):
  (half, half_lines), (summary, lines) = sharded
  assert half["devices"] == 4 and half["processes"] == 1 and half["steps_done"] == 50
  assert summary["devices"] == 4 and summary["steps_done"] == 100
  assert half["chunk_programs"] == summary["chunk_programs"] == 1  # lowered once per run
  assert [l["step"] for l in lines] == [50, 100]
  assert lines[0] == half_lines[0]  # the resumed run keeps the first run's line
  assert np.shape(summary["final_episode_returns"]) == (4, 1)


@pytest.mark.slow  # 150 s of two processes' compiles: `make test-slow` (make test's 15 minutes)
def test_two_processes_equal_one_process_sharded(two_processes, sharded):
  """Each device runs one seed in both layouts, so the per-device program is
  the same: equal bit for bit, through the sharded checkpoint and resume of the
  one-process run, and through orbax saving each process's shards. Only
  process 0 prints and writes."""
  out, outs = two_processes
  # Process 1 prints nothing of its own (gloo's C++ "[Gloo] Rank ..." lines
  # reach both processes' stdout directly).
  assert [l for l in outs[1][0].splitlines() if l.strip() and not l.startswith("[Gloo]")] == []
  assert outs[0][0].count("final evaluation returns per seed") == 1
  summary, lines = results(f"{out}/run")
  assert summary["devices"] == 4 and summary["processes"] == 2
  assert summary["chunk_programs"] == 1
  assert os.path.isdir(f"{out}/run/checkpoints/100")
  assert_same_runs((summary, lines), sharded[1])


ONE_STEP = """
import jax, numpy as np
import smpc_jax as sj
from smpc_jax import sharding
from smpc_jax.config import AUTHORS_CHOICES
ours = {k: getattr(sj.Config(), k) for k in AUTHORS_CHOICES}  # see the test's docstring
config = sj.preset("idp", num_samples=8, target_samples=4, hidden_sizes=(16,), batch_size=4,
                   **ours)
mesh = sharding.seed_mesh()
step = jax.vmap(lambda s: sj.run(s, 1)[0])
def one_step(mesh):
  keys = sharding.place(np.asarray(jax.random.split(jax.random.PRNGKey(0), 4)), mesh)
  state = sharding.seed_jit(jax.vmap(lambda k: sj.init(config, k)), mesh)(keys)
  out = sharding.seed_jit(step, mesh)(state)
  if mesh is not None:
    leaf = jax.tree.leaves(out)[0]
    assert leaf.sharding.spec == jax.sharding.PartitionSpec("seeds"), leaf.sharding
    assert {d.id for d in leaf.sharding.device_set} == {0, 1, 2, 3}
  return jax.tree.leaves(sharding.gather(out))
a, b = one_step(mesh), one_step(None)
exact = sum(np.array_equal(x, y) for x, y in zip(a, b))
worst = 0.0
for x, y in zip(a, b):
  if np.issubdtype(x.dtype, np.floating):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    worst = max(worst, float(np.max(np.abs(x - y), initial=0.0)))
  else:
    np.testing.assert_array_equal(x, y)
print(f"{exact} of {len(a)} leaves equal; worst difference {worst:.3g}")
"""


@pytest.mark.slow  # 80 s: `make test-slow` (make test's 15 minutes)
def test_one_step_sharded_matches_one_device_up_to_rounding():
  """4 seeds over 4 devices vs the same 4 seeds vmapped on one device, after
  one step: integers, flags and the buffer indices are equal; floats agree to
  float32 rounding (XLA's CPU kernels for a batch of 4 and for 1 per device
  round differently: measured max difference ~2e-7, in a few leaves). With
  our own implementation choices, as when that was measured: under the idp
  preset's (the authors', raw units and random initial plans) the rounding
  grows through the near one-hot MPPI weights, and one refined plan entry of
  a million differed by 1.4e-6 (8.572e-4 against 8.586e-4), past atol 1e-6.
  The two-process tests below run the preset itself."""
  p = subprocess.run([sys.executable, "-c", ONE_STEP], env=env_with(4), capture_output=True,
                     text=True, timeout=1800)
  assert p.returncode == 0, p.stderr[-3000:]
  print(p.stdout)


def test_shard_seeds_rejects_an_indivisible_seed_count_before_compiling(tmp_path):
  p = train(tmp_path / "run", 4, "--shard_seeds", "--seeds=6")
  assert p.returncode == 2, p.stderr[-2000:]
  assert [l for l in p.stderr.splitlines() if l.startswith("error:")] == [
      "error: seeds=6 is invalid with --shard_seeds; the run count must be a multiple of the "
      "device count 4 (e.g. 8)."]
  assert "Traceback" not in p.stderr and not os.path.exists(tmp_path / "run")


@pytest.mark.parametrize("args,words", [
    (("localhost", 2, 0), "coordinator_address='localhost' is invalid; it must be host:port."),
    (("localhost:1234", 2, 2), "process_id=2 is invalid; it must lie in [0, 1]."),
    (("localhost:1234", 0, 0), "num_processes=0 is invalid; it must be >= 1 with "
                               "--coordinator_address."),
    (("", 2, 0), "coordinator_address='' is invalid with --num_processes/--process_id; "
                 "give host:port of process 0."),
])
def test_distributed_flags_are_checked(args, words):
  from smpc_jax import sharding
  with pytest.raises(ValueError) as e:
    sharding.check_distributed_flags(*args)
  assert str(e.value) == words
  sharding.check_distributed_flags("", 0, -1)  # one process: nothing to check
  sharding.check_distributed_flags("localhost:1234", 2, 1)
