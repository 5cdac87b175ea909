"""Counts the operations of one traced `train_step`, to check that a switch
costs nothing where it is off (e.g. the default step pays nothing for the
actor). Tracing and lowering only; nothing is compiled or timed.

  python experiments/step_ops.py --env=idp [--control=actor ...] [--out=FILE.json]
  python experiments/step_ops.py --env=idp --serial [--hlo_out=step.hlo]

Run it with PYTHONPATH at two checkouts to compare them. Prints the number of
jaxpr equations (counted into every sub-jaxpr: scans, conds, pjits), with
--hlo of StableHLO operations, and the state's leaves and elements.

--serial also compiles the step (one env step and one round of updates) and
reads its optimised HLO: the kernels it runs one after another, weighted by
loop trip counts, per part of the step (the named scopes of `train_step`),
the host round trips, and every while loop with its trips (see
experiments/harness/serial_depth.py for what counts). The counts are of this
backend's program (XLA:CPU here fuses differently from XLA:GPU).
"""

from __future__ import annotations

import json
import re

from absl import flags, logging
import jax

from experiments.harness import cli  # first: it checks the environment before mujoco loads
from experiments.harness import config_flags, files
from experiments.harness import serial_depth
import smpc_jax as sj

# The named scopes of `train_step`, in the order the report lists them.
PARTS = ("physics", "online_plan", "targets", "updates", "reset")

@cli.once
def define_flags():
  """This driver's flags (defined when it runs, not when imported)."""
  flags.DEFINE_string("out", None, "Also write the counts to this JSON file.")
  flags.DEFINE_boolean("hlo", False, "Also lower to StableHLO and count its operations.")
  flags.DEFINE_boolean("serial", False, "Also compile the step and count the kernels it runs one "
                       "after another (per env step, by part) and its while loops' trips.")
  flags.DEFINE_string("hlo_out", None, "With --serial: write the step's optimised HLO here.")
  config_flags.define_config_flags()


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
  config = config_flags.config_from_flags()
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
  if FLAGS.serial:
    text = jax.jit(sj.train_step).lower(state, key).compile().as_text()
    if FLAGS.hlo_out:
      with open(FLAGS.hlo_out, "w") as f:
        f.write(text)
    depth = serial_depth.serial_depth(text, PARTS)  # one train_step = one env step
    print(serial_depth.report(depth))
    result["serial"] = dict(depth.as_dict(), backend=jax.default_backend(),
                            per="env step")
  if FLAGS.out:
    files.write_json(FLAGS.out, result)


if __name__ == "__main__":
  cli.run(main, define_flags)
