"""Train softMPCritic on several seeds at once, in one compiled program.

  python experiments/train.py --env=idp --seeds=5 --total_steps=20000 --out_dir=DIR
  python experiments/train.py ...same flags... --resume     # continue DIR's run

Every Config field is a flag (see --helpfull); unset ones keep the env preset.
Writes DIR/metrics.jsonl (one line per chunk), DIR/summary.json, DIR/returns.png
(refreshed during the run), DIR/checkpoints/ (orbax, every --checkpoint_every
steps, the last --keep_checkpoints kept) and, with --tensorboard,
DIR/tensorboard/. SIGINT/SIGTERM stop after the current chunk with a
checkpoint; a second signal stops at once. The only Python loop runs once per
chunk of steps.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import os
import sys
import time

from absl import flags, logging
import jax
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import config_flags, devices, files, loop, plots, signals, stats
from experiments.harness import progress as show
import smpc_jax as sj
from smpc_jax import checkpoint as ckpt
from smpc_jax import sharding

@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_integer("seeds", 1, "Independent runs, vmapped in one program.")
  flags.DEFINE_integer("seed", 0, "Base seed; run i uses PRNGKey(seed) split i ways.")
  flags.DEFINE_string("out_dir", "runs/latest", "Where metrics, summary, plot and checkpoints go.")
  flags.DEFINE_integer("eval_every", 0, "Evaluate every this many chunks (0: only at the end).")
  flags.DEFINE_integer("checkpoint_every", 10_000,
                       "Save a checkpoint every this many env steps (0: only at the end and "
                       "on a signal).")
  flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept (the latest ones).")
  flags.DEFINE_boolean("resume", False, "Continue the run in --out_dir from its latest checkpoint.")
  flags.DEFINE_boolean("overwrite", False, "Replace a previous run in --out_dir.")
  flags.DEFINE_boolean("tensorboard", False, "Write TensorBoard scalars to OUT_DIR/tensorboard.")
  flags.DEFINE_integer("plot_every_s", 30, "Refresh returns.png at most this often (seconds).")
  config_flags.define_config_flags()
  devices.define_flags()


FLAGS = flags.FLAGS

DRIVER_FLAGS = ("seeds", "seed", "out_dir", "eval_every", "checkpoint_every",
                "keep_checkpoints", "resume", "overwrite", "tensorboard", "plot_every_s")
TIMING = ("sps",)  # metrics-line fields that depend on the machine's speed


def check_flags():
  """Driver flags, validated before anything compiles."""
  cli.check_run_flags(dict(seeds=1, eval_every=0, checkpoint_every=0, keep_checkpoints=1,
                           plot_every_s=0))


def prepare_out_dir(out):
  """Makes `out` this run's folder (see files.claim_run_dir: one run per
  folder, held by one process); a resumed run needs a finished checkpoint."""
  files.claim_run_dir(out, "train.py", FLAGS.resume, FLAGS.overwrite)
  directory = os.path.join(out, "checkpoints")
  if FLAGS.resume and not ckpt.steps(directory):
    cli.fail(f"resume: out_dir={out!r} holds no checkpoints to resume from."
             if not os.path.isdir(directory) else
             f"resume: no complete checkpoint in {os.path.abspath(directory)}.")


def fresh_run(config, n_seeds, mesh):
  keys = sharding.seed_keys(jax.random.PRNGKey(FLAGS.seed), n_seeds, mesh)  # [S, 2]
  state = sharding.seed_jit(jax.vmap(lambda k: sj.init(config, k)), mesh)(keys)
  run = dict(config=ckpt.config_to_dict(config), seeds=n_seeds, seed=FLAGS.seed,
             done_steps=0, chunk_index=0, run_s=0.0,
             eval_key=ckpt.to_jsonable(jax.random.PRNGKey(FLAGS.seed + 10_000)),
             steps=[], curves=[], eval_points=[], lines=[])
  return state, run


def resumed_run(mngr, config, n_seeds, mesh):
  """The newest intact checkpoint (a damaged newer one is named, set aside
  and skipped), checked against the flags: one line and exit 2 on any
  difference that would change the run."""
  def check(saved):
    for name, want in (("seeds", n_seeds), ("seed", FLAGS.seed)):
      if saved.get(name) != want:
        cli.fail(f"resume: {name}={saved.get(name)!r} in the checkpoint, {want!r} in the "
                 f"flags; resume with the same {name}.", hard=True)
    differs = ckpt.mismatch(ckpt.config_from_dict(saved["config"]), config)
    if differs:
      cli.fail(f"resume: {differs}; only {', '.join(ckpt.RESUMABLE_FIELDS)} may change.",
               hard=True)
    if config.total_steps < saved["done_steps"]:
      cli.fail(f"resume: total_steps={config.total_steps} is invalid; the checkpoint has "
               f"done {saved['done_steps']} steps, so it must be >= {saved['done_steps']}.",
               hard=True)

  try:
    step, state, run, damaged = ckpt.restore_intact(mngr, mesh, check)
    state = ckpt.extend(state, config)
  except (ckpt.CheckpointError, KeyError, TypeError) as e:
    cli.fail(f"resume: {e}.", hard=True)
  for bad, reason in damaged:
    print(f"warning: resume: {reason}; moved to "
          f"{os.path.join(os.path.dirname(str(mngr.directory)), 'checkpoints_damaged')}/, "
          f"resuming from step {step}, the newest intact checkpoint.", file=sys.stderr,
          flush=True)
  run["config"] = ckpt.config_to_dict(config)
  return state, run


def algorithm(config) -> str:
  return "softMPCritic" if config.uses_model else "DDPG"


def metrics_line(m, done_steps, sps) -> dict:
  """The chunk's metrics (every leaf [S, n]) reduced per seed."""
  n_seeds = m["done"].shape[0]
  finished = [m["episode_return"][i][m["done"][i]].tolist() for i in range(n_seeds)]
  first = done_steps - m["done"].shape[1] + 1  # the env step of the chunk's first entry
  ends = [(first + np.flatnonzero(m["done"][i])).tolist() for i in range(n_seeds)]
  return dict(step=done_steps, episode_returns=finished, episode_steps=ends,
              mean_return=[float(np.mean(r)) if r else float("nan") for r in finished],
              q_loss=np.mean(m["q_loss"], 1).tolist(),
              dyn_loss=np.mean(m["dyn_loss"], 1).tolist(),
              q_mean=np.mean(m["q_mean"], 1).tolist(),
              target_mean=np.mean(m["target_mean"], 1).tolist(),
              online_ess=np.median(m["online_ess"], 1).tolist(), sps=sps)


def write_outputs(out, config, run, final=None, extra=None):
  """summary.json and returns.png for the steps done so far."""
  summary = dict(env=config.env, seeds=run["seeds"], seed=run["seed"],
                 total_steps=config.total_steps, steps_done=run["done_steps"],
                 finished=final is not None,
                 sps=run["done_steps"] / max(run["run_s"], 1e-9),
                 backend=jax.devices()[0].platform, device=str(jax.devices()[0].device_kind),
                 jax_version=jax.__version__, command=config_flags.command_line(),
                 flags=config_flags.flag_values(DRIVER_FLAGS),
                 config=dataclasses.asdict(config))
  if final is not None:  # [S, episodes]
    r = final.mean(1)
    summary.update(final_returns=r.tolist(), final_episode_returns=final.tolist(),
                   final_return_iqm=stats.iqm(r), final_return_iqm_ci95=stats.iqm_ci(r),
                   final_return_median=float(np.median(r)))
  summary.update(extra or {})
  files.write_json(os.path.join(out, "summary.json"), summary)
  plot(out, config, run)
  return summary


def plot(out, config, run):
  if run["steps"]:
    plots.plot_returns(os.path.join(out, "returns.png"), run["steps"],
                     np.array(run["curves"], np.float64).T,
                     [(s, np.asarray(r)) for s, r in run["eval_points"]],
                     title=f"{algorithm(config)}, {config.env}, {run['seeds']} seeds")


def main(argv):
  with cli.write_faults(f"What was written before is kept in {FLAGS.out_dir} (metrics.jsonl's "
                        "earlier lines, the checkpoints)."):
    train(argv)


def train(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  config = config_flags.config_from_flags()
  check_flags()
  out, n_seeds = FLAGS.out_dir, FLAGS.seeds
  mesh = devices.setup(n_seeds)  # None: one device; else the seeds over a mesh.
  # With several processes, process 0 alone prints and writes files; all of
  # them compute, gather metrics and save their shards of the checkpoints.
  writer = sharding.is_writer()
  print = builtins.print if writer else (  # noqa: A001  (errors from any process)
      lambda *a, **k: builtins.print(*a, **k) if k.get("file") is sys.stderr else None)
  if writer:
    prepare_out_dir(out)
  sharding.barrier("out_dir")  # prepared before any process reads or saves there
  mngr = ckpt.manager(os.path.join(out, "checkpoints"), FLAGS.keep_checkpoints)
  if FLAGS.resume:
    state, run = resumed_run(mngr, config, n_seeds, mesh)
    state = sharding.reshard(state, mesh)  # as the compiled chunk's outputs are placed
  else:
    state, run = fresh_run(config, n_seeds, mesh)
  print(f"{algorithm(config)} (control={config.control}, targets={config.targets}) on "
        f"{config.env}: {n_seeds} seed(s) x {config.total_steps} steps, "
        f"{devices.describe(mesh)}"
        + (f", resumed at step {run['done_steps']}" if FLAGS.resume else ""), flush=True)
  print(config, flush=True)
  stop = signals.StopRequest()

  # Every program compiled up front (a Compiled refuses inputs sharded otherwise).
  t0 = time.perf_counter()
  evaluate = sharding.seed_jit(
      jax.vmap(lambda s, k: sj.evaluate(s, k, config.eval_episodes)), mesh).lower(
          state, sharding.seed_keys(jax.random.PRNGKey(0), n_seeds, mesh)).compile()
  sharding.barrier("compiled_evaluate")
  chunks = loop.programs(lambda n: sharding.seed_jit(jax.vmap(lambda s: sj.run(s, n)), mesh,
                                                     donate_argnums=0).lower(state),
                         config.total_steps, config.chunk_steps, run["done_steps"])
  compile_s = time.perf_counter() - t0
  print(f"compiled in {compile_s:.1f}s (chunks of {' and '.join(map(str, chunks))} steps)",
        flush=True)
  tb = (show.TensorBoard(os.path.join(out, "tensorboard"))
        if FLAGS.tensorboard and writer else None)

  metrics_path = os.path.join(out, "metrics.jsonl") if writer else os.devnull
  if writer:  # a resumed run rewrites the lines up to its checkpoint, atomically
    with files.atomic(metrics_path) as tmp, open(tmp, "w") as f:
      f.writelines(json.dumps(line) + "\n" for line in run["lines"])
  log = open(metrics_path, "a")
  last_plot = [time.perf_counter()]

  def on_chunk(state, c):
    line = metrics_line(c.metrics, c.done, c.steps / c.seconds)
    if FLAGS.eval_every and run["chunk_index"] % FLAGS.eval_every == 0:
      eval_key, k = jax.random.split(np.asarray(run["eval_key"], np.uint32))
      r = sharding.gather(evaluate(state, sharding.seed_keys(k, n_seeds, mesh))).mean(1)
      run["eval_key"] = ckpt.to_jsonable(eval_key)
      line["eval_returns"] = r.tolist()
      run["eval_points"].append((c.done, r.tolist()))
    run["lines"].append(files.strict(line))
    log.write(json.dumps(run["lines"][-1]) + "\n")
    log.flush()
    run["steps"].append(c.done)
    run["curves"].append(line["mean_return"])
    print(show.chunk_line(c.done, config.total_steps, c.steps / c.seconds, line,
                          (config.total_steps - c.done) * run["run_s"] / c.done), flush=True)
    if tb:
      tb.write(c.done, line)
    if writer and time.perf_counter() - last_plot[0] >= FLAGS.plot_every_s:
      plot(out, config, run)
      last_plot[0] = time.perf_counter()

  def on_nonfinite(c):
    log.write(json.dumps(files.strict(metrics_line(c.metrics, c.done, c.steps / c.seconds)))
              + "\n")
    log.flush()

  def on_stop(reason):
    if tb:
      tb.close()
    write_outputs(out, config, run, extra=dict(stopped_by=reason, compile_s=compile_s))

  state = loop.run(state, run, chunks, config.total_steps, config.chunk_steps, mngr,
                   FLAGS.checkpoint_every,
                   loop.Driver(on_chunk, on_stop, on_nonfinite,
                               kept=lambda step: f"{out}/metrics.jsonl up to step {step}"),
                   stop)
  log.close()

  # The final evaluation draws from a copy of the key: the checkpoint keeps
  # the run's own, so a longer run resumed from here evaluates as if started long.
  _, k = jax.random.split(np.asarray(run["eval_key"], np.uint32))
  t = time.perf_counter()
  final = sharding.gather(evaluate(state, sharding.seed_keys(k, n_seeds, mesh)))  # [S, episodes]
  eval_s = time.perf_counter() - t
  run["eval_points"].append((run["done_steps"], final.mean(1).tolist()))
  if tb:
    tb.write(run["done_steps"], dict(eval_returns=final.mean(1).tolist(),
                                     sps=run["done_steps"] / run["run_s"]))
    tb.close()
  if writer:
    summary = write_outputs(out, config, run, final,
                            extra=dict(compile_s=compile_s, eval_s=eval_s,
                                       wall_s=time.perf_counter() - t0,
                                       devices=jax.device_count() if mesh is not None else 1,
                                       processes=jax.process_count(),
                                       chunk_programs=len(chunks)))
    print(f"final evaluation returns per seed: {np.round(final.mean(1), 1).tolist()}")
    lo, hi = summary["final_return_iqm_ci95"]
    print(f"IQM {summary['final_return_iqm']:.1f} (95% CI {lo:.0f}-{hi:.0f} over seeds)  "
          f"median {summary['final_return_median']:.1f}  sps/seed {summary['sps']:.1f}  "
          f"compile {compile_s:.1f}s  wall {summary['wall_s']:.1f}s")
    print(f"wrote {out}/metrics.jsonl, summary.json, returns.png, checkpoints/")
  sharding.barrier("finished")  # the other processes wait while process 0 writes


if __name__ == "__main__":
  cli.run(main, define_flags)
