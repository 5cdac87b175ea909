# One-step Walker2d-v5 parity, ours (MJX, float32) against Gymnasium (MuJoCo,
# float64) on 200 visited states: the figures quoted in tests/test_parity.py.
#   PYTHONPATH=. python results/walker_parity/measure.py
import time; t=time.time()
import numpy as np, jax, jax.numpy as jnp, gymnasium as gym
from smpc_jax import envs
e = envs.make("walker"); env = e.env
print(e.obs_size, e.action_size, env.dt, envs.names())
g = gym.make("Walker2d-v5", exclude_current_positions_from_observation=False).unwrapped
rng = np.random.default_rng(0); g.reset(seed=0)
q, v, a = [], [], []
while len(q) < 200:
  u = rng.uniform(-1, 1, 6); q.append(g.data.qpos.copy()); v.append(g.data.qvel.copy()); a.append(u)
  _, _, term, _, _ = g.step(u)
  if term or rng.uniform() < 0.05: g.reset(seed=int(rng.integers(2**31)))
q, v, a = map(np.array, (q, v, a))
exp = []
for x in zip(q, v, a):
  g.set_state(x[0], x[1]); o, r, te, _, _ = g.step(x[2]); exp.append((o, r, float(te)))
obs, rew, term = (np.array(x) for x in zip(*exp))
f = lambda x: jnp.asarray(x, jnp.float32)
s = jax.jit(jax.vmap(env.init_state))(f(q), f(v)); s2 = jax.jit(jax.vmap(env.step))(s, f(a))
print("obs err", np.abs(s2.obs - obs).max(), "rew err", np.abs(s2.reward - rew).max(), "term", (s2.done == term).all(), term.sum())
print("relerr", (np.abs(s2.obs-obs)/(1e-4+1e-4*np.abs(obs))).max())
r = jax.vmap(e.reward_fn)(s.obs, f(a), s2.obs); d = jax.vmap(e.termination_fn)(s.obs, f(a), s2.obs)
print("known r err", np.abs(r - s2.reward).max(), (d == s2.done).all())
print(time.time()-t)
