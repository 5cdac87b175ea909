"""Export a trained run's controller to one file that runs without this
package: MPPI over the learned ensemble with the learned terminal Q (or the
actor, for actor-controlled runs), serialised by jax.export with its
parameters.

  python -m experiments.export --run_dir=RUN --out=controller.bin [--seed_index=0]
      [--platforms=cpu,cuda]

Run it with experiments/controller_loader.py (jax and numpy alone). The
controller is `smpc_jax.controller.make(state)`, the one evaluation uses.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os

from absl import flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import checkpoint_io, files
from smpc_jax import controller
from smpc_jax.train import parts

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


@cli.once
def define_flags():
  flags.DEFINE_string("run_dir", None, "A run's OUT_DIR (holds checkpoints/).")
  flags.DEFINE_string("out", "controller.bin", "The controller file to write.")
  flags.DEFINE_integer("seed_index", 0, "Which of the run's seeds to export.")
  flags.DEFINE_list("platforms", ["cpu"], f"Where the file may run: {', '.join(PLATFORMS)}.")


FLAGS = flags.FLAGS


def export_controller(state, platforms=("cpu",)) -> tuple[bytes, bytes, dict]:
  """(initial_plan, act) of one run's state, serialised by jax.export, and
  the description the loader reads."""
  config = state.config
  env = parts(config).environment
  ctrl = controller.make(state)
  key = jax.ShapeDtypeStruct((2,), jnp.uint32)
  plan = jax.ShapeDtypeStruct((config.horizon + 1, env.action_size), jnp.float32)
  obs = jax.ShapeDtypeStruct((env.obs_size,), jnp.float32)
  init = jax.export.export(jax.jit(ctrl.initial_plan), platforms=platforms)(key)
  act = jax.export.export(jax.jit(ctrl.act), platforms=platforms)(obs, plan, key)
  meta = dict(env=config.env, obs_size=env.obs_size, action_size=env.action_size,
              horizon=config.horizon, action_low=env.action_low, action_high=env.action_high,
              dt=float(env.env.dt), control=config.control, platforms=list(platforms),
              config=dataclasses.asdict(config))
  return init.serialize(), act.serialize(), meta


def write(path, init: bytes, act: bytes, meta: dict):
  buffer = io.BytesIO()
  np.savez(buffer, initial_plan=np.frombuffer(init, np.uint8),
           act=np.frombuffer(act, np.uint8),
           meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
  with files.atomic(path) as tmp, open(tmp, "wb") as f:
    f.write(buffer.getvalue())


def main(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  bad = [p for p in FLAGS.platforms if p not in PLATFORMS]
  if bad or not FLAGS.platforms:
    cli.fail(f"platforms={','.join(FLAGS.platforms)!r} is invalid; allowed: "
             f"{', '.join(PLATFORMS)}, comma separated.")
  files.check_out_file(FLAGS.out, "out", ("",))
  state, step = checkpoint_io.load_run(FLAGS.run_dir, FLAGS.seed_index)
  init, act, meta = export_controller(state, tuple(FLAGS.platforms))
  meta.update(run=dict(run_dir=os.path.abspath(FLAGS.run_dir), seed_index=FLAGS.seed_index,
                       step=step))
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  write(FLAGS.out, init, act, meta)
  size = os.path.getsize(FLAGS.out)
  print(f"wrote {FLAGS.out} ({size / 2**20:.1f} MiB): the {meta['control']} controller of "
        f"{meta['env']}, seed {FLAGS.seed_index} at step {step} of {FLAGS.run_dir}, for "
        f"{', '.join(FLAGS.platforms)}; run it with experiments/controller_loader.py")


if __name__ == "__main__":
  cli.run(main, define_flags)
