"""What tests share: the repository root, a subprocess environment that
reads the session's compilation cache, and an exact tree comparison."""

import os

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def driver(name: str) -> str:
  """The path of experiments/NAME."""
  return os.path.join(ROOT, "experiments", name)


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
