"""The README's `tensorboard --logdir OUT_DIR/tensorboard` works after the
install: TensorBoard (a dependency) reads back what --tensorboard writes."""

import os
import sys

import numpy as np

from tests.helpers import ROOT


def test_tensorboard_reads_what_the_drivers_write(tmp_path):
  from experiments.harness import progress
  from tensorboard.backend.event_processing import event_accumulator

  board = progress.TensorBoard(str(tmp_path / "tensorboard"))
  for step in (1000, 2000):
    board.write(step, dict(q_loss=np.array([0.5, 1.5]) * step, sps=100.0))
  board.close()
  acc = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  acc.Reload()
  assert {"q_loss/seed_0", "q_loss/seed_1", "q_loss/median",
          "steps_per_second_per_seed"} <= set(acc.Tags()["scalars"])
  median = acc.Scalars("q_loss/median")
  assert [e.step for e in median] == [1000, 2000]
  np.testing.assert_allclose([e.value for e in median], [1000.0, 2000.0])
