"""What a run shows while it runs: the per-chunk line and TensorBoard
scalars (per seed and median over seeds)."""

from __future__ import annotations

import numpy as np

# Scalars written to TensorBoard, from a metrics line ([S] lists).
TB_KEYS = ("mean_return", "q_loss", "dyn_loss", "actor_q", "q_mean", "target_mean", "online_ess",
           "eval_returns")


def duration(seconds: float) -> str:
  seconds = int(round(seconds))
  h, m, s = seconds // 3600, seconds // 60 % 60, seconds % 60
  return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def nanmedian(values) -> float:
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  return float(np.median(v)) if v.size else float("nan")


def chunk_line(step, total, sps, line, eta_s) -> str:
  """One line per chunk: step, env steps/s per seed, recent return (median
  over seeds of the episodes finished in the chunk), losses, time left."""
  return (f"step {step:>8d}/{total} ({100 * step / total:3.0f}%)  {sps:7.1f} steps/s/seed  "
          f"return {nanmedian(line['mean_return']):8.1f}  "
          f"q_loss {nanmedian(line.get('q_loss', [np.nan])):8.3g}  "
          + (f"dyn_loss {nanmedian(line['dyn_loss']):8.3g}" if "dyn_loss" in line
             else f"actor_q {nanmedian(line.get('actor_q', [np.nan])):8.3g}")
          + f"  left {duration(eta_s)}")


class TensorBoard:
  """Scalars per seed (TAG/seed_i) and their median (TAG/median)."""

  def __init__(self, logdir):
    from tensorboardX import SummaryWriter
    self.writer = SummaryWriter(logdir)

  def write(self, step, line):
    for key in TB_KEYS:
      if key not in line:
        continue
      values = np.asarray(line[key], np.float64)
      for i, v in enumerate(values):
        if np.isfinite(v):
          self.writer.add_scalar(f"{key}/seed_{i}", v, step)
      if np.any(np.isfinite(values)):
        self.writer.add_scalar(f"{key}/median", nanmedian(values), step)
    self.writer.add_scalar("steps_per_second_per_seed", line["sps"], step)
    self.writer.flush()

  def close(self):
    self.writer.close()
