"""The short learning run of tests/test_train.py, evaluated with and without
the terminal Q (same trained state, `use_terminal_q=False` only at planning).

  python experiments/short_run_q_ablation.py --seeds=0,1,2 --out=results/short_run_q_ablation.json

Backs the thresholds of `test_short_run_learns`: a broken Q-side cannot hide
behind a learning model if planning with the learned Q beats planning with
the learned model alone.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp

import smpc_jax as sj


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--out", default="results/short_run_q_ablation.json")
  args = parser.parse_args()
  config = sj.preset("idp", total_steps=6000, num_samples=40, target_samples=8,
                     hidden_sizes=(64, 64), eval_episodes=4)
  no_q = config.replace(use_terminal_q=False)
  train = jax.jit(sj.make_train(config))
  evaluate = jax.jit(lambda s, k: sj.evaluate(s, k, config.eval_episodes))
  rows = []
  for seed in [int(s) for s in args.seeds.split(",")]:
    t0 = time.time()
    key = jax.random.PRNGKey(seed)
    before = evaluate(jax.jit(sj.init, static_argnums=0)(config, key), jax.random.PRNGKey(1))
    state, _ = train(key)
    after = evaluate(state, jax.random.PRNGKey(1))
    after_no_q = evaluate(state.replace(config=no_q), jax.random.PRNGKey(1))
    row = dict(seed=seed, before=float(jnp.mean(before)), after=float(jnp.mean(after)),
               after_no_q=float(jnp.mean(after_no_q)), wall_s=time.time() - t0)
    print(row, flush=True)
    rows.append(row)
  with open(args.out, "w") as f:
    json.dump(dict(config=config.__dict__, backend=jax.devices()[0].platform, runs=rows), f,
              indent=1, default=str)
  print("wrote", args.out)


if __name__ == "__main__":
  main()
