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
                        "idp_brax, hopper_brax."),
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
