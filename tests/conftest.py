"""Shared test helpers."""

import os
import tempfile

# One persistent XLA compilation cache for the whole session, shared by both
# pytest workers and every driver subprocess (they inherit the environment):
# the resume, signal and sharding tests compile the same tiny programs in
# many processes, and all but the first read them back. Set before jax loads.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"smpc_jax_test_xla_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import jax  # noqa: E402
import numpy as np  # noqa: E402

# MuJoCo picks its OpenGL platform when first imported: render headless
# (EGL; MUJOCO_GL=osmesa also works) in every test process.
os.environ.setdefault("MUJOCO_GL", "egl")


def assert_trees_equal(a, b):
  """Same structure, shapes, dtypes and values, leaf by leaf. NaN equals
  nothing, itself included: two runs that both went NaN are not "equal"
  (np.testing.assert_array_equal alone would call them so)."""
  leaves_a, tree_a = jax.tree.flatten(a)
  leaves_b, tree_b = jax.tree.flatten(b)
  assert tree_a == tree_b, (tree_a, tree_b)
  for x, y in zip(leaves_a, leaves_b):
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, x.dtype, y.shape, y.dtype)
    if np.issubdtype(x.dtype, np.inexact):
      assert not np.isnan(x).any() and not np.isnan(y).any(), "NaN in a compared tree"
    np.testing.assert_array_equal(x, y)
