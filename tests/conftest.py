"""Shared test helpers."""

import os

import jax
import numpy as np

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
