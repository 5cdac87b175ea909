"""smpc_jax.runner and the per-step keys: a run is a pure function of its
config and seed, however it is chunked, stopped and resumed; a spec's runs
are laid out as its drivers read them; metrics are reduced from whatever the
step emits."""

import re
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smpc_jax as sj
from smpc_jax import checkpoint as ckpt
from smpc_jax import runner
from tests.helpers import assert_trees_equal

# tests/drivers/test_resume.py's run (its FLAGS): the compiled init and
# chunks are the same programs, so one compile serves both files.
TINY = sj.preset("idp", total_steps=60, episode_length=15, num_samples=8, target_samples=4,
                 hidden_sizes=(16,), batch_size=4)


def lines(chunks):
  """The reduced metrics of a list of chunks, as one list per key."""
  out = {}
  for c in chunks:
    for k, v in runner.reduce(c).items():
      if k != "step":
        out.setdefault(k, []).append(v)
  return out


def run_all(spec, chunk_steps, **kwargs):
  chunks = []
  state, progress = runner.start(spec)
  kwargs.setdefault("programs", runner.chunk_programs(state, spec.config.total_steps,
                                                      chunk_steps, 0))
  state, progress, stopped = runner.run(
      state, progress, spec, chunk_steps=chunk_steps,
      on_chunk=lambda s, c, p: chunks.append(c), **kwargs)
  return state, progress, stopped, chunks, kwargs["programs"]


@pytest.fixture(scope="module")
def spec():
  return runner.Spec(TINY, seed=5, seeds=2)


@pytest.fixture(scope="module")
def in_chunks_of_20(spec):
  return run_all(spec, 20)


def test_a_run_is_the_same_however_it_is_chunked(spec, in_chunks_of_20):
  """60 steps as three chunks of 20 and as 40 + 20: the same final state
  (networks, optimisers, buffer, env), the same steps. Planted bug seen to
  fail it: the key split once per call of `run` (the code before issue 27)."""
  state_a, progress_a, _, chunks_a, _ = in_chunks_of_20
  state_b, progress_b, _, chunks_b, programs = run_all(spec, 40)
  assert sorted(programs) == [20, 40]
  assert_trees_equal(state_a, state_b)
  assert (progress_a.done_steps, progress_a.chunks) == (60, 3)
  assert (progress_b.done_steps, progress_b.chunks) == (60, 2)
  for name in ("done", "episode_return", "reward"):
    np.testing.assert_array_equal(np.concatenate([c.metrics[name] for c in chunks_a], axis=1),
                                  np.concatenate([c.metrics[name] for c in chunks_b], axis=1))


def test_a_stopped_and_resumed_run_ends_as_the_run_left_alone(spec, in_chunks_of_20, tmp_path):
  """Stopped after its first chunk (a checkpoint saved), resumed from that
  checkpoint in a fresh manager: the same final state and later metrics."""
  state_a, _, _, chunks_a, programs = in_chunks_of_20
  mngr = ckpt.manager(str(tmp_path / "checkpoints"))
  state, progress, stopped, _, _ = run_all(spec, 20, mngr=mngr, should_stop=lambda: True,
                                           programs=programs)
  assert stopped and progress.done_steps == 20 and ckpt.steps(str(tmp_path / "checkpoints")) == [20]
  mngr.wait_until_finished()
  mngr = ckpt.manager(str(tmp_path / "checkpoints"))
  state, progress, damaged = runner.resume(mngr, spec)
  assert damaged == [] and (progress.done_steps, progress.chunks) == (20, 1)
  chunks = []
  state, progress, stopped = runner.run(state, progress, spec, chunk_steps=20, mngr=mngr,
                                        on_chunk=lambda s, c, p: chunks.append(c),
                                        programs=programs)
  assert not stopped and progress.done_steps == 60
  assert_trees_equal(state, state_a)
  assert lines(chunks) == lines(chunks_a[1:])
  # The reader's view of the same folder: the spec and the state at step 40.
  mngr.wait_until_finished()
  loaded_spec, loaded, _, _ = runner.load(ckpt.manager(str(tmp_path / "checkpoints")))
  assert loaded_spec == spec
  assert_trees_equal(loaded, state_a)


def test_make_train_is_the_drivers_run(spec, in_chunks_of_20):
  """jax.vmap(sj.make_train(config)) over the spec's seeds 5 and 6 is the
  runner's run bit for bit (the drivers' chunks, 20 steps each), so the keys
  and the draws are the drivers'. (Unvmapped, XLA lays out a batch of one
  otherwise: measured, 63 leaves differ in their last bits after 60 steps,
  every integer leaf and episode equal; README, "Keys".) Planted bugs seen
  to fail it: the key split once per call of `run`; make_train without
  `_as_input` (65 of the state's leaves differ in their last bits)."""
  state_a, _, _, chunks_a, _ = in_chunks_of_20
  both, metrics = jax.jit(jax.vmap(sj.make_train(TINY)))(
      jnp.stack([jax.random.PRNGKey(5), jax.random.PRNGKey(6)]))
  assert_trees_equal(both, state_a)
  np.testing.assert_array_equal(
      metrics["reward"], np.concatenate([c.metrics["reward"] for c in chunks_a], axis=1))


def test_step_and_evaluation_keys_are_per_step_streams():
  state = jax.jit(sj.init, static_argnums=0)(TINY, jax.random.PRNGKey(3))
  later = state.replace(step=jnp.int32(7))
  keys = [sj.step_key(state), sj.step_key(later), sj.evaluation_key(state),
          sj.evaluation_key(later)]
  assert len({tuple(np.asarray(k)) for k in keys}) == 4
  np.testing.assert_array_equal(sj.step_key(later), jax.random.fold_in(
      jax.random.fold_in(state.key, sj.train.STEP_STREAM), 7))
  np.testing.assert_array_equal(state.key, jax.random.split(jax.random.PRNGKey(3), 4)[3])


def test_spec_lays_runs_out_combination_major_with_the_same_seeds():
  """2 x 2 grid x 3 seeds = 12 runs: run i has combination i // 3 and seed
  SEED + i % 3, so results reshape to [combination, seed] and two
  combinations differ by their values alone."""
  spec = runner.Spec(TINY, seed=7, seeds=3, grid=(("tau", (0.01, 0.02)), ("gamma", (0.9, 0.99))))
  assert spec.num_runs == 12 and spec.params == ["tau", "gamma"]
  assert spec.combinations == [(0.01, 0.9), (0.01, 0.99), (0.02, 0.9), (0.02, 0.99)]
  keys = spec.keys().reshape(4, 3, 2)
  for j in range(3):
    np.testing.assert_array_equal(keys[:, j], np.broadcast_to(jax.random.PRNGKey(7 + j), (4, 2)))
  np.testing.assert_allclose(spec.values().reshape(4, 3, 2)[:, 0], np.float32(spec.combinations))
  assert spec.run_name(4) == "tau=0.01, gamma=0.99, seed 8"
  assert runner.Spec(TINY, seed=2, seeds=2).run_name(1) == "seed 3"
  assert runner.Spec.from_record(spec.record()) == spec


@pytest.mark.parametrize("kwargs,words", [
    (dict(seeds=0), "seeds=0 is invalid; it must be an integer >= 1."),
    (dict(grid=(("horizon", (1, 2)),)), "grid name 'horizon' is invalid; allowed: temperature, "
                                        "noise_var, gamma, tau, learning_rate."),
    (dict(grid=(("tau", ()),)), "grid 'tau' is invalid; it needs one or more values."),
    (dict(grid=(("tau", (0.1, 2.0)),)), "tau=2.0 is invalid; it must lie in (0, 1]."),
])
def test_spec_refuses_what_it_cannot_run(kwargs, words):
  with pytest.raises(ValueError) as e:
    runner.Spec(TINY, **kwargs)
  assert str(e.value) == words


def test_resume_checks_name_the_first_difference(spec):
  saved = dict(spec.record(), version=runner.FORMAT_VERSION, done_steps=20, chunks=1, run_s=1.0)
  runner.check_resumable(saved, runner.Spec(TINY.replace(total_steps=80), seed=5, seeds=2))
  cases = [
      (dict(saved, version="0.1.0"), spec, "run format 0.1.0, this is 0.2.0"),
      (saved, runner.Spec(TINY, seed=5, seeds=3), "seeds=2 in the checkpoint, 3 now"),
      (saved, runner.Spec(TINY.replace(tau=0.01), seed=5, seeds=2), "tau=0.005 in the checkpoint"),
      (dict(saved, done_steps=80), spec, "total_steps=60 is invalid; the checkpoint has done 80"),
      # A Config field this version lacks: both versions named (issue 28, case 9).
      (dict(saved, package="9.9.9", config=dict(saved["config"], future_field=1)), spec,
       "the checkpoint's config is of another version of smpc_jax: its config has field(s) "
       f"future_field that this version does not know (it was written by smpc_jax 9.9.9, this "
       f"is {sj.__version__}); resume with the version that wrote it"),
  ]
  for record, want, words in cases:
    with pytest.raises(runner.ResumeError, match=re.escape(words)):
      runner.check_resumable(record, want)


@pytest.mark.parametrize("control,targets", [("actor", "actor"), ("actor", "mppi"),
                                             ("mppi", "actor"), ("mppi", "mppi")])
def test_reduce_takes_whatever_the_step_emits(control, targets):
  """The DDPG step emits no dyn_loss and no online_ess: the driver's line of
  2fe103a read them and crashed after chunk 1 (KeyError 'dyn_loss').
  Metrics of the step's own shapes, each configuration's keys."""
  config = TINY.replace(control=control, targets=targets, total_steps=4)  # shapes only
  _, metrics = jax.eval_shape(jax.vmap(lambda k: sj.run(sj.init(config, k), 4)),
                              jax.ShapeDtypeStruct((2, 2), jnp.uint32))
  m = jax.tree.map(lambda s: np.ones(s.shape, s.dtype), metrics)
  m["done"] = np.array([[0, 1, 0, 1], [0, 0, 0, 0]], bool)
  m["episode_return"] = np.array([[0, 5.0, 0, 7.0], [0, 0, 0, 0]], np.float32)
  line = runner.reduce(runner.Chunk(m, first=11, done=14, seconds=1.0))
  assert line["episode_returns"] == [[5.0, 7.0], []]
  assert line["episode_steps"] == [[12, 14], []]
  assert line["mean_return"][0] == 6.0 and np.isnan(line["mean_return"][1])
  assert ("dyn_loss" in line) == (control == "mppi" or targets == "mppi")
  assert ("online_ess" in line) == (control == "mppi")
  assert ("actor_q" in line) == (control == "actor" or targets == "actor")
  assert "finite" not in line and line["q_loss"] == [1.0, 1.0]


def test_a_non_finite_run_is_marked_failed_and_the_others_go_on(spec, in_chunks_of_20,
                                                                tmp_path):
  """A grid of learning rates 3e-4 and 1e30, one seed each (the same program
  as the two-seed spec: the rates are state leaves): Adam's first step moves
  every weight by about the rate, so the second run overflows in the first
  chunk. It joins progress.failed, named; the healthy run goes on to its end
  and is checkpointed; a resume keeps the mark (issue 28, case 5: the sweep
  used to stop and keep nothing)."""
  programs = in_chunks_of_20[-1]
  grid = runner.Spec(TINY, seed=0, seeds=1, grid=(("learning_rate", (3e-4, 1e30)),))
  mngr = ckpt.manager(str(tmp_path / "checkpoints"))
  state, progress, stopped, chunks, _ = run_all(grid, 20, mngr=mngr, programs=programs)
  assert not stopped and progress.done_steps == 60
  [(run, quantity, step)] = progress.failed
  assert run == 1 and grid.run_name(run) == "learning_rate=1e+30, seed 0"
  assert quantity in ("q_loss", "dyn_loss", "q", "target", "params") and 1 <= step <= 20
  assert all(np.all(np.asarray(c.metrics["finite"]["q_loss"])[0]) for c in chunks)
  assert np.all(np.isfinite(np.asarray(jax.tree.leaves(state.q_params)[0])[0]))
  assert ckpt.steps(str(tmp_path / "checkpoints")) == [60]
  _, _, loaded, _ = runner.load(mngr)
  assert loaded.failed == progress.failed and loaded.failed_runs == {1}


@pytest.mark.slow
def test_when_every_run_fails_the_run_stops_naming_the_first(in_chunks_of_20, tmp_path):
  programs = in_chunks_of_20[-1]
  grid = runner.Spec(TINY, seed=0, seeds=1, grid=(("learning_rate", (1e30, 2e30)),))
  mngr = ckpt.manager(str(tmp_path / "checkpoints"))
  with pytest.raises(runner.NonFinite) as e:
    run_all(grid, 20, mngr=mngr, programs=programs)
  assert e.value.quantity in ("q_loss", "dyn_loss", "q", "target", "params")
  assert 1 <= e.value.step <= 20 and e.value.chunk.done == 20
  assert ckpt.steps(str(tmp_path / "checkpoints")) == []


def test_nonfinite_runs_gives_each_runs_earliest():
  finite = dict(q=np.array([[1, 1, 0], [1, 0, 1], [1, 1, 1]], bool),
                params=np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1]], bool))
  assert runner.nonfinite_runs(finite, 101) == {0: ("q", 103), 1: ("q", 102)}


def test_first_nonfinite_is_the_earliest_step_then_run():
  finite = dict(q=np.array([[1, 1, 0], [1, 0, 1]], bool),
                params=np.array([[1, 1, 1], [1, 1, 0]], bool))
  assert runner.first_nonfinite(finite, 101) == (1, "q", 102)
  assert runner.first_nonfinite({"q": np.ones((2, 3), bool)}, 1) is None


def test_with_hparams_sets_hparams_and_every_optimisers_learning_rate():
  config = TINY.replace(control="actor")  # q, dynamics and actor optimisers
  state = jax.jit(lambda k: sj.with_hparams(sj.init(config, k), tau=0.25, learning_rate=0.5))(
      jax.random.PRNGKey(0))
  assert float(state.hparams.tau) == 0.25
  for opt in (state.q_opt, state.dyn_opt, state.actor_opt):
    assert float(opt.hyperparams["learning_rate"]) == 0.5
  with pytest.raises(ValueError, match="'horizon' is not a swept hyperparameter"):
    sj.with_hparams(state, horizon=3)
