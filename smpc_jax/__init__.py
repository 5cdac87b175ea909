"""smpc_jax: softMPCritic (MPPI + learned soft Q + dynamics ensemble) in JAX.

Where the paper lives:
  planner.py     Algorithm 1 and eq. (6): the planner and its soft value.
  train.py       Algorithm 2: the training step, warm-started targets.
  losses.py      eq. (7) and the dynamics MSE.
  networks.py    Q-network and dynamics ensemble.
  replay.py      the buffer of (s, a, r, s', terminated, plan).
  actor.py       the DDPG-style actor of Fig. 3's ablations and the DDPG
                 baseline (Config.control / Config.targets = "actor").
  runner.py      the run: a Spec (config, seeds, grid) started or resumed,
                 run in compiled chunks that checkpoint.
  checkpoint.py  orbax checkpoints of the whole run state (exact resume).
  sharding.py    seeds over devices and processes (jax.sharding).
  envs/          the task registry (envs.register): the paper's tasks on MJX,
                 Walker2d, brax's; known reward and termination.
  evaluation.py  episodes with the online controller: `episode` (also the
                 video's), `evaluate` (their returns).
  controller.py  that controller on its own, for export and deployment:
                 make(state) -> (initial_plan, act).
  types.py       the reward and termination callables envs and planner share.
  config.py      the frozen Config and its presets.

Keys: a run is a pure function of (config, seed). init(config,
PRNGKey(seed)) draws the networks and the first state and keeps a run key;
env step t draws from fold_in(fold_in(run key, 0), t) (`step_key`), the
evaluation at step t from stream 1 (`evaluation_key`). So chunking, stopping
and resuming change nothing, and jax.vmap(make_train(config)) over
PRNGKey(S), ..., PRNGKey(S+n-1) is train.py's --seed=S --seeds=n run.
"""

from smpc_jax import _quiet  # noqa: F401  (first: silences two third-party notices)
from smpc_jax.config import Config, PRESETS, preset, validate
from smpc_jax.evaluation import evaluate, evaluation_key
from smpc_jax import controller, runner
from smpc_jax.planner import Model, MPPIResult, mppi, shift
from smpc_jax.train import (HParams, TrainState, init, make_train, run, step_key, train_step,
                            with_hparams)

__all__ = [
    "Config", "PRESETS", "preset", "validate",
    "HParams", "TrainState", "init", "train_step", "run", "make_train", "step_key",
    "with_hparams", "evaluate", "evaluation_key", "runner", "controller",
    "Model", "MPPIResult", "mppi", "shift",
]
__version__ = "0.3.0"
