"""Counts the operations of one traced `train_step`, to check that a switch
costs nothing where it is off (e.g. the default step pays nothing for the
actor). Tracing and lowering only; nothing is compiled or timed.

  python experiments/step_ops.py --env=idp [--control=actor ...] [--out=FILE.json]

Run it with PYTHONPATH at two checkouts to compare them. Prints the number of
jaxpr equations (counted into every sub-jaxpr: scans, conds, pjits), with
--hlo of StableHLO operations, and the state's leaves and elements.
"""

from __future__ import annotations

import json
import re

from absl import flags, logging
import jax

import cli
import smpc_jax as sj

flags.DEFINE_string("out", None, "Also write the counts to this JSON file.")
flags.DEFINE_boolean("hlo", False, "Also lower to StableHLO and count its operations.")
cli.define_config_flags()
FLAGS = flags.FLAGS


def count_eqns(jaxpr) -> int:
  """Equations of `jaxpr` and of every jaxpr nested in its equations' params."""
  n = 0
  for eqn in jaxpr.eqns:
    n += 1
    for v in eqn.params.values():
      for sub in (v if isinstance(v, (list, tuple)) else [v]):
        inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(inner, "eqns"):
          n += count_eqns(inner)
  return n


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  config = cli.config_from_flags()
  state = jax.eval_shape(lambda k: sj.init(config, k), jax.random.PRNGKey(0))
  key = jax.random.PRNGKey(1)
  jaxpr = jax.make_jaxpr(sj.train_step)(state, key)
  hlo_ops = None
  if FLAGS.hlo:
    hlo = jax.jit(sj.train_step).lower(state, key).as_text()
    hlo_ops = len(re.findall(r"^\s*(?:%\S+ = )?\"?[a-z_]+\.[a-z_]+", hlo, re.M))
  leaves = len(jax.tree.leaves(state))
  floats = sum(x.size for x in jax.tree.leaves(state))
  result = dict(env=config.env, control=getattr(config, "control", "mppi"),
                targets=getattr(config, "targets", "mppi"), jaxpr_eqns=count_eqns(jaxpr.jaxpr),
                stablehlo_ops=hlo_ops, state_leaves=leaves, state_elements=int(floats),
                has_actor=getattr(state, "actor_params", None) is not None)
  print(json.dumps(result))
  if FLAGS.out:
    cli.write_json(FLAGS.out, result)


if __name__ == "__main__":
  cli.run(main)
