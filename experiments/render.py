"""Render an evaluation episode of a trained run, headless.

  python experiments/render.py --run_dir=DIR --out=agent.gif   # or .mp4, .png
  MUJOCO_GL=osmesa python experiments/render.py ...             # without EGL

Restores DIR's latest checkpoint, plays one episode with the online planner
(no learning) for seed --seed_index, and draws it with MuJoCo's renderer
(EGL by default, which needs no display; `make render-deps` installs the
system libraries). A .png gets the frame in the middle of the episode.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is first imported

from absl import flags, logging
import jax
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import checkpoint_io, files
import smpc_jax as sj
from smpc_jax import evaluation

FLAGS = flags.FLAGS


@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_string("run_dir", None, "A run's OUT_DIR (holds checkpoints/).")
  flags.DEFINE_string("out", "agent.gif", "Output file: .gif, .mp4 or .png.")
  flags.DEFINE_integer("seed_index", 0, "Which of the run's seeds to show.")
  flags.DEFINE_integer("steps", 200, "Episode steps to render (at most episode_length).")
  flags.DEFINE_integer("width", 320, "Frame width in pixels.")
  flags.DEFINE_integer("height", 240, "Frame height in pixels.")
  flags.DEFINE_integer("episode_seed", 0, "Key of the rendered episode.")


FORMATS = (".gif", ".mp4", ".png")
MAX_PIXELS = 4096  # per side: within what EGL and OSMesa framebuffers allow


def mj_model(environment):
  """The mujoco.MjModel behind an Environment (brax: env.sys.mj_model)."""
  model = getattr(environment, "mj_model", None)
  return model if model is not None else environment.env.sys.mj_model


def fit_framebuffer(model, width, height):
  """MuJoCo draws into an offscreen buffer of the model's offwidth x
  offheight (640 x 480 unless its XML says more): grown to the frame."""
  model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
  model.vis.global_.offheight = max(model.vis.global_.offheight, height)


def episode_qpos(state: sj.TrainState, key, steps: int):
  """qpos [steps + 1, nq] of one episode with the controller evaluation uses
  (smpc_jax.evaluation.episode), and shown [steps + 1] (1 up to and including
  the pose that terminated it; after termination the last pose is held)."""
  ep = evaluation.episode(state, key, steps, lambda env_state: env_state.pipeline_state.qpos)
  return (jax.numpy.concatenate([ep.first[None], ep.observed]),
          jax.numpy.concatenate([jax.numpy.ones((1,)), ep.alive]))


def camera(model):
  """A camera that follows body 1 (the cart, the hopper's torso) from the
  side, about as far as Gymnasium's own viewers stand."""
  import mujoco
  cam = mujoco.MjvCamera()
  cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
  cam.trackbodyid = 1
  cam.distance = 3.0
  cam.azimuth = 90.0  # looking along +y: the x-z plane both tasks move in
  cam.elevation = -10.0
  return cam


def render_frames(model, qpos, width, height) -> np.ndarray:
  """uint8 frames [T, height, width, 3] of poses `qpos` [T, nq]."""
  import mujoco
  fit_framebuffer(model, width, height)
  data = mujoco.MjData(model)
  cam = camera(model)
  frames = []
  with mujoco.Renderer(model, height, width) as renderer:
    for q in qpos:
      data.qpos[:] = q
      mujoco.mj_forward(model, data)
      renderer.update_scene(data, camera=cam)
      frames.append(renderer.render().copy())
  return np.stack(frames)


def write_video(path, frames, fps):
  import imageio.v2 as imageio
  if path.endswith(".png"):
    imageio.imwrite(path, frames[len(frames) // 2])
  elif path.endswith(".gif"):
    imageio.mimsave(path, list(frames), duration=1000 / fps, loop=0)
  else:
    imageio.mimsave(path, list(frames), fps=fps, macro_block_size=1)


def main(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  if not FLAGS.run_dir:
    cli.fail("run_dir is required: the OUT_DIR of a run (it holds checkpoints/).")
  if not FLAGS.out.endswith(FORMATS):
    cli.fail(f"out={FLAGS.out!r} is invalid; it must end in {', '.join(FORMATS)}.")
  if FLAGS.steps < 1:
    cli.fail(f"steps={FLAGS.steps} is invalid; it must be an integer >= 1.")
  for name in ("width", "height"):
    if not 1 <= getattr(FLAGS, name) <= MAX_PIXELS:
      cli.fail(f"{name}={getattr(FLAGS, name)} is invalid; it must be an integer in "
               f"[1, {MAX_PIXELS}] (pixels).")
  files.check_out_file(FLAGS.out, "out", FORMATS)
  state, step = checkpoint_io.load_run(FLAGS.run_dir, FLAGS.seed_index)
  steps = min(FLAGS.steps, state.config.episode_length)
  qpos, shown = jax.jit(episode_qpos, static_argnums=2)(
      state, jax.random.PRNGKey(FLAGS.episode_seed), steps)
  qpos = np.asarray(qpos)[np.asarray(shown) > 0]  # the episode, up to its termination
  environment = sj.train.parts(state.config).environment
  frames = render_frames(mj_model(environment), qpos, FLAGS.width, FLAGS.height)
  fps = 1.0 / float(environment.env.dt)
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.out)), exist_ok=True)
  write_video(FLAGS.out, frames, min(fps, 50.0))
  ended = f", the episode ended after {len(frames) - 1} steps" if len(frames) <= steps else ""
  print(f"wrote {FLAGS.out}: {len(frames)} frames of seed {FLAGS.seed_index} at step {step} "
        f"of {FLAGS.run_dir}{ended}")


if __name__ == "__main__":
  cli.run(main, define_flags)
