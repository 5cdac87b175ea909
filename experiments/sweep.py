"""A vmapped hyperparameter sweep: a grid of values x seeds, one compiled program.

  python experiments/sweep.py --env=idp --param=tau --values=0.005,0.02 \\
      --seeds=2 --total_steps=20000 --out_dir=DIR
  python experiments/sweep.py --grid=temperature=0.1,1 --grid=tau=0.005,0.05 \\
      --seeds=3 --out_dir=DIR          # 2 x 2 combinations x 3 seeds = 12 runs
  python -m experiments.sweep ...same flags... --resume      # continue DIR's sweep

Swept parameters are the hyperparameters held as array leaves of the state
(temperature, noise_var, gamma, tau, learning_rate). `--grid=NAME=V1,V2,...`
(repeatable) sweeps every combination of the given values; `--param/--values`
is the one-parameter form. Every other Config field is a flag as in train.py;
--shard_seeds splits the runs (combinations x seeds) over the devices.
It runs exactly --total_steps (the last chunk shorter if need be), through
train.py's loop (harness/loop.py): a non-finite value stops it naming the run,
SIGINT/SIGTERM stop it after the chunk with a checkpoint, and --resume
continues it bit for bit. Writes DIR/summary.json (final evaluation returns
per combination and seed, their IQM with a 95% bootstrap interval, median),
DIR/table.md (the same as a table), DIR/returns.png, for two parameters
DIR/heatmap.png, and DIR/checkpoints/ (orbax).
"""

from __future__ import annotations

import itertools
import os
import sys
import time

from absl import flags, logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import config_flags, devices, files, loop, plots, signals, stats
import smpc_jax as sj
from smpc_jax import checkpoint as ckpt
from smpc_jax import sharding

SWEEPABLE = ("temperature", "noise_var", "gamma", "tau", "learning_rate")
@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_string("param", "tau", f"What to sweep: {', '.join(SWEEPABLE)}.")
  flags.DEFINE_list("values", ["0.005", "0.02"], "Values of --param, comma separated.")
  flags.DEFINE_multi_string("grid", [], "NAME=V1,V2,...: one swept parameter of a grid "
                            "(repeat the flag for more; replaces --param/--values).")
  flags.DEFINE_integer("seeds", 2, "Seeds per combination.")
  flags.DEFINE_integer("seed", 0, "Base seed.")
  flags.DEFINE_string("out_dir", "runs/sweep", "Where summary, table and plots go.")
  flags.DEFINE_boolean("overwrite", False, "Replace a previous sweep in --out_dir.")
  flags.DEFINE_boolean("resume", False, "Continue the sweep in --out_dir from its latest "
                       "checkpoint.")
  flags.DEFINE_integer("checkpoint_every", 10_000,
                       "Save a checkpoint every this many env steps (0: only at the end and "
                       "on a signal).")
  flags.DEFINE_integer("keep_checkpoints", 2, "Checkpoints kept (the latest ones).")
  config_flags.define_config_flags()
  devices.define_flags()


FLAGS = flags.FLAGS


def with_value(state: sj.TrainState, param: str, value) -> sj.TrainState:
  """`state` with hyperparameter `param` set to `value` (a traced scalar)."""
  if param == "learning_rate":
    def set_lr(opt):  # optax.inject_hyperparams keeps it in the optimiser state
      return opt._replace(hyperparams={**opt.hyperparams,
                                       "learning_rate": jnp.asarray(value, jnp.float32)})
    # dyn_opt is None for DDPG, actor_opt for the default method.
    opts = {name: set_lr(getattr(state, name)) for name in ("q_opt", "dyn_opt", "actor_opt")
            if getattr(state, name) is not None}
    return state.replace(**opts)
  return state.replace(hparams=state.hparams.replace(**{param: jnp.asarray(value, jnp.float32)}))


def runs(combos, seeds: int, seed: int):
  """The sweep's runs, combination-major: run i has combination i // seeds
  and seed i % seeds, so results reshape to [len(combos), seeds]. Returns
  numpy run keys [R, 2], evaluation keys [R, 2] (seed j's keys are the same
  for every combination, so two combinations differ only by their values)
  and swept values [R, P]."""
  keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), seeds))
  eval_keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed + 10_000), seeds))
  tile = lambda k: np.tile(k, (len(combos), 1))
  swept = np.repeat(np.asarray(combos, np.float32).reshape(len(combos), -1), seeds, axis=0)
  return tile(keys), tile(eval_keys), swept


def check_distinct(flag: str, text: str, values):
  """A ValueError when two values are one float32 (the state holds float32):
  the sweep would run the same thing twice under two labels."""
  as_f32 = [float(np.float32(v)) for v in values]
  for i, v in enumerate(as_f32):
    if v in as_f32[:i]:
      raise ValueError(f"{flag}={text!r} is invalid; {values[i]:g} is given twice"
                       + ("" if values[i] in values[:i] else " (as float32)") + ".")


def with_values(state: sj.TrainState, params, values) -> sj.TrainState:
  """`state` with params[i] set to values[i] ([P], traced)."""
  for i, p in enumerate(params):
    state = with_value(state, p, values[i])
  return state


def parse_grid(specs, config: sj.Config):
  """[(name, [values])] from NAME=V1,V2,... specs, or a ValueError naming
  the flag, the value and what is allowed. Each value passes Config's checks."""
  grid = []
  for spec in specs:
    name, eq, text = spec.partition("=")
    name = name.strip()
    if not eq:
      raise ValueError(f"grid={spec!r} is invalid; it must be NAME=V1,V2,... "
                       f"with NAME one of {', '.join(SWEEPABLE)}.")
    if name not in SWEEPABLE:
      raise ValueError(f"grid={spec!r} is invalid; NAME must be one of {', '.join(SWEEPABLE)}.")
    if name in [n for n, _ in grid]:
      raise ValueError(f"grid={spec!r} is invalid; {name} is swept twice.")
    items = [v.strip() for v in text.split(",")]
    if not text.strip() or any(not v for v in items):
      raise ValueError(f"grid={spec!r} is invalid; give one or more numbers after '=', "
                       "comma separated.")
    try:
      values = [float(v) for v in items]
    except ValueError:
      raise ValueError(f"grid={spec!r} is invalid; the values must be numbers.") from None
    for v in values:
      sj.validate(config.replace(**{name: v}))
    check_distinct("grid", spec, values)
    grid.append((name, values))
  return grid


def grid_from_flags(config: sj.Config):
  """The grid asked for by --grid, or by --param/--values; exits with one line."""
  try:
    if FLAGS.grid:
      if FLAGS["param"].present or FLAGS["values"].present:
        raise ValueError(f"grid={FLAGS.grid[0]!r} is invalid together with --param/--values; "
                         "use one form.")
      return parse_grid(FLAGS.grid, config)
    if FLAGS.param not in SWEEPABLE:
      raise ValueError(f"param={FLAGS.param!r} is invalid; allowed: {', '.join(SWEEPABLE)}.")
    if not FLAGS.values or any(not v.strip() for v in FLAGS.values):
      raise ValueError(f"values={','.join(FLAGS.values)!r} is invalid; give one or more "
                       "numbers, comma separated.")
    try:
      values = [float(v) for v in FLAGS.values]
    except ValueError:
      raise ValueError(f"values={','.join(FLAGS.values)!r} is invalid; they must be numbers.") from None
    for v in values:  # The same checks as the Config's own field.
      sj.validate(config.replace(**{FLAGS.param: v}))
    check_distinct("values", ",".join(FLAGS.values), values)
    return [(FLAGS.param, values)]
  except ValueError as e:
    cli.fail(str(e))


def label(params, combo) -> str:
  return ", ".join(f"{p}={v:g}" for p, v in zip(params, combo))


def table_rows(params, combos, final) -> list:
  """One dict per combination: its values, final-return IQM, 95% interval, median."""
  return [dict(**dict(zip(params, combo)), iqm=stats.iqm(r), iqm_ci95=stats.iqm_ci(r),
               median=float(np.median(r)), returns=np.asarray(r).tolist())
          for combo, r in zip(combos, final)]


def write_table(path, params, rows, seeds, steps):
  lines = [f"Final evaluation return per combination: IQM over {seeds} seed(s) with a 95% "
           f"percentile-bootstrap interval, {steps} steps each.", "",
           "| " + " | ".join(params) + " | IQM | 95% CI | median |",
           "|" + "---:|" * (len(params) + 3)]
  for r in rows:
    lo, hi = r["iqm_ci95"]
    lines.append("| " + " | ".join(f"{r[p]:g}" for p in params)
                 + f" | {r['iqm']:.1f} | {lo:.0f} - {hi:.0f} | {r['median']:.1f} |")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def plot_heatmap(path, grid, iqms, title=""):
  """IQM of the final return over a two-parameter grid, one cell per combination
  (rows: the first parameter, columns: the second), values written in the cells."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  (p0, v0), (p1, v1) = grid
  z = np.asarray(iqms, np.float64).reshape(len(v0), len(v1))
  fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(v1), 1.4 + 0.8 * len(v0)))
  im = ax.imshow(z, cmap="viridis", aspect="auto")
  ax.set_xticks(range(len(v1)), [f"{v:g}" for v in v1])
  ax.set_yticks(range(len(v0)), [f"{v:g}" for v in v0])
  ax.set_xlabel(p1)
  ax.set_ylabel(p0)
  mid = np.nanmean(z) if np.isfinite(z).any() else 0.0
  for i, j in itertools.product(range(len(v0)), range(len(v1))):
    ax.text(j, i, f"{z[i, j]:.0f}", ha="center", va="center",
            color="white" if z[i, j] < mid else "black", fontsize=9)
  fig.colorbar(im, ax=ax, label="IQM of final return")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  plots.save_figure(fig, path)
  plt.close(fig)


def main(argv):
  with cli.write_faults(f"What was written before is kept in {FLAGS.out_dir}."):
    sweep(argv)


def check_resumable(saved: dict, config: sj.Config, grid, n_seeds: int):
  """Raises ValueError naming the first difference between a checkpoint's
  sweep and the flags' that a resumed sweep cannot take."""
  for name, key, want in (("grid", "grid", [[p, list(v)] for p, v in grid]),
                          ("seeds", "seeds_per_combination", n_seeds), ("seed", "seed", FLAGS.seed)):
    if saved.get(key) != want:
      raise ValueError(f"{name}={saved.get(key)!r} in the checkpoint, {want!r} in the flags; "
                       f"resume with the same {name}")
  differs = ckpt.mismatch(ckpt.config_from_dict(saved["config"]), config)
  if differs:
    raise ValueError(f"{differs}; only {', '.join(ckpt.RESUMABLE_FIELDS)} may change")
  if config.total_steps < saved["done_steps"]:
    raise ValueError(f"total_steps={config.total_steps} is invalid; the checkpoint has done "
                     f"{saved['done_steps']} steps, so it must be >= {saved['done_steps']}")


def sweep(argv):
  cli.no_positional(argv)
  logging.set_verbosity(logging.WARNING)
  config = config_flags.config_from_flags()
  grid = grid_from_flags(config)
  cli.check_run_flags(dict(seeds=1, checkpoint_every=0, keep_checkpoints=1))
  params = [p for p, _ in grid]
  combos = list(itertools.product(*[v for _, v in grid]))  # [C] tuples of [P]
  n_seeds, n_runs = FLAGS.seeds, len(combos) * FLAGS.seeds
  mesh = devices.setup(
      n_runs, f"seeds={n_seeds} (x {len(combos)} combinations = {n_runs} runs)")
  writer = sharding.is_writer()
  print_ = print if writer else (lambda *a, **k: None)
  out = FLAGS.out_dir
  if writer:
    files.claim_run_dir(out, "sweep.py", FLAGS.resume, FLAGS.overwrite)
    if FLAGS.resume and not ckpt.steps(os.path.join(out, "checkpoints")):
      cli.fail(f"resume: no complete checkpoint in {os.path.abspath(out)}/checkpoints.")
  sharding.barrier("out_dir")
  mngr = ckpt.manager(os.path.join(out, "checkpoints"), FLAGS.keep_checkpoints)

  keys, eval_keys, swept = runs(combos, n_seeds, FLAGS.seed)  # [R, 2], [R, 2], [R, P]
  place = lambda x: (jnp.asarray(x) if mesh is None else jax.make_array_from_callback(
      x.shape, sharding.seed_sharding(mesh), lambda idx: x[idx]))
  if FLAGS.resume:
    def check(saved):
      try:
        check_resumable(saved, config, grid, n_seeds)
      except ValueError as e:
        cli.fail(f"resume: {e}.", hard=True)
    try:
      step, state, progress, damaged = ckpt.restore_intact(mngr, mesh, check)
      state = sharding.reshard(ckpt.extend(state, config), mesh)
    except ckpt.CheckpointError as e:
      cli.fail(f"resume: {e}.", hard=True)
    for _, reason in damaged:
      print(f"warning: resume: {reason}; resuming from step {step}, the newest intact "
            "checkpoint.", file=sys.stderr, flush=True)
    progress["config"] = ckpt.config_to_dict(config)
  else:
    init = jax.vmap(lambda k, v: with_values(sj.init(config, k), params, v))
    state = sharding.seed_jit(init, mesh)(place(keys), place(swept))
    # "seeds" counts the vmapped runs (smpc_jax.checkpoint restores that many).
    progress = dict(config=ckpt.config_to_dict(config), seeds=n_runs,
                    seeds_per_combination=n_seeds, seed=FLAGS.seed,
                    grid=[[p, list(v)] for p, v in grid], done_steps=0, chunk_index=0,
                    run_s=0.0, steps=[], curves=[])
  print_(f"sweep {' x '.join(f'{p} {v}' for p, v in grid)}: {len(combos)} combination(s) x "
         f"{n_seeds} seed(s) = {n_runs} runs in one program, {config.total_steps} steps each, "
         f"{devices.describe(mesh)}"
         + (f", resumed at step {progress['done_steps']}" if FLAGS.resume else ""), flush=True)
  stop = signals.StopRequest()
  t0 = time.perf_counter()
  programs = loop.programs(lambda n: sharding.seed_jit(jax.vmap(lambda s: sj.run(s, n)), mesh,
                                                       donate_argnums=0).lower(state),
                           config.total_steps, config.chunk_steps, progress["done_steps"])
  evaluate = sharding.seed_jit(jax.vmap(lambda s, k: sj.evaluate(s, k, config.eval_episodes)),
                               mesh)

  def on_chunk(state, c):
    m = c.metrics
    rets = [m["episode_return"][i][m["done"][i]] for i in range(n_runs)]
    progress["curves"].append([float(np.mean(r)) if len(r) else None for r in rets])
    progress["steps"].append(c.done)
    with np.errstate(all="ignore"):
      by_combo = np.nanmedian(np.reshape(np.array(progress["curves"][-1], np.float64),
                                         (len(combos), -1)), 1)
    print_(f"step {c.done:>8d}  median train return per combination "
           f"{np.round(by_combo, 0).tolist()}  ({time.perf_counter() - t0:.0f}s)", flush=True)

  def on_stop(reason):
    files.write_json(os.path.join(out, "summary.json"), dict(
        env=config.env, params=params, seeds=n_seeds, total_steps=config.total_steps,
        steps_done=progress["done_steps"], finished=False, stopped_by=reason))

  def run_name(i):
    return f"{label(params, combos[i // n_seeds])}, seed {i % n_seeds}"

  state = loop.run(state, progress, programs, config.total_steps, config.chunk_steps, mngr,
                   FLAGS.checkpoint_every, loop.Driver(on_chunk, on_stop, run_name=run_name),
                   stop)
  done = progress["done_steps"]
  final = sharding.gather(evaluate(state, place(eval_keys))).mean(1).reshape(len(combos), n_seeds)
  rows = table_rows(params, combos, final)
  summary = dict(
      env=config.env, params=params, grid={p: v for p, v in grid},
      combinations=[list(c) for c in combos], seeds=n_seeds, total_steps=done,
      steps_done=done, finished=True, final_returns=final.tolist(),
      final_return_iqm=[r["iqm"] for r in rows],
      final_return_iqm_ci95=[r["iqm_ci95"] for r in rows],
      final_return_median=[r["median"] for r in rows], table=rows,
      wall_s=time.perf_counter() - t0, run_s=progress["run_s"],
      backend=jax.devices()[0].platform,
      devices=jax.device_count() if mesh is not None else 1,
      processes=jax.process_count(), config={k: v for k, v in config.__dict__.items()})
  if len(grid) == 1:  # The one-parameter form's keys, as before.
    summary.update(param=params[0], values=grid[0][1])
  if not writer:
    return
  files.write_json(os.path.join(out, "summary.json"), summary)
  write_table(os.path.join(out, "table.md"), params, rows, n_seeds, done)
  curves = np.array(progress["curves"], np.float64).T.reshape(len(combos), n_seeds, -1)
  names = grid[0][1] if len(grid) == 1 else [label(params, c) for c in combos]
  plots.plot_sweep(os.path.join(out, "returns.png"), progress["steps"], curves, names,
                   title=f"softMPCritic, {config.env}: {' x '.join(params)} sweep, "
                         f"{n_seeds} seeds each")
  written = ["summary.json", "table.md", "returns.png"]
  if len(grid) == 2:
    plot_heatmap(os.path.join(out, "heatmap.png"), grid, summary["final_return_iqm"],
                 title=f"{config.env}, {done} steps, IQM over {n_seeds} seeds")
    written.append("heatmap.png")
  for r, combo in zip(rows, combos):
    lo, hi = r["iqm_ci95"]
    print(f"{label(params, combo)}: final evaluation returns {np.round(r['returns'], 1).tolist()}  "
          f"IQM {r['iqm']:.1f} (95% CI {lo:.0f}-{hi:.0f})")
  print(f"wrote {out}/" + ", ".join(written + ["checkpoints/"]))


if __name__ == "__main__":
  cli.run(main, define_flags)
