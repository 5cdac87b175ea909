"""The run: a group of vmapped runs started or resumed, run in compiled chunks
that checkpoint, with each chunk's metrics reduced per run.

brax's training loop is the model: a driver makes a `Spec`, calls `start` or
`resume`, then `run` with a callback per chunk, and reads what comes back.
Everything here is in-process: no printing, no exits, no signals. Failures
are typed (`ResumeError`, `NonFinite`, `SaveFailed`), and what the process
does with them (one line, an exit code) is the driver's business.

  spec = runner.Spec(sj.preset("idp"), seed=0, seeds=4)
  state, progress = runner.start(spec)
  state, progress = runner.run(state, progress, spec, chunk_steps=1000)

Keys. Run i of a spec has combination i // seeds and seed `spec.seed + i %
seeds`, and init draws it from jax.random.PRNGKey(that seed); env step t
draws from fold_in(run key, t) (smpc_jax.train.step_key) and an evaluation at
step t from its own stream (smpc_jax.evaluation.evaluation_key). So a run is a pure
function of (config, seed): however it is chunked, stopped and resumed, and
`jax.vmap(sj.make_train(config))` over the spec's keys gives the same runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from smpc_jax import checkpoint as ckpt
from smpc_jax import sharding
from smpc_jax.config import SWEEPABLE, Config, check_seed, validate
from smpc_jax.evaluation import evaluate, evaluation_key
from smpc_jax.train import TrainState, init, run as run_steps, with_hparams

# Written into each checkpoint; a checkpoint of another version is refused
# (its keys, fields or state may differ). Raised whenever what a run
# computes changes: 0.2.0 gave every env step its own key.
FORMAT_VERSION = "0.2.0"


class RunError(Exception):
  """Something a run met that its driver reports (as one line)."""


class ResumeError(RunError):
  """A checkpoint that cannot continue this spec: missing, damaged, of
  another version, or of another run."""


class NonFinite(RunError):
  """A non-finite value in run `run` (`quantity`, first at env `step`); the
  chunk it was met in comes with it (nothing after it was saved)."""

  def __init__(self, run: int, quantity: str, step: int, chunk: "Chunk"):
    super().__init__(f"non-finite {quantity} in run {run} at step {step}")
    self.run, self.quantity, self.step, self.chunk = run, quantity, step, chunk


class SaveFailed(RunError):
  """A checkpoint could not be written (e.g. a full disk). `error`: what
  orbax or the OS raised; `kept`: the steps of the checkpoints still intact."""

  def __init__(self, step: int, kept: list, error: BaseException):
    super().__init__(f"saving checkpoint at step {step} failed")
    self.step, self.kept, self.error = step, kept, error


@dataclasses.dataclass(frozen=True)
class Spec:
  """What a group of runs is: one config, `seeds` seeds from `seed`, for each
  combination of a grid of swept hyperparameters (none: one combination).

  grid: ((name, (v1, v2, ...)), ...), names in config.SWEEPABLE."""
  config: Config
  seed: int = 0
  seeds: int = 1
  grid: tuple = ()

  def __post_init__(self):
    validate(self.config)
    if not (isinstance(self.seeds, int) and not isinstance(self.seeds, bool)
            and self.seeds >= 1):
      raise ValueError(f"seeds={self.seeds!r} is invalid; it must be an integer >= 1.")
    check_seed(self.seed, self.seeds)
    grid = tuple((name, tuple(float(v) for v in values)) for name, values in self.grid)
    for name, values in grid:
      if name not in SWEEPABLE:
        raise ValueError(f"grid name {name!r} is invalid; allowed: {', '.join(SWEEPABLE)}.")
      if not values:
        raise ValueError(f"grid {name!r} is invalid; it needs one or more values.")
      for v in values:  # each value passes the Config field's own checks
        validate(self.config.replace(**{name: v}))
    object.__setattr__(self, "grid", grid)

  @property
  def params(self) -> list:
    return [name for name, _ in self.grid]

  @property
  def combinations(self) -> list:
    """[C] tuples of [P] values (one empty tuple without a grid)."""
    return list(itertools.product(*[values for _, values in self.grid]))

  @property
  def num_runs(self) -> int:
    return len(self.combinations) * self.seeds

  def seed_of(self, run: int) -> int:
    return self.seed + run % self.seeds

  def label(self, combination: int) -> str:
    combo = self.combinations[combination]
    return ", ".join(f"{p}={v:g}" for p, v in zip(self.params, combo))

  def run_name(self, run: int) -> str:
    """How a line names run `run`: "seed 3" or "tau=0.02, seed 3"."""
    label = self.label(run // self.seeds)
    return (label + ", " if label else "") + f"seed {self.seed_of(run)}"

  def keys(self) -> np.ndarray:
    """[R, 2] uint32: run i's jax.random.PRNGKey(seed_of(i))."""
    return np.stack([np.asarray(jax.random.PRNGKey(self.seed_of(i)))
                     for i in range(self.num_runs)])

  def values(self) -> np.ndarray:
    """[R, P] float32: run i's swept values."""
    combos = np.asarray(self.combinations, np.float32).reshape(len(self.combinations), -1)
    return np.repeat(combos, self.seeds, axis=0)

  def record(self) -> dict:
    """What a checkpoint keeps of the spec (JSON)."""
    return dict(config=ckpt.config_to_dict(self.config), seed=self.seed, seeds=self.seeds,
                grid=[[name, list(values)] for name, values in self.grid])

  @classmethod
  def from_record(cls, saved: dict) -> "Spec":
    """The spec a checkpoint's record describes (see `record`)."""
    return cls(ckpt.config_from_dict(saved["config"]), saved["seed"], saved["seeds"],
               tuple((name, tuple(values)) for name, values in saved["grid"]))


@dataclasses.dataclass(frozen=True)
class Progress:
  """Where a run stands: env steps done, chunks run (the evaluation schedule
  counts them), seconds spent running chunks, and the runs that went
  non-finite: ((run, quantity, step), ...), each left out of the results
  while the others go on."""
  done_steps: int = 0
  chunks: int = 0
  run_s: float = 0.0
  failed: tuple = ()

  @property
  def failed_runs(self) -> frozenset:
    return frozenset(run for run, _, _ in self.failed)

  @classmethod
  def from_record(cls, saved: dict) -> "Progress":
    return cls(saved["done_steps"], saved["chunks"], saved["run_s"],
               tuple((int(r), str(q), int(s)) for r, q, s in saved.get("failed", ())))


@dataclasses.dataclass(frozen=True)
class Chunk:
  """A finished chunk: its metrics (every leaf [R, n], numpy, on every
  process), its first env step (1-based), the steps done after it, its time."""
  metrics: dict
  first: int
  done: int
  seconds: float

  @property
  def steps(self) -> int:
    return self.done - self.first + 1


def start(spec: Spec, mesh=None) -> tuple[TrainState, Progress]:
  """A fresh vmapped state of spec.num_runs runs (leaf axis 0), each with
  its key and swept values; with `mesh`, the runs sharded over it."""
  params = spec.params

  def one(key, values):
    state = init(spec.config, key)
    return with_hparams(state, **{p: values[i] for i, p in enumerate(params)})

  state = sharding.seed_jit(jax.vmap(one), mesh)(sharding.place(spec.keys(), mesh),
                                                 sharding.place(spec.values(), mesh))
  return state, Progress()


def check_resumable(saved: dict, spec: Spec) -> None:
  """Raises ResumeError naming the first difference between a checkpoint's
  record and `spec` that a resumed run cannot take."""
  version = saved.get("version", "before 0.2.0")
  if version != FORMAT_VERSION:
    raise ResumeError(f"the checkpoint was written by smpc_jax's run format {version}, "
                      f"this is {FORMAT_VERSION} (its runs draw other keys); start the run "
                      "again with this version, or resume with the version that wrote it")
  want = spec.record()
  for name in ("seed", "seeds", "grid"):
    if saved.get(name) != want[name]:
      raise ResumeError(f"{name}={saved.get(name)!r} in the checkpoint, {want[name]!r} now; "
                        f"resume with the same {name}")
  try:
    saved_config = ckpt.config_from_dict(saved["config"])
  except ckpt.CheckpointError as e:
    raise ResumeError(f"the checkpoint's config is of another version of smpc_jax: {e} (it was "
                      f"written by smpc_jax {saved.get('package', 'before 0.3.0')}, this is "
                      f"{_package_version()}); resume with the version that wrote it") from None
  differs = ckpt.mismatch(saved_config, spec.config)
  if differs:
    raise ResumeError(f"{differs}; only {', '.join(ckpt.RESUMABLE_FIELDS)} may change")
  if spec.config.total_steps < saved["done_steps"]:
    raise ResumeError(f"total_steps={spec.config.total_steps} is invalid; the checkpoint has "
                      f"done {saved['done_steps']} steps, so it must be >= "
                      f"{saved['done_steps']}")


def resume(mngr, spec: Spec, mesh=None, io=contextlib.nullcontext):
  """(state, progress, damaged) from the newest intact checkpoint of `mngr`,
  continued under `spec` (which may raise total_steps: the buffer grows).
  damaged: [(step, reason)] of newer checkpoints that did not read back (set
  aside in DIR/../checkpoints_damaged/). Raises ResumeError."""
  def target_of(saved):
    check_resumable(saved, spec)
    return ckpt.abstract_state(ckpt.config_from_dict(saved["config"]), spec.num_runs, mesh)

  try:
    _, state, saved, damaged = ckpt.restore_intact(mngr, target_of, io)
    state = sharding.reshard(ckpt.extend(state, spec.config), mesh)
  except ckpt.CheckpointError as e:
    raise ResumeError(str(e)) from None
  return state, Progress.from_record(saved), damaged


def load(mngr, io=contextlib.nullcontext):
  """(spec, state, progress, damaged) of the newest intact checkpoint of
  `mngr`, whatever run it holds (of this format version), on one device and
  nothing moved: for readers of a run (experiments/render.py, users'
  analyses). Raises ResumeError."""
  def target_of(saved):
    version = saved.get("version", "before 0.2.0")
    if version != FORMAT_VERSION:
      raise ckpt.CheckpointError(f"checkpoint {mngr.directory} was written by smpc_jax's run "
                                 f"format {version}, this is {FORMAT_VERSION}")
    return ckpt.abstract_state(ckpt.config_from_dict(saved["config"]),
                               Spec.from_record(saved).num_runs)

  try:
    _, state, saved, damaged = ckpt.restore_intact(mngr, target_of, io, set_aside=False)
  except ckpt.CheckpointError as e:
    raise ResumeError(str(e)) from None
  return Spec.from_record(saved), state, Progress.from_record(saved), damaged


def chunk_programs(state: TrainState, total_steps: int, chunk_steps: int, done: int,
                   mesh=None) -> dict:
  """{steps: compiled chunk}: the full chunk's and, when the steps left do
  not divide into chunks, the short last one's (each donates its state)."""
  chunk = min(chunk_steps, total_steps)
  last = (total_steps - done) % chunk
  out = {}
  for n in [chunk] + ([last] if last else []):
    out[n] = sharding.seed_jit(jax.vmap(lambda s, n=n: run_steps(s, n)), mesh,
                               donate_argnums=0).lower(state).compile()
    sharding.barrier(f"compiled_{n}")  # no process runs it while another compiles
  return out


def evaluator(state: TrainState, episodes: int, mesh=None) -> Callable:
  """A compiled `evaluate(state) -> [R, episodes]` numpy returns, each run's
  key its evaluation_key (so a pure function of the state)."""
  compiled = sharding.seed_jit(jax.vmap(
      lambda s: evaluate(s, evaluation_key(s), episodes)), mesh).lower(state).compile()
  return lambda s: sharding.gather(compiled(s))


def nonfinite_runs(finite: dict, first_step: int) -> dict:
  """{run: (quantity, step)}: each run's earliest False flag.
  finite: {quantity: [R, n] bool}; steps count from `first_step`."""
  names = list(finite)
  found = sorted((int(r), int(i), names.index(name))
                 for name, flags in finite.items()
                 for r, i in np.argwhere(~np.asarray(flags, bool)))
  out = {}
  for r, i, k in found:
    out.setdefault(r, (names[k], first_step + i))
  return out


def first_nonfinite(finite: dict, first_step: int):
  """(run, quantity, step) of the earliest False flag (earliest step, then
  run), or None. finite: {quantity: [R, n] bool}; steps from `first_step`."""
  bad = nonfinite_runs(finite, first_step)
  if not bad:
    return None
  run, (quantity, step) = min(bad.items(), key=lambda item: (item[1][1], item[0]))
  return run, quantity, step


# Per-step entries of the step's metrics that are not averaged.
_EPISODE_KEYS = ("done", "episode_return", "finite")


def reduce(chunk: Chunk) -> dict:
  """A chunk's metrics per run, as JSON lists of length R: the episodes it
  finished (their returns, their last env steps), their mean return (NaN
  where none finished), and the chunk's mean of every other scalar the step
  emits, whatever the configuration makes it emit."""
  m = chunk.metrics
  done = np.asarray(m["done"], bool)  # [R, n]
  returns = [np.asarray(m["episode_return"])[i][done[i]].tolist() for i in range(len(done))]
  line = dict(step=chunk.done, episode_returns=returns,
              episode_steps=[(chunk.first + np.flatnonzero(d)).tolist() for d in done],
              mean_return=[float(np.mean(r)) if r else float("nan") for r in returns])
  for name, values in m.items():
    if name not in _EPISODE_KEYS and name != "reward":
      line[name] = np.mean(np.asarray(values, np.float64), axis=1).tolist()
  return line


def run(state: TrainState, progress: Progress, spec: Spec, *, chunk_steps: int,
        mngr=None, checkpoint_every: int = 0,
        on_chunk: Callable[[TrainState, Chunk, Progress], None] = lambda *_: None,
        should_stop: Callable[[], bool] = lambda: False,
        mesh=None, programs: Optional[dict] = None, io=contextlib.nullcontext):
  """Runs the chunks left of spec.config.total_steps; returns (state,
  progress, stopped). After each chunk: a run with a non-finite value joins
  progress.failed (its results are left out, the others go on); NonFinite
  once every run has failed (nothing saved); on_chunk(state, chunk,
  progress), then a checkpoint (with
  `mngr`) every `checkpoint_every` steps, at the end, and when
  should_stop() holds (every process then stops at this chunk: stopped=True).
  programs: from `chunk_programs` (compiled here if None). io: see
  checkpoint.save. Raises SaveFailed when a checkpoint cannot be written."""
  total = spec.config.total_steps
  chunk = min(chunk_steps, total)
  if programs is None:
    programs = chunk_programs(state, total, chunk_steps, progress.done_steps, mesh)
  while progress.done_steps < total:
    before = progress.done_steps
    n = min(chunk, total - before)
    t = time.perf_counter()
    state, m = programs[n](state)
    m = sharding.gather(m)
    c = Chunk(m, before + 1, before + n, time.perf_counter() - t)
    new = [(r, q, step) for r, (q, step) in nonfinite_runs(m["finite"], c.first).items()
           if r not in progress.failed_runs]
    failed = progress.failed + tuple(sorted(new, key=lambda f: (f[2], f[0])))
    if new and len({r for r, _, _ in failed}) == spec.num_runs:
      raise NonFinite(*min(new, key=lambda f: (f[2], f[0])), chunk=c)
    progress = Progress(c.done, progress.chunks + 1, progress.run_s + c.seconds, failed)
    on_chunk(state, c, progress)
    stopping = sharding.any_process(should_stop())
    if mngr is not None and (
        stopping or c.done == total
        or (checkpoint_every and c.done // checkpoint_every > before // checkpoint_every)):
      save(mngr, state, progress, spec, io)
    if stopping:
      return state, progress, True
  return state, progress, False


def _package_version() -> str:
  from smpc_jax import __version__  # deferred: the package imports this module
  return __version__


def save(mngr, state: TrainState, progress: Progress, spec: Spec, io=contextlib.nullcontext):
  """A checkpoint at progress.done_steps; SaveFailed if it cannot be written."""
  record = dict(spec.record(), version=FORMAT_VERSION, package=_package_version(),
                **dataclasses.asdict(progress))
  try:
    ckpt.save(mngr, progress.done_steps, state, record, io)
  except ckpt.CheckpointError as e:
    raise SaveFailed(progress.done_steps, ckpt.steps(str(mngr.directory)), e.__cause__) from e
