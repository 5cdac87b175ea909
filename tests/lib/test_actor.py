"""The actor switches of the training step (Fig. 3's ablations, DDPG), the
SAC driver's output format and the overlay plot."""

import functools
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smpc_jax as sj
from smpc_jax import actor as actor_lib
from smpc_jax import networks, replay

from tests.helpers import ROOT

STEPS = 300  # two chunks of 150: one compile per variant
TINY = sj.preset("idp", total_steps=STEPS, num_samples=8, target_samples=4, hidden_sizes=(8,),
                 batch_size=8, episode_length=60)
# Fig. 3's ablation switches and DDPG, three compiles in all: "MPPI only for
# control" (targets=actor) also plans without terminal Q and with one model,
# so its online planner runs both of those switches.
VARIANTS = {
    "mppi_control_only_no_q_one_model": dict(targets="actor", use_terminal_q=False,
                                             ensemble_size=1),
    "mppi_targets_only": dict(control="actor"),
    "ddpg": dict(control="actor", targets="actor"),
}


# The two ablations (about 50 s each of a cold make test) in `make test-slow`;
# DDPG, no planner at all, in make test.
@pytest.fixture(scope="module", params=[
    name if name == "ddpg" else pytest.param(name, marks=pytest.mark.slow) for name in VARIANTS])
def variant(request):
  """(name, config, state before, after 150 steps, after 300, metrics [300])."""
  config = sj.validate(TINY.replace(**VARIANTS[request.param]))
  s0 = jax.jit(sj.init, static_argnums=0)(config, jax.random.PRNGKey(0))
  run = jax.jit(lambda s: sj.run(s, STEPS // 2))
  s1, m1 = run(s0)
  s2, m2 = run(s1)
  metrics = jax.tree.map(lambda a, b: np.concatenate([a, b]), m1, m2)
  return request.param, config, s0, s1, s2, metrics


def test_switches_run_with_finite_metrics_and_only_what_they_use(variant):
  _, c, s0, _, s2, m = variant
  assert int(s2.step) == STEPS
  flags = m["finite"]
  for name, v in m.items():
    if name == "finite":
      continue
    assert np.all(np.isfinite(v)), name
  # The in-step guard covers the losses this variant has, and saw no NaN.
  assert set(flags) == {"q_loss", "q", "target", "params"} | (
      {"dyn_loss"} if c.uses_model else set()) | ({"actor_q"} if c.uses_actor else set())
  assert all(np.all(f) for f in flags.values()), flags
  # Each part is present, and learns, exactly where a switch uses it.
  assert ("dyn_loss" in m) == c.uses_model
  assert ("online_ess" in m) == (c.control == "mppi")
  assert ("actor_q" in m) == c.uses_actor
  assert (s2.dyn_params is None) == (not c.uses_model)
  assert (s2.actor_params is None) == (not c.uses_actor)
  if c.uses_actor:
    w0 = s0.actor_params["params"]["Dense_0"]["kernel"]
    assert not np.allclose(w0, s2.actor_params["params"]["Dense_0"]["kernel"])
    assert not np.allclose(w0, s2.actor_target["params"]["Dense_0"]["kernel"])
  if c.uses_model:
    assert jax.tree.leaves(s2.dyn_params)[0].shape[0] == c.ensemble_size
  # Stored plans only where MPPI computes targets from them.
  h1 = c.horizon + 1 if c.targets == "mppi" else 0
  assert s2.buffer.data.plan.shape == (c.capacity, h1, 1)
  assert m["done"].sum() >= 1 and np.all(np.abs(replay.get(s2.buffer, np.arange(STEPS)).action) <= 1)


def test_ddpg_has_no_dynamics_and_evaluates_with_its_actor(variant):
  name, c, s0, _, s2, _ = variant
  if name != "ddpg":
    pytest.skip("DDPG only")
  assert s2.dyn_params is None and s2.dyn_opt is None
  jax.tree.map(np.testing.assert_array_equal, s2.scales, s0.scales)  # no model: nothing learns scales
  # evaluate acts with mu(s): it traces no planner (there are no dynamics to
  # plan with), and a different actor gives different returns.
  evaluate = jax.jit(lambda s, k: sj.evaluate(s, k, 2))
  key = jax.random.PRNGKey(3)
  trained = evaluate(s2, key)
  zeroed = evaluate(s2.replace(actor_params=jax.tree.map(jnp.zeros_like, s2.actor_params)), key)
  assert np.all(np.isfinite(trained)) and np.all(np.isfinite(zeroed))
  assert not np.allclose(trained, zeroed)


def _mlp(params, x, out, activation="silu"):
  """The flax MLP (SiLU or ReLU hidden layers, linear head) in numpy."""
  layers = params["params"]
  for i in range(len(layers)):
    w, b = (np.asarray(layers[f"Dense_{i}"][k], np.float64) for k in ("kernel", "bias"))
    x = x @ w + b
    if i < len(layers) - 1:
      x = x / (1.0 + np.exp(-x)) if activation == "silu" else np.maximum(x, 0.0)
  return out(x)


def _numpy_target(actor_target, q_target, reward, terminated, next_obs, gamma):
  a = _mlp(actor_target, np.asarray(next_obs, np.float64), np.tanh)  # box [-1, 1]
  q = _mlp(q_target, np.concatenate([next_obs, a], -1), lambda x: x[..., 0])
  return reward + (1.0 - terminated) * gamma * q


def test_actor_target_matches_an_independent_computation():
  obs, act, b = 5, 2, 6
  actor = actor_lib.make_actor(obs, act, (7, 7), -1.0, 1.0)
  q = networks.make_q(obs, act, (7, 7))
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  a_target, q_target = jax.jit(actor.init)(keys[0]), jax.jit(q.init)(keys[1])
  rng = np.random.default_rng(0)
  next_obs = (2 * rng.standard_normal((b, obs))).astype(np.float32)
  reward = rng.standard_normal(b).astype(np.float32)
  terminated = np.array([0, 1, 0, 0, 1, 0], np.float32)
  y = np.asarray(jax.jit(functools.partial(actor_lib.bootstrap_target, actor, q.apply))(
      a_target, q_target, reward, terminated, next_obs, 0.9))
  np.testing.assert_allclose(
      y, _numpy_target(a_target, q_target, reward, terminated, next_obs, 0.9), rtol=1e-4,
      atol=1e-5)
  np.testing.assert_allclose(y[[1, 4]], reward[[1, 4]])  # terminated: no bootstrap


def test_train_step_uses_the_target_networks_for_actor_targets(variant):
  """The first step of the second chunk: its mean target is that of the
  numpy formula on the batch it sampled, with the target actor and Q (not
  the online ones, which differ after 150 steps)."""
  _, c, _, s1, s2, m = variant
  if c.targets != "actor":
    pytest.skip("targets=actor only")
  key = sj.step_key(s1)  # the key of the step after s1
  k_idx = jax.random.split(key, 5)[2]  # as `train_step` splits
  row = int(s1.buffer.cursor)  # where that step wrote its transition
  buffer = replay.add(s1.buffer, replay.get(s2.buffer, row))
  batch = replay.get(buffer, replay.sample(buffer, k_idx, (c.batch_size,)))
  y = _numpy_target(s1.actor_target, s1.q_target, np.asarray(batch.reward),
                    np.asarray(batch.terminated), np.asarray(batch.next_obs), c.gamma)
  np.testing.assert_allclose(m["target_mean"][STEPS // 2], y.mean(), rtol=1e-4, atol=1e-4)
  y_online = _numpy_target(s1.actor_params, s1.q_params, np.asarray(batch.reward),
                           np.asarray(batch.terminated), np.asarray(batch.next_obs), c.gamma)
  assert abs(y_online.mean() - y.mean()) > 1e-3  # the check can tell them apart


def test_actor_explores_inside_the_box_with_the_noise_asked():
  actor = actor_lib.make_actor(3, 2, (8,), -1.0, 1.0)
  params = jax.jit(actor.init)(jax.random.PRNGKey(0))
  s = jnp.array([0.1, -0.2, 0.3])
  draws = jax.jit(jax.vmap(lambda k: actor.explore(params, k, s, 0.1)))(
      jax.random.split(jax.random.PRNGKey(1), 4000))
  mu = jax.jit(actor.apply)(params, s)
  assert np.all(np.abs(draws) <= 1.0)
  np.testing.assert_allclose(np.std(draws, 0), 0.1, rtol=0.1)
  np.testing.assert_allclose(np.mean(draws, 0), mu, atol=0.01)


@pytest.mark.parametrize("field,value", [("control", "ddpg"), ("targets", "none"),
                                         ("actor_noise", -0.1), ("activation", "gelu"),
                                         ("warmup_steps", STEPS), ("warmup_steps", -1),
                                         ("actor_update_period", 0),
                                         ("q_activations", "silu,silu"),
                                         ("q_activations", "silu,gelu"),
                                         ("value_normaliser", "max")])
def test_bad_switch_values_name_the_field(field, value):
  with pytest.raises(ValueError, match=f"^{field}="):
    sj.validate(TINY.replace(**{field: value}))


def test_sac_target_entropy_adapter_makes_brax_aim_at_cleanrls():
  """brax_sac.target_entropy(-1): brax's alpha loss, alpha * (-log pi - H*),
  aims at H* = -|A| inside (brax's own -0.5 |A| outside): at alpha = 1 the loss
  rises by exactly 0.5 |A|, and brax's function is back after.

  Planted bug seen to fail it: the context yielding without the scaling."""
  from experiments.harness import brax_sac
  from brax.training import types
  from brax.training.acme import running_statistics, specs
  from brax.training.agents.sac import losses as sac_losses
  from brax.training.agents.sac import networks as sac_networks
  obs, act = 3, 2
  net = sac_networks.make_sac_networks(obs, act, hidden_layer_sizes=(8,))
  policy = net.policy_network.init(jax.random.PRNGKey(0))
  normaliser = running_statistics.init_state(specs.Array((obs,), jnp.float32))
  batch = types.Transition(observation=jnp.ones((4, obs)), action=jnp.zeros((4, act)),
                           reward=jnp.zeros(4), discount=jnp.ones(4),
                           next_observation=jnp.ones((4, obs)))

  def alpha_loss():
    loss = sac_losses.make_losses(sac_network=net, reward_scaling=1.0, discounting=0.99,
                                  action_size=act)[0]
    return float(loss(jnp.zeros(()), policy, normaliser, batch, jax.random.PRNGKey(1)))

  original = sac_losses.make_losses
  brax_own = alpha_loss()
  with brax_sac.target_entropy(-1.0):
    cleanrl = alpha_loss()
  assert sac_losses.make_losses is original
  assert cleanrl - brax_own == pytest.approx(0.5 * act, abs=1e-5)
  with brax_sac.target_entropy(brax_sac.BRAX_TARGET_ENTROPY):
    assert alpha_loss() == pytest.approx(brax_own, abs=1e-6)


@pytest.mark.slow  # ~80 s of brax's SAC compile: `make test-slow`, not `make test`.
def test_sac_driver_writes_the_summary_format(tmp_path):
  out = tmp_path / "sac"
  cmd = [sys.executable, os.path.join(ROOT, "experiments", "sac.py"), "--env=idp", "--seeds=1",
         "--total_steps=2000", "--eval_every=1000", "--episode_length=50", "--eval_episodes=2",
         "--hidden_sizes=8", "--min_replay_size=500", f"--out_dir={out}"]
  env = dict(os.environ, PYTHONPATH=ROOT)
  done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  summary = json.loads((out / "summary.json").read_text())
  lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
  # brax's schedule: step 0, then evenly over the 1500 steps after its prefill
  # of 500 (which it counts): 500 + 750, 500 + 1500.
  assert [l["step"] for l in lines] == [0, 1250, 2000]
  assert all(len(l["eval_returns"]) == 1 for l in lines)
  assert summary["final_returns"] == lines[-1]["eval_returns"]
  assert summary["final_return_iqm"] == pytest.approx(summary["final_returns"][0])
  lo, hi = summary["final_return_iqm_ci95"]
  assert lo <= summary["final_return_iqm"] <= hi
  # The authors' (CleanRL's) settings are the defaults, and what brax was given.
  config = summary["config"]
  assert (config["batch_size"], config["min_replay_size"], config["target_entropy_per_action_dim"],
          config["num_envs"], config["grad_updates_per_step"]) == (256, 500, -1.0, 1, 1)
  # Bad input: one line naming the flag, before anything compiles.
  bad = subprocess.run(cmd[:2] + ["--batch_size=0"], capture_output=True, text=True, env=env)
  assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
      "error: batch_size=0")


def _fake_run(folder, steps, per_seed, eval_key):
  os.makedirs(folder)
  with open(os.path.join(folder, "metrics.jsonl"), "w") as f:
    for s, r in zip(steps, per_seed):
      f.write(json.dumps({"step": s, eval_key: r}) + "\n")
  final = per_seed[-1]
  with open(os.path.join(folder, "summary.json"), "w") as f:
    json.dump(dict(total_steps=steps[-1], final_returns=final, final_return_iqm=float(np.mean(final)),
                   final_return_iqm_ci95=[min(final), max(final)]), f)


def test_plot_overlays_folders_and_tabulates(tmp_path, capsys):
  from experiments import plot
  plot.define_flags()
  a, b = str(tmp_path / "ours"), str(tmp_path / "sac")
  _fake_run(a, [1000, 2000], [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0]], "eval_returns")
  _fake_run(b, [0, 1000, 2000], [[0.0, 1.0], [2.0, None], [4.0, 6.0]], "mean_return")
  steps, values, kind = plot.curve(*plot.load_run(a))
  assert kind == "eval" and steps.tolist() == [1000, 2000] and values.shape == (3, 2)
  steps, values, kind = plot.curve(*plot.load_run(b))
  assert kind == "train" and np.isnan(values[1, 1])
  png, table = str(tmp_path / "fig.png"), str(tmp_path / "fig.md")
  # A run stopped early (by a signal or a time budget): no final_returns; its
  # row is its last logged evaluation, said so.
  c = str(tmp_path / "stopped")
  _fake_run(c, [1000, 2000], [[5.0, 6.0, 7.0, 8.0], [40.0, 10.0, 30.0, 20.0]], "eval_returns")
  with open(os.path.join(c, "summary.json"), "w") as f:
    json.dump(dict(total_steps=5000, finished=False), f)
  argv = plot.FLAGS(["plot.py", a, b, c, "--labels=ours,SAC,stopped", "--dashed=SAC",
                     f"--out={png}"])
  try:
    plot.main(argv)
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    md = open(table).read().splitlines()
    assert md[2].startswith("| ours | 3 | 2000 | 20 | 10 to 30 |")
    assert md[3].startswith("| SAC | 2 | 2000 | 5 |")
    assert md[4].startswith("| stopped | 4 | 2000 (stopped; last evaluation) | 25 |")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
      plot.main(plot.FLAGS(["plot.py", a, b, "--labels=one"]))
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("error: labels='one' is invalid")
  finally:
    plot.FLAGS.unparse_flags()


# --- The authors' DDPG baseline (CleanRL's): ReLU, a random warm-up, a delayed actor ---

def test_relu_reaches_the_q_network_the_actor_and_every_member():
  """activation='relu' builds every network of the run with ReLU hidden
  layers (numpy forward passes agree); SiLU's would not.

  Planted bug seen to fail it: Config.activation not passed to the networks."""
  from smpc_jax.train import parts
  config = TINY.replace(activation="relu", control="actor", hidden_sizes=(16, 16),
                        standardise_model=False)
  p = parts(config)
  obs, act = p.environment.obs_size, p.environment.action_size
  k_q, k_a, k_e = jax.random.split(jax.random.PRNGKey(0), 3)
  s = np.random.default_rng(1).standard_normal((9, obs)).astype(np.float32)
  a = np.random.default_rng(2).uniform(-1, 1, (9, act)).astype(np.float32)
  sa = np.concatenate([s, a], -1)
  q_params, a_params, e_params = p.q.init(k_q), p.actor.init(k_a), p.ensemble.init(k_e)
  member = jax.tree.map(lambda x: x[1], e_params)
  unit = networks.unit_scales(obs)
  cases = [(p.q.apply(q_params, s, a), q_params, sa, lambda x: x[..., 0]),
           (p.actor.apply(a_params, s), a_params, s, np.tanh),
           (p.ensemble.delta(member, unit, s, a), member, sa, lambda x: x)]
  for got, params, x, out in cases:
    np.testing.assert_allclose(got, _mlp(params, x, out, "relu"), rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, _mlp(params, x, out, "silu"), rtol=1e-4, atol=1e-5)


def test_q_activations_set_the_critics_layers_alone():
  """q_activations='silu,tanh' (the authors' Fig. 3 critic): the Q-network's
  hidden layers are SiLU then tanh; the ensemble keeps `activation` (SiLU).

  Planted bug seen to fail it: q_activations ignored."""
  from smpc_jax.train import parts
  config = TINY.replace(hidden_sizes=(16, 16), q_activations="silu,tanh")
  p = parts(config)
  obs, act = p.environment.obs_size, p.environment.action_size
  s = np.random.default_rng(1).standard_normal((9, obs)).astype(np.float32)
  a = np.random.default_rng(2).uniform(-1, 1, (9, act)).astype(np.float32)
  params = p.q.init(jax.random.PRNGKey(0))
  x = np.concatenate([s, a], -1).astype(np.float64)
  layers = params["params"]
  for i, f in enumerate((lambda v: v / (1 + np.exp(-v)), np.tanh)):
    x = f(x @ np.asarray(layers[f"Dense_{i}"]["kernel"]) + np.asarray(layers[f"Dense_{i}"]["bias"]))
  want = (x @ np.asarray(layers["Dense_2"]["kernel"]) + np.asarray(layers["Dense_2"]["bias"]))[:, 0]
  np.testing.assert_allclose(p.q.apply(params, s, a), want, rtol=1e-4, atol=1e-5)
  member = jax.tree.map(lambda v: v[0], p.ensemble.init(jax.random.PRNGKey(1)))
  unit = networks.unit_scales(obs)
  np.testing.assert_allclose(
      p.ensemble.delta(member, unit, s, a),
      _mlp(member, np.concatenate([s, a], -1), lambda v: v, "silu"), rtol=1e-4, atol=1e-5)


WARMUP = 30
DDPG = TINY.replace(control="actor", targets="actor", warmup_steps=WARMUP, actor_update_period=2)


@pytest.fixture(scope="module")
def ddpg_steps():
  """[state before step t for t = 0..WARMUP+4] of a DDPG run with a warm-up
  and a delayed actor, stepped one env step at a time."""
  step = jax.jit(sj.train_step)
  states = [jax.jit(sj.init, static_argnums=0)(DDPG, jax.random.PRNGKey(0))]
  for k in jax.random.split(jax.random.PRNGKey(1), WARMUP + 4):
    states.append(step(states[-1], k)[0])
  return states


def _same(a, b):
  return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_warmup_acts_uniformly_and_learns_nothing_then_learns(ddpg_steps):
  """warmup_steps=W: the first W actions are uniform on the box (not the
  actor's, which lie near mu(s) with std 0.1), and no network, target or
  optimiser state changes; the step after them updates the Q-network.

  Planted bugs seen to fail it: the random action ignored; the updates not held."""
  states = ddpg_steps
  learned = lambda s: (s.q_params, s.q_target, s.q_opt, s.actor_params, s.actor_target,
                       s.actor_opt)
  assert _same(learned(states[0]), learned(states[WARMUP]))
  assert not _same(states[WARMUP].q_params, states[WARMUP + 1].q_params)
  actor = actor_lib.make_actor(states[0].env_state.obs.shape[-1], 1, TINY.hidden_sizes, -1, 1)
  rows = replay.get(states[-1].buffer, np.arange(WARMUP + 4))
  mu = np.asarray(actor.apply(states[0].actor_params, rows.obs))  # the actor never moved by W
  gap = np.abs(np.asarray(rows.action) - mu)[:, 0]
  assert np.std(np.asarray(rows.action)[:WARMUP]) > 0.35  # U(-1, 1): 0.58
  assert np.mean(gap[:WARMUP]) > 0.3
  assert np.max(gap[WARMUP]) < 0.5  # the first step after: mu(s) + N(0, 0.1^2)


def test_delayed_actor_steps_every_second_env_step(ddpg_steps):
  """actor_update_period=2: after the warm-up the Q-network moves every step,
  the actor only on every second one.

  Planted bug seen to fail it: the period ignored (the actor moves every step)."""
  states = ddpg_steps
  moved = [not _same(states[t].actor_params, states[t + 1].actor_params)
           for t in range(WARMUP, WARMUP + 4)]
  q_moved = [not _same(states[t].q_params, states[t + 1].q_params)
             for t in range(WARMUP, WARMUP + 4)]
  assert q_moved == [True] * 4
  assert moved == [(t + 1) % 2 == 0 for t in range(WARMUP, WARMUP + 4)], moved

