"""The body of train.py and sweep.py: flags to a `runner.Spec`, the run
folder, `smpc_jax.runner` for the run itself, and what a person reads.

A single run is a grid of none; a sweep adds its grid. Per chunk: one line of
metrics.jsonl (runner.reduce, per run, plus env steps/s and, every
--eval_every chunks, evaluation returns), one printed line, TensorBoard
scalars, returns.png now and then. At the end: the final evaluation,
summary.json, returns.png and, for a grid, table.md (and heatmap.png for two
parameters). A resumed run keeps metrics.jsonl's lines up to its checkpoint
and rewrites the rest, which come out the same (the run's keys are per step).

Exits: 2 for bad input (before anything compiles) and for a run that cannot
be resumed; 1 for a non-finite value or a failed write (one line saying what
is kept); 128 + signal after a stop on SIGINT/SIGTERM, with a checkpoint.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import json
import os
import sys
import time

from absl import flags, logging
import jax
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import (checkpoint_io, config_flags, devices, files, grid, plots,
                                 signals, stats)
from experiments.harness import progress as show
from smpc_jax import checkpoint as ckpt
from smpc_jax import runner, sharding

FLAGS = flags.FLAGS

# The flags of the run itself (not Config fields), as summary.json records them.
RUN_FLAGS = ("seeds", "seed", "out_dir", "chunk_steps", "eval_episodes", "eval_every",
             "checkpoint_every", "keep_checkpoints", "resume", "overwrite", "tensorboard",
             "plot_every_s")


def define_flags(seeds: int, out_dir: str, keep_checkpoints: int):
  """The run flags, with the driver's defaults; then every Config field and
  the device flags."""
  flags.DEFINE_integer("seeds", seeds, "Seeds (per combination), vmapped in one program.")
  flags.DEFINE_integer("seed", 0, "First seed; run i has seed SEED + i (per combination) and "
                       "key jax.random.PRNGKey(its seed), as sj.make_train takes.")
  flags.DEFINE_string("out_dir", out_dir, "Where metrics, summary, plots and checkpoints go.")
  flags.DEFINE_integer("chunk_steps", 1000, "Env steps per compiled chunk (one metrics line "
                       "each); the run is the same whatever it is.")
  flags.DEFINE_integer("eval_episodes", 4, "Evaluation episodes per run.")
  flags.DEFINE_integer("eval_every", 0, "Evaluate every this many chunks (0: only at the end).")
  flags.DEFINE_integer("checkpoint_every", 10_000,
                       "Save a checkpoint every this many env steps (0: only at the end and "
                       "on a signal).")
  flags.DEFINE_integer("keep_checkpoints", keep_checkpoints, "Checkpoints kept (the latest).")
  flags.DEFINE_boolean("resume", False, "Continue the run in --out_dir from its latest checkpoint.")
  flags.DEFINE_boolean("overwrite", False, "Replace a previous run in --out_dir.")
  flags.DEFINE_boolean("tensorboard", False, "Write TensorBoard scalars to OUT_DIR/tensorboard.")
  flags.DEFINE_integer("plot_every_s", 30, "Refresh returns.png at most this often (seconds).")
  config_flags.define_config_flags()
  devices.define_flags()


def algorithm(config) -> str:
  return "softMPCritic" if config.uses_model else "DDPG"


def main(argv, driver: str, grid_of=lambda config: ()):
  """The whole run of `driver` ("train.py" or "sweep.py"); grid_of(config):
  the grid its flags ask for (exits with one line when they are wrong)."""
  with cli.write_faults(f"What was written before is kept in {FLAGS.out_dir} (metrics.jsonl's "
                        "earlier lines, the checkpoints)."):
    _main(argv, driver, grid_of)


def spec_from_flags(grid_of) -> runner.Spec:
  config = config_flags.config_from_flags()
  cli.check_run_flags(dict(seeds=1, chunk_steps=1, eval_episodes=1, eval_every=0,
                           checkpoint_every=0, keep_checkpoints=1, plot_every_s=0))
  grid = grid_of(config)
  try:
    return runner.Spec(config, FLAGS.seed, FLAGS.seeds, tuple(grid))
  except ValueError as e:
    cli.fail(str(e))


def _main(argv, driver, grid_of):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  spec = spec_from_flags(grid_of)
  config, out = spec.config, FLAGS.out_dir
  mesh = devices.setup(spec.num_runs, f"seeds={spec.seeds}" + (
      f" (x {len(spec.combinations)} combinations = {spec.num_runs} runs)" if spec.grid else ""))
  # With several processes, process 0 alone prints and writes files; all of
  # them compute, gather metrics and save their shards of the checkpoints.
  writer = sharding.is_writer()
  print = builtins.print if writer else (  # noqa: A001  (errors from any process)
      lambda *a, **k: builtins.print(*a, **k) if k.get("file") is sys.stderr else None)
  directory = os.path.join(out, "checkpoints")
  if writer:
    files.claim_run_dir(out, driver, FLAGS.resume, FLAGS.overwrite)
    if FLAGS.resume and not ckpt.steps(directory):
      cli.fail(f"resume: out_dir={out!r} holds no checkpoints to resume from."
               if not os.path.isdir(directory) else
               f"resume: no complete checkpoint in {os.path.abspath(directory)}.")
  sharding.barrier("out_dir")  # prepared before any process reads or saves there
  mngr = ckpt.manager(directory, FLAGS.keep_checkpoints)
  if FLAGS.resume:
    try:
      state, progress, damaged = runner.resume(mngr, spec, mesh, io=checkpoint_io.held)
    except runner.ResumeError as e:
      cli.fail(f"resume: {e}.", hard=True)
    for _, reason in damaged:
      print(f"warning: resume: {reason}; moved to {os.path.join(out, 'checkpoints_damaged')}/, "
            f"resuming from step {progress.done_steps}, the newest intact checkpoint.",
            file=sys.stderr, flush=True)
  else:
    state, progress = runner.start(spec, mesh)
  what = (f"sweep {' x '.join(f'{p} {list(v)}' for p, v in spec.grid)}: "
          f"{len(spec.combinations)} combination(s) x {spec.seeds} seed(s)" if spec.grid
          else f"{spec.seeds} seed(s)")
  print(f"{algorithm(config)} (control={config.control}, targets={config.targets}) on "
        f"{config.env}, {what} x {config.total_steps} steps, {devices.describe(mesh)}"
        + (f", resumed at step {progress.done_steps}" if FLAGS.resume else ""), flush=True)
  print(config, flush=True)
  stop = signals.StopRequest()  # before compiling: a signal then stops after chunk 1

  t0 = time.perf_counter()
  programs = runner.chunk_programs(state, config.total_steps, FLAGS.chunk_steps,
                                   progress.done_steps, mesh)
  evaluate = runner.evaluator(state, FLAGS.eval_episodes, mesh)
  compile_s = time.perf_counter() - t0
  print(f"compiled in {compile_s:.1f}s (chunks of {' and '.join(map(str, programs))} steps)",
        flush=True)

  record = Record(out, spec, writer, progress.done_steps)
  tb = show.TensorBoard(os.path.join(out, "tensorboard")) if FLAGS.tensorboard and writer else None

  last = [progress]

  def on_chunk(state, c: runner.Chunk, p: runner.Progress):
    for run, quantity, step in p.failed[len(last[0].failed):]:
      print(f"warning: non-finite {quantity} in {spec.run_name(run)} at step {step}; that run "
            "is marked failed and left out of the results, the others go on.",
            file=sys.stderr, flush=True)
    last[0] = p
    line = dict(runner.reduce(c), sps=c.steps / c.seconds)
    if FLAGS.eval_every and p.chunks % FLAGS.eval_every == 0:
      line["eval_returns"] = evaluate(state).mean(1).tolist()
    record.add(line)
    print(show.chunk_line(c.done, config.total_steps, c.steps / c.seconds, line,
                          (config.total_steps - c.done) * p.run_s / c.done), flush=True)
    if tb:
      tb.write(c.done, line)
    record.maybe_plot()

  def stopped_outputs(reason, p):
    if tb:
      tb.close()
    record.summary(p, extra=dict(stopped_by=reason, compile_s=compile_s))

  @contextlib.contextmanager
  def saving():  # a save: its output held back, and not cut short by a second signal
    with stop.critical(), checkpoint_io.held():
      yield

  try:
    state, progress, stopped = runner.run(
        state, progress, spec, chunk_steps=FLAGS.chunk_steps, mngr=mngr,
        checkpoint_every=FLAGS.checkpoint_every, on_chunk=on_chunk,
        should_stop=lambda: stop.requested, mesh=mesh, programs=programs,
        io=saving)
  except runner.NonFinite as e:
    record.add(dict(runner.reduce(e.chunk), sps=e.chunk.steps / e.chunk.seconds))
    kept = ckpt.steps(directory)
    print(f"error: non-finite {e.quantity} in {spec.run_name(e.run)} at step {e.step}; "
          "stopped. " + (f"The last good checkpoint (step {kept[-1]}) is kept in "
                         f"{os.path.abspath(directory)}." if kept else
                         "No checkpoint was saved before it."), file=sys.stderr, flush=True)
    sys.exit(1)
  except runner.SaveFailed as e:
    if writer:
      try:
        stopped_outputs("failed save", last[0])
      except OSError:
        pass  # the disk is full: what was written before stays as it was
    print(f"error: saving checkpoint {os.path.join(directory, str(e.step))} failed: "
          f"{checkpoint_io.os_reason(e.error)}; "
          f"stopped at step {e.step}. Kept: {out}/metrics.jsonl up to step {e.step}, "
          + (f"the last good checkpoint (step {e.kept[-1]})" if e.kept else "no checkpoint")
          + ". Free some space, then "
          + ("continue with --resume." if e.kept else "start again with --overwrite."),
          file=sys.stderr, flush=True)
    os._exit(1)  # orbax's threads may still hold the failed save's files
  if stopped:
    # A process that got no signal itself stops with the others (SIGTERM's code).
    name = stop.name if stop.requested else "another process's signal"
    if writer:
      with stop.critical():  # the summary, too, is written whole
        stopped_outputs(name, progress)
      print(f"stopped by {name} at step {progress.done_steps}; resume with: "
            f"{config_flags.command_line(drop=('resume', 'overwrite'), add=('--resume',))}",
            flush=True)
    sharding.barrier("stopped")  # the other processes wait while process 0 writes
    sys.exit(stop.exit_code if stop.requested else 128 + 15)

  t = time.perf_counter()
  final = evaluate(state)  # [R, episodes]
  eval_s = time.perf_counter() - t
  if tb:
    tb.write(progress.done_steps, dict(eval_returns=final.mean(1).tolist(),
                                       sps=progress.done_steps / progress.run_s))
    tb.close()
  if writer:
    summary = record.summary(progress, final, extra=dict(
        compile_s=compile_s, eval_s=eval_s, wall_s=time.perf_counter() - t0,
        devices=jax.device_count() if mesh is not None else 1,
        processes=jax.process_count(), chunk_programs=len(programs)))
    record.report(summary)
  sharding.barrier("finished")  # the other processes wait while process 0 writes


class Record:
  """What a run writes for people: metrics.jsonl, summary.json, returns.png
  and, for a grid, table.md and heatmap.png (process 0 alone writes)."""

  def __init__(self, out, spec: runner.Spec, writer: bool, done: int):
    self.out, self.spec, self.writer = out, spec, writer
    self.path = os.path.join(out, "metrics.jsonl")
    self.lines = []
    if writer and done and os.path.exists(self.path):  # resumed: the lines up to its checkpoint
      with open(self.path) as f:
        for row in f:
          try:
            line = json.loads(row)
          except ValueError:
            break  # a line cut off by a kill: it and what follows are rewritten
          if line.get("step", done + 1) > done:
            break
          self.lines.append(line)
    if writer:
      with files.atomic(self.path) as tmp, open(tmp, "w") as f:
        f.writelines(json.dumps(line) + "\n" for line in self.lines)
    self.last_plot = time.perf_counter()

  def add(self, line: dict):
    line = files.strict(line)
    self.lines.append(line)
    if self.writer:
      with open(self.path, "a") as f:
        f.write(json.dumps(line) + "\n")

  def maybe_plot(self):
    if self.writer and time.perf_counter() - self.last_plot >= FLAGS.plot_every_s:
      self.plot()
      self.last_plot = time.perf_counter()

  def plot(self, final_step=None, final=None):
    if not self.lines:
      return
    spec, config = self.spec, self.spec.config
    steps = [l["step"] for l in self.lines]
    curves = np.array([l["mean_return"] for l in self.lines], np.float64).T  # [R, T]
    path = os.path.join(self.out, "returns.png")
    if spec.grid:
      names = (list(spec.grid[0][1]) if len(spec.grid) == 1 else
               [spec.label(i) for i in range(len(spec.combinations))])
      plots.plot_sweep(path, steps, curves.reshape(len(spec.combinations), spec.seeds, -1),
                       names, title=f"{algorithm(config)}, {config.env}: "
                                    f"{' x '.join(spec.params)} sweep, {spec.seeds} seeds each")
    else:
      points = [(l["step"], l["eval_returns"]) for l in self.lines if "eval_returns" in l]
      if final is not None and (not points or points[-1][0] != final_step):
        points.append((final_step, final.tolist()))
      plots.plot_returns(path, steps, curves, points,
                         title=f"{algorithm(config)}, {config.env}, {spec.seeds} seeds")

  def summary(self, progress: runner.Progress, final=None, extra=None) -> dict:
    """summary.json for the steps done; `final`: [R, episodes] returns."""
    spec, config = self.spec, self.spec.config
    summary = dict(env=config.env, seeds=spec.seeds, seed=spec.seed,
                   total_steps=config.total_steps, steps_done=progress.done_steps,
                   finished=final is not None,
                   sps=progress.done_steps / max(progress.run_s, 1e-9),
                   backend=jax.devices()[0].platform, device=str(jax.devices()[0].device_kind),
                   jax_version=jax.__version__, run_format=runner.FORMAT_VERSION,
                   command=config_flags.command_line(), flags=config_flags.flag_values(RUN_FLAGS),
                   config=dataclasses.asdict(config))
    if spec.grid:
      summary.update(params=spec.params, grid={p: list(v) for p, v in spec.grid},
                     combinations=[list(c) for c in spec.combinations])
      if len(spec.grid) == 1:
        summary.update(param=spec.params[0], values=list(spec.grid[0][1]))
    if progress.failed:
      summary.update(failed_runs=[dict(run=spec.run_name(r), index=r, quantity=q, step=t)
                                  for r, q, t in progress.failed])
    if final is not None:
      final = np.array(final, np.float64)
      final[sorted(progress.failed_runs)] = np.nan  # a failed run has no result
      r = final.mean(1)  # [R]
      ok = r[np.isfinite(r)]
      if spec.grid:
        rows = grid.rows(spec, r)
        summary.update(final_returns=r.reshape(len(spec.combinations), spec.seeds).tolist(),
                       final_episode_returns=final.tolist(),
                       final_return_iqm=[row["iqm"] for row in rows],
                       final_return_iqm_ci95=[row["iqm_ci95"] for row in rows],
                       final_return_median=[row["median"] for row in rows], table=rows)
      else:
        summary.update(final_returns=r.tolist(), final_episode_returns=final.tolist(),
                       final_return_iqm=stats.iqm(ok), final_return_iqm_ci95=stats.iqm_ci(ok),
                       final_return_median=float(np.median(ok)))
    summary.update(extra or {})
    files.write_json(os.path.join(self.out, "summary.json"), summary)
    self.plot(progress.done_steps, None if final is None else final.mean(1))
    if final is not None and spec.grid:
      grid.write(self.out, spec, summary)
    return summary

  def report(self, summary):
    """The closing lines a person reads."""
    spec, out = self.spec, self.out
    written = ["metrics.jsonl", "summary.json", "returns.png"]
    if spec.grid:
      for row in summary["table"]:
        lo, hi = row["iqm_ci95"]
        builtins.print(f"{row['label']}: final evaluation returns "
                       f"{np.round(row['returns'], 1).tolist()}  IQM {row['iqm']:.1f} "
                       f"(95% CI {lo:.0f}-{hi:.0f})")
      written += ["table.md"] + (["heatmap.png"] if len(spec.grid) == 2 else [])
    else:
      lo, hi = summary["final_return_iqm_ci95"]
      builtins.print(f"final evaluation returns per seed: "
                     f"{np.round(summary['final_returns'], 1).tolist()}")
      builtins.print(f"IQM {summary['final_return_iqm']:.1f} (95% CI {lo:.0f}-{hi:.0f} over "
                     f"seeds)  median {summary['final_return_median']:.1f}  sps/seed "
                     f"{summary['sps']:.1f}  compile {summary['compile_s']:.1f}s  wall "
                     f"{summary['wall_s']:.1f}s")
    for f in summary.get("failed_runs", ()):
      builtins.print(f"left out: {f['run']} (non-finite {f['quantity']} at step {f['step']})")
    builtins.print(f"wrote {out}/" + ", ".join(written + ["checkpoints/"]))
