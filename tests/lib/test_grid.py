"""A sweep's grid (experiments/harness/grid.py): parsed from its flags with
one message per mistake, and its results as table.md and heatmap.png."""

import numpy as np
import pytest

import smpc_jax as sj
from experiments.harness import grid
from smpc_jax import runner


def test_parse_orders_and_validates():
  config = sj.preset("idp")
  assert grid.parse(["temperature=0.1, 1", "learning_rate=1e-3"], "tau", [], config, False) == [
      ("temperature", [0.1, 1.0]), ("learning_rate", [1e-3])]
  assert grid.parse([], "gamma", ["0.9", "0.99"], config, False) == [("gamma", [0.9, 0.99])]


NAMES = "temperature, noise_var, gamma, tau, learning_rate"


@pytest.mark.parametrize("specs,words", [
    (["tau="], "grid='tau=' is invalid; give one or more numbers, comma separated."),
    (["tau"], f"grid='tau' is invalid; it must be NAME=V1,V2,... with NAME one of {NAMES}."),
    (["horizon=1,2"], f"grid='horizon=1,2' is invalid; it must be NAME=V1,V2,... with NAME one "
                      f"of {NAMES}."),
    (["tau=0.1", "tau=0.2"], "grid='tau=0.2' is invalid; tau is swept twice."),
    (["tau=0.1,x"], "grid='tau=0.1,x' is invalid; the values must be numbers."),
    (["gamma=0.9,1.5"], "gamma=1.5 is invalid; it must lie in (0, 1]."),
    (["tau=0.1,0.2,0.1"], "grid='tau=0.1,0.2,0.1' is invalid; 0.1 is given twice."),
    (["tau=0.1,0.10000000001"], "grid='tau=0.1,0.10000000001' is invalid; 0.1 is given twice "
                                "(as float32)."),
    (["learning_rate=1e-46"], "learning_rate=1e-46 is invalid; it must be > 0 in float32 "
                              "(>= 1.175e-38, the smallest normal float32)."),
    (["temperature=-1"], "temperature=-1.0 is invalid; it must be > 0."),
])
def test_parse_rejects_bad_specs(specs, words):
  with pytest.raises(ValueError) as e:
    grid.parse(specs, "tau", [], sj.preset("idp"), False)
  assert str(e.value) == words


def test_parse_refuses_both_forms_and_bad_param():
  with pytest.raises(ValueError, match="together with --param/--values; use one form"):
    grid.parse(["tau=0.1"], "tau", ["0.1"], sj.preset("idp"), True)
  with pytest.raises(ValueError, match=f"param='horizon' is invalid; allowed: {NAMES}."):
    grid.parse([], "horizon", ["1"], sj.preset("idp"), False)


def test_rows_and_files_per_combination(tmp_path):
  """2 x 2 combinations x 3 seeds: each row holds its own seeds' returns
  (runs combination-major), their IQM and median; table.md one line per
  combination; heatmap.png a PNG."""
  spec = runner.Spec(sj.preset("idp"), seeds=3,
                     grid=(("tau", (0.01, 0.02)), ("gamma", (0.9, 0.99))))
  returns = np.arange(12, dtype=np.float64)  # run i returned i
  rows = grid.rows(spec, returns)
  assert [r["label"] for r in rows] == ["tau=0.01, gamma=0.9", "tau=0.01, gamma=0.99",
                                        "tau=0.02, gamma=0.9", "tau=0.02, gamma=0.99"]
  assert rows[2]["returns"] == [6.0, 7.0, 8.0] and rows[2]["median"] == 7.0
  assert rows[2]["iqm"] == pytest.approx(7.0) and (rows[2]["tau"], rows[2]["gamma"]) == (0.02, 0.9)
  grid.write(str(tmp_path), spec, dict(table=rows, steps_done=100))
  table = (tmp_path / "table.md").read_text().splitlines()
  assert table[2] == "| tau | gamma | IQM | 95% CI | median |"
  assert table[4].startswith("| 0.01 | 0.9 | 1.0 |") and len(table) == 4 + 4
  assert (tmp_path / "heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
