import jax
import jax.numpy as jnp
import numpy as np

from smpc_jax import replay


def _item(i, h1=3, act=2):
  return replay.Transition(
      obs=jnp.full((4,), float(i)), action=jnp.full((act,), float(i)),
      reward=jnp.asarray(float(i)), next_obs=jnp.full((4,), i + 0.5),
      terminated=jnp.asarray(float(i % 2)), plan=jnp.full((h1, act), float(i)))


def test_add_wraps_around_overwriting_the_oldest():
  state = replay.init(3, _item(0))
  add = jax.jit(replay.add)
  for i in range(5):
    state = add(state, _item(i))
  assert int(state.size) == 3 and int(state.cursor) == 2
  # Rows 0 and 1 were overwritten by items 3 and 4; row 2 still holds item 2.
  np.testing.assert_array_equal(state.data.reward, [3.0, 4.0, 2.0])
  np.testing.assert_array_equal(state.data.obs[:, 0], [3.0, 4.0, 2.0])
  np.testing.assert_array_equal(state.data.terminated, [1.0, 0.0, 0.0])


def test_sample_draws_only_filled_rows_and_all_of_them():
  state = replay.init(10, _item(0))
  for i in range(4):
    state = replay.add(state, _item(i))
  idx = replay.sample(state, jax.random.PRNGKey(0), (2000,))
  assert idx.dtype == jnp.int32 and idx.shape == (2000,)
  assert set(np.unique(idx).tolist()) == {0, 1, 2, 3}
  batch = replay.get(state, idx)
  np.testing.assert_array_equal(batch.reward, np.asarray(idx, np.float32))
  idx2 = replay.sample(state, jax.random.PRNGKey(1), (2, 5))
  assert idx2.shape == (2, 5) and replay.get(state, idx2).obs.shape == (2, 5, 4)


def test_write_plans_lands_at_the_sampled_rows_only():
  state = replay.init(6, _item(0))
  for i in range(6):
    state = replay.add(state, _item(i))
  idx = jnp.array([4, 1])
  new = jnp.stack([jnp.full((3, 2), -4.0), jnp.full((3, 2), -1.0)])
  out = jax.jit(replay.write_plans)(state, idx, new)
  plans = np.asarray(out.data.plan[:, 0, 0])
  np.testing.assert_array_equal(plans, [0, -1, 2, 3, -4, 5])
  # Nothing else moved.
  np.testing.assert_array_equal(out.data.reward, state.data.reward)
  assert int(out.cursor) == int(state.cursor) and int(out.size) == int(state.size)


def test_add_rejects_a_transition_of_another_shape():
  import pytest
  state = replay.init(3, _item(0))
  with pytest.raises(AssertionError, match="shape"):
    replay.add(state, _item(1, h1=4))  # a plan of another horizon
