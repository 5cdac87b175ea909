"""How `train_step` wires the planner, losses, buffer, ensemble and envs
together (Algorithm 2), and the planner pieces it relies on (Algorithm 1).

Each test names the plausible mistakes it guards. Those marked "seen" were
planted in the library one at a time, the test seen to fail, and the code
restored; the others are aimed at but were not yet planted.

The step runs on states built by hand from one `init` (tiny networks, a
16-row buffer), with inputs whose right outputs can be computed without the
step: a target Q that ignores the action and a zero warm start (with H = 0 the
target value is then that Q at s', exactly); rows whose plans are far apart
(a refined plan shows which row it came from); a warm start far outside the
action box (the applied action is then the box's edge, so the env's own
rollout gives the true s'). Nothing in the library is patched.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import smpc_jax as sj
from tests.helpers import assert_trees_equal
from smpc_jax import losses, networks, planner, replay
from smpc_jax.planner import Model
from smpc_jax.train import parts

# H = 0 and a batch of one: the target value is the target Q at s', and the
# one sampled row shows itself by its refined plan.
# Any env with a termination serves; brax's double pendulum compiles fastest
# (Euler, 2 frames per step). idp: obs [x, sin th1, sin th2, cos th1, cos th2, ...].
ENV = "idp_brax"
H0 = sj.preset(ENV, total_steps=16, episode_length=5, horizon=0, num_samples=8,
               target_samples=4, ensemble_size=2, hidden_sizes=(8,), batch_size=1,
               branching="per_step")
H2 = H0.replace(horizon=2, batch_size=4)  # plans of 3 actions, batches of 4
C = H0.capacity  # 16 buffer rows
GAMMA = 0.5  # the run's discount leaf; the config says 0.99
EDGE = 100.0  # a warm start this far outside the box: the applied action is the box's edge
ROLLOUT = 60  # env steps of the reference rollouts


@pytest.fixture(scope="module")
def env():
  return parts(H0).environment


@pytest.fixture(scope="module")
def step():
  return jax.jit(sj.train_step)


@pytest.fixture(scope="module")
def h0():
  return jax.jit(sj.init, static_argnums=0)(H0, jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def h2(h0, env):
  """`h0` with the H2 config: plans of H + 1 = 3 actions (no second init)."""
  act = env.action_size
  data = h0.buffer.data._replace(plan=jnp.zeros((C, H2.horizon + 1, act)))
  return h0.replace(config=H2, plan=jnp.zeros((H2.horizon + 1, act)),
                    buffer=h0.buffer.replace(data=data))


@pytest.fixture(scope="module")
def rollout(env):
  """(key, action) -> (reset state, the ROLLOUT states that follow it), the
  env's own steps at a constant action, run on to the end after termination."""
  def run(key, action):
    s0 = env.env.reset(key)

    def body(s, _):
      s = env.env.step(s, jnp.full((env.action_size,), action))
      return s, s

    return s0, jax.lax.scan(body, s0, None, length=ROLLOUT)[1]

  return jax.jit(run)


@pytest.fixture(scope="module")
def edge_episode(rollout, env):
  """An episode pushed at the box's top edge: states[i] is the state after i
  steps, traj[i] the env's step from states[i]; the step from states[T]
  terminates, the steps before it do not."""
  s0, traj = rollout(jax.random.PRNGKey(42), env.action_high)
  done = np.asarray(traj.done) > 0
  assert done.any()
  t = int(np.argmax(done))
  assert t >= 3, t
  states = [s0] + [jax.tree.map(lambda x, i=i: x[i], traj) for i in range(t)]
  return states, traj, t


def _at(tree, i):
  return jax.tree.map(lambda x: x[i], tree)


def _q_ignoring_action(q_params, obs_size):
  """The same network with zero weights on the action inputs: Q(s, a) = f(s)."""
  p = q_params["params"]
  first = dict(p["Dense_0"], kernel=p["Dense_0"]["kernel"].at[obs_size:].set(0.0))
  return {"params": dict(p, Dense_0=first)}


def _rows(key, env, h1, *, reward, terminated, plans=None, next_obs=None):
  """C hand-made transitions; obs and actions random."""
  k1, k2, k3 = jax.random.split(key, 3)
  if next_obs is None:
    next_obs = jax.random.normal(k3, (C, env.obs_size))
  if plans is None:
    plans = jnp.zeros((C, h1, env.action_size))
  return replay.Transition(
      obs=jax.random.normal(k1, (C, env.obs_size)),
      action=jax.random.uniform(k2, (C, env.action_size), minval=-1.0, maxval=1.0),
      reward=jnp.broadcast_to(jnp.asarray(reward, jnp.float32), (C,)),
      next_obs=jnp.broadcast_to(next_obs, (C, env.obs_size)),
      terminated=jnp.broadcast_to(jnp.asarray(terminated, jnp.float32), (C,)),
      plan=plans)


def _first_edge_step_rows(edge_episode, env):
  """(s, s', the edge action, C rows all equal to that first step of the edge
  episode, with plans of H2's length): every batch a step draws is that row."""
  states, traj, _ = edge_episode
  s, s_next = states[0], _at(traj, 0)
  edge = jnp.full((env.action_size,), env.action_high)
  rows = replay.Transition(
      obs=jnp.broadcast_to(s.obs, (C, env.obs_size)), action=jnp.broadcast_to(edge, (C, env.action_size)),
      reward=jnp.full((C,), s_next.reward), next_obs=jnp.broadcast_to(s_next.obs, (C, env.obs_size)),
      terminated=jnp.zeros((C,)), plan=jnp.zeros((C, H2.horizon + 1, env.action_size)))
  return s, s_next, edge, rows


CURSOR = 5  # the row the step's own transition overwrites in a full buffer


def _full(state, rows):
  return state.replace(buffer=replay.ReplayState(
      rows, jnp.asarray(CURSOR, jnp.int32), jnp.asarray(C, jnp.int32)))


def _empty(state):
  """The step's own transition will be the buffer's only row (row 0)."""
  return state.replace(buffer=state.buffer.replace(cursor=jnp.zeros((), jnp.int32),
                                                   size=jnp.zeros((), jnp.int32)))


def _keys(seed, n):
  return list(jax.random.split(jax.random.PRNGKey(seed), n))


# --- 1. The Bellman target as the step assembles it ---------------------------

def _bellman_state(h0, env, rows):
  """h0 with `rows`, a target Q that ignores the action (and differs from
  the online Q) and the discount leaf GAMMA."""
  q_target = _q_ignoring_action(parts(H0).q.init(jax.random.PRNGKey(5)), env.obs_size)
  return _full(h0, rows).replace(
      q_target=q_target, hparams=h0.hparams.replace(gamma=jnp.float32(GAMMA)))


def test_bellman_target_uses_stored_row_target_net_and_run_gamma(step, h0, env):
  """H = 0, a batch of one, zero warm starts and a target Q that ignores the
  action: V_MPPI(s') is Q_target(s') exactly, so y = r + (1 - terminated) *
  GAMMA * Q_target(s') of the sampled row, which its refined plan reveals.
  Rows alternate terminated 0 and 1, and have distinct rewards.

  Planted bugs seen to fail it: targets planned at `batch.obs` (s) instead
  of `batch.next_obs`; `c.gamma` instead of the leaf `h.gamma`. Also aimed
  at (not planted yet): y from `next_env.reward` instead of the row's;
  `state.q_params` instead of `state.q_target`; `(1 - terminated)` dropped."""
  rows = _rows(jax.random.PRNGKey(6), env, 1, reward=1.0 + 1.5 * jnp.arange(C),
               terminated=jnp.tile(jnp.array([0.0, 1.0]), C // 2))
  state = _bellman_state(h0, env, rows)
  q = parts(H0).q
  seen = set()
  for key in _keys(10, 8):
    new, m = step(state, key)
    changed = np.flatnonzero(np.any(
        np.asarray(new.buffer.data.plan != state.buffer.data.plan), axis=(1, 2)))
    assert changed.size == 1, changed  # the batch of one, by its refined plan
    row = replay.get(new.buffer, int(changed[0]))  # as stored (the step's own at CURSOR)
    v = q.apply(state.q_target, row.next_obs, jnp.zeros(env.action_size))
    y = row.reward + (1.0 - row.terminated) * GAMMA * v
    np.testing.assert_allclose(m["target_mean"], y, rtol=1e-5, atol=1e-5)
    seen.add(float(row.terminated))
  assert seen == {0.0, 1.0}  # both kinds of row were checked


def test_sum_normaliser_reaches_the_targets(step, h0, env):
  """value_normaliser='sum': every sample of the H = 0 target has the same
  cost (a Q that ignores the action, a zero warm start), so V(s') is
  Q_target(s') + lambda log N_target exactly and y gains GAMMA lambda log N.

  Planted bug seen to fail it: Config.value_normaliser not passed to the planner."""
  rows = _rows(jax.random.PRNGKey(6), env, 1, reward=1.0 + 1.5 * jnp.arange(C),
               terminated=0.0)
  state = _bellman_state(h0, env, rows).replace(config=H0.replace(value_normaliser="sum"))
  q = parts(H0).q
  new, m = step(state, jax.random.PRNGKey(10))
  changed = np.flatnonzero(np.any(
      np.asarray(new.buffer.data.plan != state.buffer.data.plan), axis=(1, 2)))
  row = replay.get(new.buffer, int(changed[0]))
  v = q.apply(state.q_target, row.next_obs, jnp.zeros(env.action_size))
  bonus = float(state.hparams.temperature) * math.log(H0.target_samples)
  np.testing.assert_allclose(m["target_mean"], row.reward + GAMMA * (v + bonus), rtol=1e-5,
                             atol=1e-5)


def test_target_planner_starts_from_zeros_without_warm_start(step, h0, env):
  """warm_start=False: the stored plans (here 1..16, far from zero) are not
  used and not rewritten. Every stored row has the same (r, s', terminated=0),
  so y is that row's r + GAMMA * Q_target(s') exactly, or the step's own
  transition's y when that row is drawn.

  Planted bug seen to fail it: the target planner warm-started from
  `batch.plan` regardless of `warm_start`. Also aimed at (not planted yet):
  refined plans written back regardless of `warm_start`."""
  s1 = jax.random.normal(jax.random.PRNGKey(7), (env.obs_size,))
  plans = 1.0 + jnp.arange(C, dtype=jnp.float32)[:, None, None] * jnp.ones((1, 1, env.action_size))
  rows = _rows(jax.random.PRNGKey(8), env, 1, reward=2.0, terminated=0.0, plans=plans,
               next_obs=s1)
  state = _bellman_state(h0, env, rows).replace(config=H0.replace(warm_start=False))
  q = parts(H0).q
  f = lambda s: q.apply(state.q_target, s, jnp.zeros(env.action_size))
  y_stored = 2.0 + GAMMA * f(s1)
  stored_drawn = 0
  for key in _keys(11, 6):
    new, m = step(state, key)
    own = replay.get(new.buffer, CURSOR)
    y_own = own.reward + (1.0 - own.terminated) * GAMMA * f(own.next_obs)
    others = np.arange(C) != CURSOR
    np.testing.assert_array_equal(new.buffer.data.plan[others], state.buffer.data.plan[others])
    hit = [np.isclose(m["target_mean"], y, rtol=1e-5, atol=1e-5) for y in (y_stored, y_own)]
    assert any(hit), (m["target_mean"], y_stored, y_own)
    stored_drawn += int(hit[0])
  assert stored_drawn >= 1  # a row with a nonzero stored plan was drawn


# --- 3. The warm-start loop (Algorithm 2, lines 6-14) --------------------------

def test_warm_start_loop_stores_the_shifted_plan_and_refines_it_in_place(step, h2, env):
  """Row i's stored plan is 2 (i - 7.5) everywhere (rows 2 apart); with
  noise_var 0.01 a refinement moves a plan by well under 0.5. After a step:
  the carried plan is the online plan for s' shifted (last action 0, the
  others within 0.5 of the warm start's later actions, and moved); the step's
  own row holds that plan (exactly, when not drawn); every other row is either
  unchanged or refined from its own stored plan; at least one row changed.

  Planted bugs seen to fail it: the old warm start shifted
  (`planner.shift(state.plan)`); refined plans written to `jnp.arange(B)`
  instead of the sampled rows. Also aimed at (not planted yet): the plan not
  shifted; the target planner warm-started from zeros or from `state.plan`;
  `batch.plan` written back instead of the refined plans; no write-back."""
  act = env.action_size
  h1 = H2.horizon + 1
  plans = 2.0 * (jnp.arange(C, dtype=jnp.float32) - 7.5)[:, None, None] * jnp.ones((1, h1, act))
  rows = _rows(jax.random.PRNGKey(9), env, h1, reward=1.0, terminated=0.0, plans=plans)
  warm = jnp.array([-0.8, 0.8, -0.2])[:, None] * jnp.ones((1, act))
  state = _full(h2, rows).replace(
      plan=warm, hparams=h2.hparams.replace(noise_var=jnp.float32(0.01)))
  own_exact = []
  for key in _keys(12, 6):
    new, _ = step(state, key)
    carried = np.asarray(new.plan)
    np.testing.assert_array_equal(carried[-1], 0.0)
    moved = np.abs(carried[:-1] - np.asarray(warm[1:]))
    assert 0.0 < moved.max() < 0.5, moved
    before = np.asarray(state.buffer.data.plan).copy()
    before[CURSOR] = carried  # the step's own row, as stored
    diff = np.abs(np.asarray(new.buffer.data.plan) - before).max(axis=(1, 2))  # [C]
    assert np.all(diff < 0.5), diff
    assert 1 <= np.sum(diff > 0) <= H2.batch_size, diff
    own_exact.append(diff[CURSOR] == 0.0)
  assert any(own_exact)


def test_refined_plan_goes_back_to_a_row_drawn_several_times(step, h2, env):
  """The step's own transition is the buffer's only row, so the batch of 4
  draws it 4 times. The row must end up with one refined plan (within 0.5 of
  its stored plan, about [0.8, 0.8, 0]), not a sum of them; no other row is
  written.

  Planted bug seen to fail it: `write_plans` as `.at[idx].add(plans)`, which
  adds up duplicated indices."""
  warm = jnp.full((H2.horizon + 1, env.action_size), 0.8)
  state = _empty(h2).replace(plan=warm, hparams=h2.hparams.replace(noise_var=jnp.float32(0.01)))
  for key in _keys(13, 3):
    new, _ = step(state, key)
    row0 = np.asarray(new.buffer.data.plan[0])
    diff = np.abs(row0 - np.asarray(new.plan)).max()
    assert 0.0 < diff < 0.5, (row0, new.plan)
    np.testing.assert_array_equal(new.buffer.data.plan[1:], 0.0)


# --- 4. Branching over time (Algorithm 1, line 6) -----------------------------

def _digit_model(branching, e):
  """One-dimensional state; member m adds m; the reward is the change, so
  with gamma = 1/E a return sum_t m_t E^-t spells out the members."""
  ens = networks.make_ensemble(1, 1, (4,), e, branching)
  params = jax.tree.map(jnp.zeros_like, ens.init(jax.random.PRNGKey(0)))
  params["params"]["Dense_1"]["bias"] = jnp.arange(e, dtype=jnp.float32)[:, None]
  unit = networks.unit_scales(1)
  return Model(lambda k, s, a: ens.predict(params, unit, k, s, a),
               lambda s, a, s2: s2[0] - s[0], lambda s, a, s2: jnp.zeros(()),
               lambda s, a: jnp.zeros(s.shape[0]))


@pytest.mark.parametrize("branching", ["per_sample", "per_step"])
def test_each_step_draws_a_fresh_uniform_member(branching):
  """E = 4 members that differ, N = 8 samples, H = 4 steps, 500 calls. Every
  sample's member at every step is uniform on the members, and the member at
  step t + 1 equals that at step t a quarter of the time (independent), not
  always. per_step: at each step all samples share one member. per_sample:
  each step sends N / E samples to each member.

  Planted bug seen to fail it: `rollout_returns` passing the same key to
  every step (no `jax.random.split(key, horizon)`)."""
  e, n, h, calls = 4, 8, 4, 500
  model = _digit_model(branching, e)
  returns = jax.jit(jax.vmap(lambda k: planner.rollout_returns(
      k, model, jnp.zeros(1), jnp.zeros((n, h + 1, 1)), 1.0 / e)))(
          jax.random.split(jax.random.PRNGKey(1), calls))  # [calls, N]
  x = np.asarray(returns, np.float64)
  members = []
  for _ in range(h):  # exact: the digits are powers of 1/4
    m = np.floor(x)
    members.append(m)
    x = (x - m) * e
  members = np.stack(members, -1).astype(int)  # [calls, N, H]
  assert members.min() >= 0 and members.max() < e
  if branching == "per_step":
    np.testing.assert_array_equal(members, members[:, :1, :].repeat(n, 1))
  else:
    for c in range(calls):
      for t in range(h):
        np.testing.assert_array_equal(np.bincount(members[c, :, t], minlength=e), n // e)
  for t in range(h):  # 500 calls: each share 1/4 within 0.08 (about 4 sigma)
    share = np.bincount(members[:, :, t].ravel(), minlength=e) / (calls * n)
    np.testing.assert_allclose(share, 1.0 / e, atol=0.08)
  same = np.mean(members[:, :, 1:] == members[:, :, :-1])
  assert abs(same - 1.0 / e) < 0.06, same


def test_per_step_branching_shares_members_across_the_target_batch(step, h2, env):
  """One stored row, drawn 4 times. Member 0 leaves the state as it is,
  member 1 drops both poles (cos -> cos - 2): rewards and termination then
  differ by tens between member sequences. The dynamics, the rewards and the
  target Q ignore the action, so with one member sequence shared by the whole
  batch ("per_step", via model_key) the 4 targets agree up to the small prior
  term: Var(y) = q_loss - (q_mean - target_mean)^2 (one row, one Q) is near 0.
  Across steps the shared sequence changes, so target_mean does too.

  Planted bug seen to fail it: `model_key=None` for the targets (each target
  state draws its own members)."""
  dyn = jax.tree.map(jnp.zeros_like, h2.dyn_params)
  drop = jnp.zeros(env.obs_size).at[3:5].set(-2.0)  # idp obs: cos th1, cos th2
  dyn["params"]["Dense_1"]["bias"] = jnp.stack([jnp.zeros(env.obs_size), drop])
  q_target = _q_ignoring_action(h2.q_target, env.obs_size)
  state = _empty(h2).replace(dyn_params=dyn, scales=networks.unit_scales(env.obs_size),
                             q_target=q_target)
  means = []
  for key in _keys(14, 8):
    _, m = step(state, key)
    var_y = float(m["q_loss"]) - (float(m["q_mean"]) - float(m["target_mean"])) ** 2
    assert var_y < 0.1, var_y
    means.append(float(m["target_mean"]))
  assert np.ptp(means) > 5.0, means  # the members differ, and the draws do


# --- 5. The uniform prior at Hopper's sizes -------------------------------------

UH, UACT = 4, 3  # horizon and action dimensions of Hopper


def test_uniform_prior_zero_weight_outside_the_box_in_every_dim_and_step():
  """For each step t and dimension d: the warm start is 0.9 at (t, d), zero
  elsewhere; the reward pays 10 * a[t, d], so samples past the edge would win
  if they counted. The refined plan is a weighted mean of the samples; with
  the outside ones at weight zero it stays in the box, in every coordinate.

  Planted bugs seen to fail it: the box check on the first action dimension
  only; on the first step only."""
  def refine(t, d):
    model = Model(
        lambda k, s, a: s + 1.0,  # s counts the steps
        lambda s, a, s2: jnp.where(s[0] == t, 10.0 * a[d], 0.0),
        lambda s, a, s2: jnp.zeros(()),
        lambda s, a: jnp.where(s[:, 0] == UH, 10.0 * a[:, d], 0.0))
    warm = jnp.zeros((UH + 1, UACT)).at[t, d].set(0.9)
    return planner.mppi(jax.random.PRNGKey(0), jnp.zeros(1), warm, model, num_samples=256,
                        temperature=0.01, noise_var=0.05, gamma=0.9, prior="uniform",
                        action_low=-1.0, action_high=1.0).plan

  ts, ds = np.meshgrid(np.arange(UH + 1), np.arange(UACT), indexing="ij")
  plans = np.asarray(jax.jit(jax.vmap(refine))(ts.ravel(), ds.ravel()))  # [15, H+1, act]
  assert np.all(np.abs(plans) <= 1.0), np.abs(plans).max(axis=(1, 2))
  # The plan stays at the edge the reward pulls it to (0.84 to 1.0 here).
  assert np.all(plans[np.arange(ts.size), ts.ravel(), ds.ravel()] > 0.75)


def _zero_model():
  return Model(lambda k, s, a: s, lambda s, a, s2: jnp.zeros(()),
               lambda s, a, s2: jnp.zeros(()), lambda s, a: jnp.zeros(s.shape[0]))


def test_uniform_prior_falls_back_when_every_sample_is_outside():
  """Warm start 5 in a box of [-1, 1], noise 0.05: no sample is inside. All
  count then, and the plan, action and value stay finite.

  Planted bug seen to fail it: the fallback line
  (`valid = valid | ~jnp.any(valid)`) removed: every cost inf, the plan NaN."""
  warm = jnp.full((UH + 1, UACT), 5.0)
  res = jax.jit(lambda k: planner.mppi(
      k, jnp.zeros(1), warm, _zero_model(), num_samples=64, temperature=0.1, noise_var=0.05,
      gamma=0.9, prior="uniform", action_low=-1.0, action_high=1.0))(jax.random.PRNGKey(0))
  assert np.all(np.isfinite(res.plan)) and np.isfinite(res.value)
  assert not np.array_equal(res.plan, warm)
  np.testing.assert_array_equal(res.action, 1.0)


def _uniform_zero_model_value(lam, var, g, *, discounted=True, per_dim=True):
  """V of the zero model under the uniform prior on [-1, 1]^act, plan 0:
  lam * sum_t [act log I_t - g^t act (log N + log 2)], with
  I_t = int_{-1}^{1} N(e; 0, var) exp(g^t e^2 / (2 var)) de (quadrature), the
  expected importance weight of one coordinate at step t. The flags give the
  value of a constant without its discount or its action dimension."""
  e = np.linspace(-1.0, 1.0, 200_001)
  n1 = 1.0 / math.sqrt(2 * math.pi * var)
  log_const = math.log(n1) + math.log(2.0)
  total = 0.0
  for t in range(UH + 1):
    i_t = np.trapezoid(n1 * np.exp(-(1 - g**t) * e**2 / (2 * var)), e)
    total += UACT * math.log(i_t) - (g**t if discounted else 1.0) * (UACT if per_dim else 1) * log_const
  return lam * total


def test_uniform_prior_value_constant_is_discounted_and_per_dimension():
  """Zero model, plan 0, H = 4, act = 3: the value against its quadrature
  (-0.67 here); a constant without the discount (-3.5) or without the action
  dimension (+3.2) misses by far more than the tolerance.

  Planted bugs seen to fail it: `constant` summed with weight 1 per step
  instead of gamma^t; `log_normaliser` and `log_volume` without the factor act."""
  lam, var, g = 1.0, 0.2, 0.8
  right = _uniform_zero_model_value(lam, var, g)
  for wrong in (_uniform_zero_model_value(lam, var, g, discounted=False),
                _uniform_zero_model_value(lam, var, g, per_dim=False)):
    assert abs(wrong - right) > 30 * 0.03
  values = jax.jit(jax.vmap(lambda k: planner.mppi(
      k, jnp.zeros(1), jnp.zeros((UH + 1, UACT)), _zero_model(), num_samples=65536,
      temperature=lam, noise_var=var, gamma=g, prior="uniform", action_low=-1.0,
      action_high=1.0).value))(jax.random.split(jax.random.PRNGKey(0), 8))
  np.testing.assert_allclose(np.mean(values), right, atol=0.03)


# --- 2. Dynamics learning ------------------------------------------------------

def test_every_member_learns_from_its_own_batch(step, h2, env):
  """All members start identical; the buffer's rows all differ. After one
  step every member has moved in every leaf, and the members differ: each
  was fitted on its own draw of rows.

  Planted bug seen to fail it: one batch of rows for all members (indices
  of shape [B] broadcast to [E, B]). Also aimed at (not planted yet): the
  loss of member 0 only."""
  h1 = H2.horizon + 1
  rows = _rows(jax.random.PRNGKey(15), env, h1, reward=1.0, terminated=0.0)
  same = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), h2.dyn_params)
  state = _full(h2, rows).replace(dyn_params=same, scales=networks.unit_scales(env.obs_size))
  new, _ = step(state, jax.random.PRNGKey(16))
  for old_leaf, new_leaf in zip(jax.tree.leaves(state.dyn_params), jax.tree.leaves(new.dyn_params)):
    for m in range(H2.ensemble_size):
      assert np.any(np.asarray(new_leaf[m] != old_leaf[m]))
  assert any(np.any(np.asarray(x[0] != x[1])) for x in jax.tree.leaves(new.dyn_params))


def test_dynamics_fit_uses_this_steps_statistics_and_lowers_the_loss(step, h2, env, edge_episode):
  """Every row is the step's own transition (s, edge action, s'), so every
  member's batch is that one row repeated. The reported loss is the ensemble
  loss with the statistics updated by (s, s') in this step, not the old ones
  (set far off here); and one step at learning rate 0.01 lowers it.

  Planted bug seen to fail it: `state.scales` (last step's statistics) in the
  dynamics loss. Also aimed at (not planted yet): the update applied with the
  wrong sign."""
  s, s_next, edge, rows = _first_edge_step_rows(edge_episode, env)
  h1 = H2.horizon + 1
  old = networks.RunningStats(jnp.full((), 2.0), jnp.full((env.obs_size,), 0.3),
                              jnp.full((env.obs_size,), 0.5))
  old_scales = networks.Scales(old, old)
  dyn_opt = h2.dyn_opt._replace(hyperparams={**h2.dyn_opt.hyperparams,
                                             "learning_rate": jnp.float32(0.01)})
  state = _full(h2, rows).replace(env_state=s, plan=jnp.full((h1, env.action_size), EDGE),
                                  scales=old_scales, dyn_opt=dyn_opt)
  new, m = step(state, jax.random.PRNGKey(17))
  stored = replay.get(new.buffer, CURSOR)
  np.testing.assert_array_equal(stored.action, edge)
  fresh = networks.scales_update(old_scales, s.obs, stored.next_obs)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), new.scales, fresh)
  e = H2.ensemble_size
  batch = lambda x: jnp.broadcast_to(x, (e, 1) + x.shape)
  loss = lambda params, scales: float(losses.dynamics_loss(
      parts(H2).ensemble.delta, params, scales, batch(s.obs), batch(edge), batch(s_next.obs))[0]) / e
  before_fresh, before_old = loss(state.dyn_params, fresh), loss(state.dyn_params, old_scales)
  assert abs(before_fresh - before_old) > 0.1 * before_fresh  # the statistics matter here
  np.testing.assert_allclose(m["dyn_loss"], before_fresh, rtol=1e-3)
  assert loss(new.dyn_params, fresh) < 0.999 * before_fresh


# --- 6. Episode boundaries in the step -----------------------------------------

@pytest.mark.parametrize("case", ["neither", "truncation", "termination"])
def test_episode_boundary(case, step, h2, env, edge_episode):
  """The step from a state of the edge episode, acting at the box's edge:
  "neither" (two steps before the fall, not at the time limit) carries on;
  "truncation" (same state, last step of the episode) and "termination" (the
  state whose step falls) reset the env, the plan, the step count and the
  return. The stored row holds the env's true s' and reward, terminated = 0
  unless the env terminated.

  Planted bug seen to fail it ("truncation"): `done` stored as `terminated`.
  Also aimed at (not planted yet): s' stored after the reset; the plan
  carried over a reset; the env not reset; truncation one step late
  (`episode_step > episode_length`)."""
  states, traj, t = edge_episode
  i = t if case == "termination" else t - 2
  episode_step = H2.episode_length - 1 if case == "truncation" else 1
  h1 = H2.horizon + 1
  state = _empty(h2).replace(env_state=states[i], episode_step=jnp.int32(episode_step),
                             episode_return=jnp.float32(3.0),
                             plan=jnp.full((h1, env.action_size), EDGE))
  new, m = step(state, jax.random.PRNGKey(18))
  true_next = _at(traj, i)
  row = replay.get(new.buffer, 0)
  np.testing.assert_array_equal(row.obs, states[i].obs)
  np.testing.assert_array_equal(row.action, env.action_high)
  np.testing.assert_allclose(row.next_obs, true_next.obs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(row.reward, true_next.reward, rtol=1e-5, atol=1e-5)
  assert float(row.terminated) == (1.0 if case == "termination" else 0.0)
  np.testing.assert_allclose(m["episode_return"], 3.0 + true_next.reward, rtol=1e-5)
  if case == "neither":
    assert not bool(m["done"])
    np.testing.assert_allclose(new.env_state.obs, true_next.obs, rtol=1e-5, atol=1e-5)
    assert int(new.episode_step) == episode_step + 1
    assert float(new.episode_return) == pytest.approx(3.0 + float(true_next.reward), rel=1e-5)
    assert np.all(np.asarray(new.plan[:-1]) > EDGE / 2) and np.all(np.asarray(new.plan[-1]) == 0.0)
    return
  assert bool(m["done"])
  assert int(new.episode_step) == 0 and float(new.episode_return) == 0.0
  np.testing.assert_array_equal(new.plan, 0.0)
  # A fresh episode: near the reset state, far from where this one went.
  start = np.asarray(states[0].obs)
  to_new = np.linalg.norm(np.asarray(new.env_state.obs) - start)
  to_next = np.linalg.norm(np.asarray(true_next.obs) - start)
  assert to_new < 0.2 * to_next, (to_new, to_next)


# --- 7. Evaluation ----------------------------------------------------------------

def test_evaluation_returns_stop_at_termination(h2, env, rollout):
  """With noise_var 1e-14 the planner's actions are 0 to 1e-7, so an
  evaluation episode is the env's own rollout at action 0 from the same
  reset (evaluate's key layout: one key per episode, split into reset and
  steps). Its return sums the rewards up to and including the terminating
  step and none after (the env pays on: idp its penalties, brax's hopper its
  healthy reward); without termination, those of all `episode_length` steps.
  Both episodes fall within ROLLOUT steps (idp_brax: ~36); evaluated with
  episode_length ROLLOUT they terminate, with half the earliest fall they
  run full length.

  Planted bug seen to fail it: rewards summed after termination (`alive`
  ignored). Also aimed at (not planted yet): the terminating step's reward
  dropped (alive updated first); one step short (`episode_length - 1`)."""
  key = jax.random.PRNGKey(3)
  rewards, dones = [], []
  for k in jax.random.split(key, 2):
    k_reset, _ = jax.random.split(k)
    _, traj = rollout(k_reset, 0.0)
    rewards.append(np.asarray(traj.reward))
    dones.append(np.asarray(traj.done) > 0)
  assert all(d.any() for d in dones)
  short = max(1, min(int(np.argmax(d)) for d in dones) // 2)
  for length in (short, ROLLOUT):
    state = h2.replace(config=H2.replace(episode_length=length),
                       hparams=h2.hparams.replace(noise_var=jnp.float32(1e-14)))
    got = np.asarray(jax.jit(lambda s, k: sj.evaluate(s, k, 2))(state, key))
    expected = []
    for r, d in zip(rewards, dones):
      r, d = r[:length], d[:length]
      alive = np.concatenate([[True], ~np.logical_or.accumulate(d)[:-1]])
      expected.append(np.sum(np.where(alive, r, 0.0)))
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=0.05, err_msg=f"length {length}")


# --- 8. The authors' code's choices, as switches -----------------------------------

def test_shared_dynamics_batch_keeps_identical_members_identical(step, h2, env):
  """dynamics_batch='shared': members that start identical move, and stay
  identical, since all fit the same rows (the authors' code).

  Planted bug seen to fail it: the switch ignored (each member its own
  draw, which `test_every_member_learns_from_its_own_batch` tells apart)."""
  rows = _rows(jax.random.PRNGKey(15), env, H2.horizon + 1, reward=1.0, terminated=0.0)
  same = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), h2.dyn_params)
  state = _full(h2, rows).replace(config=H2.replace(dynamics_batch="shared"),
                                  dyn_params=same, scales=networks.unit_scales(env.obs_size))
  new, _ = step(state, jax.random.PRNGKey(16))
  for old_leaf, new_leaf in zip(jax.tree.leaves(same), jax.tree.leaves(new.dyn_params)):
    assert np.any(np.asarray(new_leaf[0] != old_leaf[0]))
    for m in range(1, H2.ensemble_size):
      np.testing.assert_array_equal(new_leaf[m], new_leaf[0])


def test_unstandardised_model_fits_and_predicts_raw_changes(step, h2, env, edge_episode):
  """standardise_model=False: the statistics are never updated, the ensemble
  sees raw s (no clipping at 10) and predicts s + f(s, a), and the step's loss
  is the members' mean squared error on raw s' - s. Every row is the same
  transition, so the loss is computable by hand from the MLP alone.

  Planted bug seen to fail it: inputs standardised regardless of the
  switch. Also aimed at (not planted yet): statistics still updated; the
  output rescaled."""
  config = H2.replace(standardise_model=False)
  ens, mlp = parts(config).ensemble, networks.MLP(config.hidden_sizes, env.obs_size)
  s, s_next, edge, rows = _first_edge_step_rows(edge_episode, env)
  h1 = config.horizon + 1
  unit = networks.unit_scales(env.obs_size)
  state = _full(h2, rows).replace(config=config, env_state=s, scales=unit,
                                  plan=jnp.full((h1, env.action_size), EDGE))
  new, m = step(state, jax.random.PRNGKey(17))
  jax.tree.map(np.testing.assert_array_equal, new.scales, unit)
  member = lambda e: jax.tree.map(lambda x: x[e], state.dyn_params)
  raw = lambda e, x, a: mlp.apply(member(e), jnp.concatenate([x, a], axis=-1))
  want = np.mean([np.mean((raw(e, s.obs, edge) - (s_next.obs - s.obs)) ** 2)
                  for e in range(config.ensemble_size)])
  np.testing.assert_allclose(m["dyn_loss"], want, rtol=1e-4)
  far = 30.0 * jax.random.normal(jax.random.PRNGKey(3), (5, env.obs_size))  # beyond any clip
  act = jnp.zeros((5, env.action_size))
  got = ens.predict(state.dyn_params, unit, jax.random.PRNGKey(4), far, act)
  options = [far + raw(e, far, act) for e in range(config.ensemble_size)]
  assert any(np.allclose(got, o, rtol=1e-5, atol=1e-4) for o in options)


def test_unmasked_planner_ignores_imagined_terminations(h2, env, edge_episode):
  """mask_terminations=False: the planner's termination is 0 even on the step
  that falls, where the env's (and the default planner's) is 1.

  Planted bug seen to fail it: the switch ignored. Also aimed at (not
  planted yet): the masking dropped by default."""
  states, traj, t = edge_episode
  s, a, s_next = states[t].obs, jnp.full((env.action_size,), env.action_high), _at(traj, t).obs
  assert float(env.termination_fn(s, a, s_next)) == 1.0
  for mask, want in ((True, 1.0), (False, 0.0)):
    model = sj.train.planner_model(H2.replace(mask_terminations=mask), h2.dyn_params,
                                   h2.scales, h2.q_params)
    assert float(model.termination(s, a, s_next)) == want, mask


def test_random_initial_plans_start_episodes_and_cold_targets(step, h2, env, edge_episode):
  """initial_plan='random': a plan an episode starts from is one draw of
  N(0, Sigma); so is a cold target's. Checked on (1) the draws' moments, (2)
  the plan after a terminating step (nonzero, and another key gives another),
  (3) the cold target planner's refined plans: with the weights made uniform
  (a huge temperature) a zero start leaves the mean of 4 noise draws (variance
  Sigma / 4), a random start adds its own draw (variance >= Sigma).

  Planted bugs seen to fail it, one at a time: the cold target started from
  zeros; the plan reset to zeros. Also aimed at (not planted yet): std and
  variance confused."""
  config = H2.replace(initial_plan="random", warm_start=False)
  var = 0.25
  hp = h2.hparams.replace(noise_var=jnp.float32(var), temperature=jnp.float32(1e6))
  draws = np.asarray(sj.train.initial_plan(config, hp, jax.random.PRNGKey(0), (20000,)))
  assert draws.shape == (20000, config.horizon + 1, env.action_size)
  assert abs(draws.mean()) < 0.01 and abs(draws.std() - 0.5) < 0.01
  np.testing.assert_array_equal(sj.train.initial_plan(H2, hp, jax.random.PRNGKey(0)), 0.0)

  states, _, t = edge_episode
  h1 = config.horizon + 1
  state = _empty(h2).replace(config=config, hparams=hp, env_state=states[t],
                             plan=jnp.full((h1, env.action_size), EDGE))
  plans = [np.asarray(step(state, k)[0].plan) for k in _keys(21, 2)]
  for p in plans:
    assert np.all(p != 0.0) and np.all(np.abs(p) < 5 * 0.5)
  assert np.all(plans[0] != plans[1])

  rows = _rows(jax.random.PRNGKey(22), env, h1, reward=0.0, terminated=0.0)
  batch = jax.tree.map(lambda x: x[:config.batch_size], rows)
  spread = {}
  for init in ("zeros", "random"):
    s = _full(h2, rows).replace(config=config.replace(initial_plan=init), hparams=hp)
    refined = [np.asarray(sj.train._targets(s, k, batch)[1]) for k in _keys(23, 8)]
    spread[init] = float(np.var(np.concatenate(refined)))
  assert spread["zeros"] < 0.6 * var < spread["random"], spread


def test_dropped_plan_tail_resets_the_stored_last_action(h2, env):
  """keep_plan_tail=False: the plans stored back are the refined ones with
  their last action reset to 0 (the authors' buffer keeps H refined actions
  and pads the warm start with a zero); the first H are untouched. With the
  default, the last action is refined like the others. Rows' plans are
  2 (i - 7.5) everywhere, so a refined last action is far from 0.

  Planted bug seen to fail it: the switch ignored. Also aimed at (not
  planted yet): the first action zeroed instead of the last."""
  h1 = H2.horizon + 1
  plans = 2.0 * (jnp.arange(C, dtype=jnp.float32) - 7.5)[:, None, None] * jnp.ones(
      (1, h1, env.action_size))
  rows = _rows(jax.random.PRNGKey(24), env, h1, reward=0.0, terminated=0.0, plans=plans)
  batch = jax.tree.map(lambda x: x[:H2.batch_size], rows)
  hp = h2.hparams.replace(noise_var=jnp.float32(0.01))
  stored = {}
  for keep in (True, False):
    state = _full(h2, rows).replace(config=H2.replace(keep_plan_tail=keep), hparams=hp)
    stored[keep] = np.asarray(sj.train._targets(state, jax.random.PRNGKey(25), batch)[1])
  np.testing.assert_array_equal(stored[False][:, :-1], stored[True][:, :-1])
  np.testing.assert_array_equal(stored[False][:, -1], 0.0)
  assert np.all(np.abs(stored[True] - np.asarray(batch.plan)) < 0.5)


def test_torch_init_is_pytorch_linears_and_reaches_every_network(env):
  """network_init='torch': every layer's kernel and bias are U(-b, b) with
  b = 1/sqrt(fan_in), as PyTorch's nn.Linear (moments of a uniform: max near
  b, std b/sqrt(3)); 'flax' keeps LeCun normal kernels (std 1/sqrt(fan_in))
  and zero biases. The switch reaches the Q-network, the ensemble and the
  actor that `parts` builds.

  Planted bug seen to fail it: `parts` not passing the switch on. Also aimed
  at (not planted yet): the bound as 1/fan_in, or the bias left at zero."""
  config = H2.replace(hidden_sizes=(256, 256), control="actor")
  for scheme in ("torch", "flax"):
    p = parts(config.replace(network_init=scheme))
    key = jax.random.PRNGKey(26)
    for name, params in (("q", p.q.init(key)), ("ensemble", p.ensemble.init(key)),
                         ("actor", p.actor.init(key))):
      for layer, leaves in params["params"].items():
        kernel, bias = np.asarray(leaves["kernel"]), np.asarray(leaves["bias"])
        b = 1.0 / math.sqrt(kernel.shape[-2])
        where = (scheme, name, layer)
        if scheme == "torch":
          assert np.abs(kernel).max() <= b and np.abs(kernel).max() > 0.95 * b, where
          assert abs(kernel.std() - b / math.sqrt(3)) < 0.1 * b, where
          assert np.abs(bias).max() <= b and np.any(bias != 0.0), where
        else:
          assert abs(kernel.std() - b) < 0.15 * b, where
          np.testing.assert_array_equal(bias, 0.0)


# --- 9. Numerical guards -----------------------------------------------------------

def test_first_step_is_finite_from_empty_statistics(step, h2):
  """At step 1 the running statistics have seen one transition: a variance of
  exactly 0. The std floor keeps the dynamics loss, its gradient and the new
  state finite.

  Planted bug seen to fail it: the floor removed from `RunningStats.std`."""
  new, m = step(h2, jax.random.PRNGKey(19))
  for leaf in jax.tree.leaves((new, m)):
    leaf = np.asarray(leaf)
    if np.issubdtype(leaf.dtype, np.inexact):
      assert np.all(np.isfinite(leaf))


def test_tree_comparison_rejects_nan():
  """Two trees that both hold a NaN are not equal.

  Planted bug seen to fail it: `assert_trees_equal` as a bare
  `np.testing.assert_array_equal` per leaf (which calls NaN equal to NaN)."""
  tree = {"a": jnp.array([1.0, jnp.nan]), "b": jnp.arange(3)}
  with pytest.raises(AssertionError):
    assert_trees_equal(tree, tree)
  assert_trees_equal({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([1.0, 2.0])})
  with pytest.raises(AssertionError):
    assert_trees_equal({"a": jnp.array([1.0, 2.0])}, {"a": jnp.array([1.0, 2.5])})


def test_k_dynamics_updates_are_k_adam_steps_on_fresh_batches(step, h2, env):
  """dynamics_updates=k: the ensemble takes k Adam steps in one env step, the
  j-th on the batch drawn with the j-th of k keys split from the step's
  dynamics key: the result equals k single updates, computed here from the
  buffer, the loss and optax, on those batches; the same batch twice does not.

  Planted bugs seen to fail it: the switch ignored (one update); every
  update drawing the same batch (one key reused)."""
  k = 2
  config = H2.replace(dynamics_updates=k)
  rows = _rows(jax.random.PRNGKey(15), env, H2.horizon + 1, reward=1.0, terminated=0.0)
  state = _full(h2, rows).replace(config=config)
  key = jax.random.PRNGKey(16)
  new, metrics = step(state, key)
  assert int(new.dyn_opt.inner_state[0].count) == k
  p = parts(config)
  k_dyn = jax.random.split(key, 5)[4]  # train_step's named subkeys: the fifth

  def one_update(carry, idx):  # idx [E, B]
    params, opt = carry
    batch = replay.get(new.buffer, idx)  # the step's buffer: rows and its own transition
    (loss, _), grad = jax.value_and_grad(
        lambda q: losses.dynamics_loss(p.ensemble.delta, q, new.scales, batch.obs,
                                       batch.action, batch.next_obs), has_aux=True)(params)
    updates, opt = p.optimiser.update(grad, opt, params)
    return (jax.tree.map(lambda a, b: a + b, params, updates), opt), loss

  draws = [replay.sample(new.buffer, kj, (H2.ensemble_size, H2.batch_size))
           for kj in jax.random.split(k_dyn, k)]
  assert np.any(np.asarray(draws[0] != draws[1]))  # fresh batches
  carry, want_losses = (state.dyn_params, state.dyn_opt), []
  for idx in draws:
    carry, loss = one_update(carry, idx)
    want_losses.append(loss)
  for got, want in zip(jax.tree.leaves(new.dyn_params), jax.tree.leaves(carry[0])):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["dyn_loss"], np.mean(want_losses) / H2.ensemble_size,
                             rtol=1e-5)
  twice = (state.dyn_params, state.dyn_opt)
  for _ in range(k):
    twice, _ = one_update(twice, draws[0])
  assert any(np.max(np.abs(np.asarray(a - b))) > 1e-4
             for a, b in zip(jax.tree.leaves(new.dyn_params), jax.tree.leaves(twice[0])))
