"""The callable types the environments and the planner share: the known
reward and termination of one transition (s [obs], a [act], s' [obs]) ->
scalar. The planner vmaps them over its samples."""

from __future__ import annotations

from typing import Callable

import jax

RewardFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]
TerminationFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]  # 1.0: terminated
