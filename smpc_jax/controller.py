"""The controller training yields, on its own: MPPI over the learned ensemble
with the learned terminal Q and a warm-started plan (or, for configurations
that act with the actor, the actor's greedy mu(s)).

  ctrl = controller.make(state)           # one run's state (not vmapped)
  plan = ctrl.initial_plan(key)           # [H+1, act]
  action, plan = ctrl.act(obs, plan, key) # [act], the warm start for the next obs

Both functions are pure and close over the state's parameters, so
`jax.export` can serialise them with those parameters (experiments/export.py).
`evaluation.episode` acts through this controller: it is defined once.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax

from smpc_jax import planner
from smpc_jax.train import TrainState, initial_plan, parts, plan


class Controller(NamedTuple):
  # (key) -> plan [H+1, act]: the warm start of an episode's first action.
  initial_plan: Callable
  # (obs [obs], plan [H+1, act], key) -> (action [act], next plan [H+1, act]).
  act: Callable


def make(state: TrainState) -> Controller:
  """The online controller of one run's `state` (leaves without a seed axis)."""
  c = state.config

  def init(key):
    return initial_plan(c, state.hparams, key)

  if c.control == "actor":
    actor = parts(c).actor

    def act(obs, warm, key):
      del key  # greedy: the actor's exploration noise is for training only
      return actor.apply(state.actor_params, obs), warm
  else:
    def act(obs, warm, key):
      result = plan(state, key, obs, warm, state.q_params, num_samples=c.num_samples)
      return result.action, planner.shift(result.plan)

  return Controller(init, act)


def run_of(state: TrainState, index: int) -> TrainState:
  """Run `index` of a vmapped state (every array leaf's leading axis)."""
  return jax.tree.map(lambda x: x[index], state)
