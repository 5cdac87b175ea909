"""brax's SAC trainer, adapted at its edge to run the authors' baseline.

Two adaptations, each a no-op where brax already does what is asked:
- `restore_device_put_replicated`: brax 0.14.2 still calls
  jax.device_put_replicated, which jax 0.10 removed; put it back (one stacked
  copy per device, sharded over them).
- `target_entropy(per_dim)`: brax fixes SAC's target entropy at -0.5 |A|
  (`losses.make_losses`); CleanRL's SAC, the authors' baseline, uses -|A|.
  brax reads |A| there and nowhere else in its losses, so within this context
  the losses are built with |A| scaled by per_dim / -0.5, which makes the
  target entropy per_dim * |A|.
No flags are defined here, so tests import it freely.
"""

from __future__ import annotations

import contextlib

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
