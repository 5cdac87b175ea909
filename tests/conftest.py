"""The environment every test process shares (set before jax loads)."""

import os
import tempfile

# One persistent XLA compilation cache for the whole session, shared by both
# pytest workers and every driver subprocess (they inherit the environment):
# the resume, signal and sharding tests compile the same tiny programs in
# many processes, and all but the first read them back. Set before jax loads.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"smpc_jax_test_xla_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

# MuJoCo picks its OpenGL platform when first imported: render headless
# (EGL; MUJOCO_GL=osmesa also works) in every test process.
os.environ.setdefault("MUJOCO_GL", "egl")
