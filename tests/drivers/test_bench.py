"""experiments/bench.py: bad input gets one line, and the JSON it writes has
the fields the GPU check reads (no timing here: benchmarks live in experiments/)."""

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT


@pytest.mark.parametrize("args,words", [
    (["--seeds=0"], "error: seeds='0' is invalid; give one or more integers >= 1."),
    (["--env=cartpole"], "error: env='cartpole' is not known; allowed: idp, hopper, walker, "
                        "idp_brax, hopper_brax, hopper_gym."),
])
def test_bench_rejects_bad_input_in_one_line(args, words, tmp_path):
  out = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "bench.py"),
                        f"--out={tmp_path}/b.json", *args],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, out.stderr[-2000:]
  assert [l for l in out.stderr.splitlines() if l.startswith("error:")] == [words]
  assert "Traceback" not in out.stderr
  assert not os.path.exists(f"{tmp_path}/b.json")


SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from experiments import bench
bench.define_flags()
bench.FLAGS(["bench", "--env=idp", "--seeds=1,16", "--out={out}"])
rows = [dict(seeds=1, sps_per_seed=100.0, sps_aggregate=100.0, compile_s=1.0,
             peak_memory_bytes=None, matmul_gflops=50.0,
             sps_aggregate_bound_at_matmul_rate=200.0, fraction_of_bound=0.5),
        dict(seeds=16, sps_per_seed=40.0, sps_aggregate=640.0, compile_s=2.0,
             peak_memory_bytes=2**30, matmul_gflops=60.0,
             sps_aggregate_bound_at_matmul_rate=240.0, fraction_of_bound=2.6)]
print(bench.write(rows, [1, 16], 1e6))
"""


def test_bench_json_names_runs_and_targets(tmp_path):
  out = subprocess.run([sys.executable, "-c", SCRIPT.format(root=ROOT,
                                                             out=f"{tmp_path}/b.json")],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  b = json.load(open(f"{tmp_path}/b.json"))
  assert b["env"] == "idp" and b["sps"] == 100.0 and b["backend"] == "cpu"
  assert [r["seeds"] for r in b["runs"]] == [1, 16]
  assert b["command"].endswith("--env=idp --seeds=1,16 --steps=2000 --repeats=5")
  targets = {t["target"]: t for t in b["targets"]}
  aggregate = targets["aggregate env steps/s at 16 seeds on idp (one H100-class GPU)"]
  assert aggregate["measured"] == 640.0 and aggregate["met"] is False
  ratio = targets["per-seed rate at 16 seeds / at 1 seed (idp)"]
  assert ratio["measured"] == pytest.approx(0.4) and ratio["met"] is False


TINY_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from experiments import bench
bench.define_flags()
bench.FLAGS(["bench", "--env=hopper", "--tiny", "--steps=10", "--repeats=2", "--out="])
c = bench.bench_config()
print(c.env, c.num_samples, c.target_samples, c.hidden_sizes, c.batch_size, c.total_steps,
      c.prior)
"""


def test_bench_tiny_is_the_preset_at_tiny_widths():
  out = subprocess.run([sys.executable, "-c", TINY_SCRIPT.format(root=ROOT)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.split("\n")[0] == "hopper 8 2 (8, 8) 2 30 uniform"


CONFIG_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from experiments import bench
bench.define_flags()
bench.FLAGS(["bench", "--env=hopper", "--compute_dtype=bfloat16", "--num_samples=64",
             "--hidden_sizes=32,32", "--steps=10", "--repeats=2", "--out="])
c = bench.bench_config()
print(c.env, c.compute_dtype, c.num_samples, c.hidden_sizes, c.total_steps, c.prior)
print(" ".join(bench.config_args()))
"""


def test_bench_takes_every_config_flag():
  out = subprocess.run([sys.executable, "-c", CONFIG_SCRIPT.format(root=ROOT)],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  assert out.stdout.splitlines()[:2] == [
      "hopper bfloat16 64 (32, 32) 30 uniform",
      "--num_samples=64 --hidden_sizes=32,32 --compute_dtype=bfloat16"]


def test_bench_refuses_a_bad_config_flag_in_one_line(tmp_path):
  out = subprocess.run([sys.executable, os.path.join(ROOT, "experiments", "bench.py"),
                        f"--out={tmp_path}/b.json", "--compute_dtype=float16"],
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 2, out.stderr[-2000:]
  assert [l for l in out.stderr.splitlines() if l.startswith("error:")] == [
      "error: compute_dtype='float16' is invalid; allowed: float32, bfloat16."]
  assert "Traceback" not in out.stderr


@pytest.mark.slow
def test_bench_vs_compares_two_settings_of_this_tree():
  """experiments/bench_vs.sh . with REF_ARGS and TREE_ARGS, at tiny widths:
  one round, one line per side, and the summary's ratio."""
  env = dict(os.environ, MODES="tiny", ENV="idp", STEPS="5", REPEATS="1",
             PY=sys.executable, REF_ARGS="--compute_dtype=float32",
             TREE_ARGS="--compute_dtype=bfloat16")
  out = subprocess.run(["bash", os.path.join(ROOT, "experiments", "bench_vs.sh"), ".", "1"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  lines = out.stdout.splitlines()
  assert lines[0].startswith("round 1 tiny: . sps=") and "ratio" in lines[0], lines
  assert "TREE_ARGS=--compute_dtype=bfloat16" in lines[1], lines
  assert lines[2].startswith("tiny: median ratio this tree / . = "), lines


@pytest.mark.slow
def test_bench_vs_says_which_side_failed():
  env = dict(os.environ, MODES="tiny", ENV="idp", STEPS="5", REPEATS="1",
             PY=sys.executable, TREE_ARGS="--compute_dtype=float16")
  out = subprocess.run(["bash", os.path.join(ROOT, "experiments", "bench_vs.sh"), ".", "1"],
                       capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
  assert out.returncode != 0
  assert "error: bench.py failed for" in out.stderr and "--compute_dtype=float16" in out.stderr
