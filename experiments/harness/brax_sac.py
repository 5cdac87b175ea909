"""brax's SAC trainer, adapted at its edge to run the authors' baseline.

Three adaptations, each a no-op where brax already does what is asked:
- `restore_device_put_replicated`: brax 0.14.2 still calls
  jax.device_put_replicated, which jax 0.10 removed; put it back (one stacked
  copy per device, sharded over them).
- `target_entropy(per_dim)`: brax fixes SAC's target entropy at -0.5 |A|
  (`losses.make_losses`); CleanRL's SAC, the authors' baseline, uses -|A|.
  brax reads |A| there and nowhere else in its losses, so within this context
  the losses are built with |A| scaled by per_dim / -0.5, which makes the
  target entropy per_dim * |A|.
- `WithoutX(env)`: Hopper's and Walker2d's observation without its first entry,
  the x position: Gymnasium's default (exclude_current_positions_from_observation),
  the observation CleanRL's SAC learned from. softMPCritic keeps x (the paper's
  setting): its known reward reads it.
No flags are defined here, so tests import it freely.
"""

from __future__ import annotations

import contextlib

from brax.envs import base as brax_base
from brax.training.agents.sac import losses as sac_losses
import jax
import numpy as np

BRAX_TARGET_ENTROPY = -0.5  # per action dimension, brax's own


def restore_device_put_replicated():
  """brax's SAC replicates its state with jax.device_put_replicated, gone from
  jax 0.10: put it back as one stacked copy per device, sharded over them."""
  if hasattr(jax, "device_put_replicated"):
    return

  def device_put_replicated(x, devices):
    sharding = jax.sharding.NamedSharding(jax.sharding.Mesh(np.array(devices), ("d",)),
                                          jax.sharding.PartitionSpec("d"))
    return jax.tree.map(
        lambda a: jax.device_put(np.stack([np.asarray(a)] * len(devices)), sharding), x)

  jax.device_put_replicated = device_put_replicated


@contextlib.contextmanager
def target_entropy(per_dim: float):
  """SAC's losses, while inside, aim at an entropy of per_dim * |A| (< 0)."""
  if per_dim >= 0:
    raise ValueError(f"target_entropy={per_dim} is invalid; it must be < 0 (per action "
                     "dimension, e.g. -1 CleanRL's, -0.5 brax's).")
  make = sac_losses.make_losses

  def scaled(*args, action_size, **kwargs):
    return make(*args, action_size=action_size * per_dim / BRAX_TARGET_ENTROPY, **kwargs)

  sac_losses.make_losses = scaled
  try:
    yield
  finally:
    sac_losses.make_losses = make


# The tasks whose observation begins with the x position (mjx_env.locomotion_observation).
X_FIRST = ("hopper", "walker")


class WithoutX(brax_base.Wrapper):
  """The wrapped task's observation [x, rest] seen as [rest]: Gymnasium's
  default Hopper-v5 and Walker2d-v5 observation. Stepping reads the physics
  state only, so the dynamics and rewards are the task's own."""

  def reset(self, rng):
    state = self.env.reset(rng)
    return state.replace(obs=state.obs[..., 1:])

  def step(self, state, action):
    state = self.env.step(state, action)
    return state.replace(obs=state.obs[..., 1:])

  @property
  def observation_size(self) -> int:
    return self.env.observation_size - 1
