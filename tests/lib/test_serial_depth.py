"""experiments/harness/serial_depth.py (step_ops.py --serial): kernels run one after
another, weighted by loop trips, on HLO whose count is known by hand and on
small compiled functions (no training)."""

import os
import sys

import jax
import jax.numpy as jnp
import pytest

from experiments.harness import serial_depth as sd

# A fixed 3-trip loop (body: 2 kernels; condition: 1), a loop bounded by
# `i < 7` (body 1, condition 1), a conditional (branches of 2 and 0 kernels),
# a call of one kernel, and free instructions around them.
HLO = """HloModule toy, is_scheduled=true

%fused_a (p: f32[4]) -> f32[4] {
  %p = f32[4]{0} parameter(0)
  ROOT %s = f32[4]{0} sine(%p)
}

%body (t: (s32[], f32[4])) -> (s32[], f32[4]) {
  %t = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %x = f32[4]{0} get-tuple-element(%t), index=1
  %one = s32[] constant(1)
  %f = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused_a, metadata={op_name="jit(f)/physics/while/body/sin"}
  %c = f32[4]{0} copy(%f), metadata={op_name="jit(f)/physics/while/body/copy"}
  %j = s32[] add(%i, %one)
  ROOT %r = (s32[], f32[4]{0}) tuple(%j, %c)
}

%cond (t: (s32[], f32[4])) -> pred[] {
  %t = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %n = s32[] constant(3)
  ROOT %lt = pred[] compare(%i, %n), direction=LT, metadata={op_name="jit(f)/physics/while/cond/lt"}
}

%fused_test (a: s32[], b: f32[4]) -> pred[] {
  %a = s32[] parameter(0)
  %k = s32[] constant(7)
  %lt = pred[] compare(%a, %k), direction=LT
  %b = f32[4]{0} parameter(1)
  ROOT %q = pred[] constant(true)
}

%body2 (t: (s32[], f32[4])) -> (s32[], f32[4]) {
  %t = (s32[], f32[4]{0}) parameter(0)
  %x = f32[4]{0} get-tuple-element(%t), index=1
  %d = f32[4]{0} custom-call(%x), custom_call_target="foo", metadata={op_name="jit(f)/targets/while/body/foo"}
  %i = s32[] get-tuple-element(%t), index=0
  ROOT %r = (s32[], f32[4]{0}) tuple(%i, %d)
}

%cond2 (t: (s32[], f32[4])) -> pred[] {
  %t = (s32[], f32[4]{0}) parameter(0)
  %i = s32[] get-tuple-element(%t), index=0
  %x = f32[4]{0} get-tuple-element(%t), index=1
  ROOT %f = pred[] fusion(%i, %x), kind=kLoop, calls=%fused_test, metadata={op_name="jit(f)/targets/while/cond/and"}
}

%heavy (t: (f32[4])) -> (f32[4]) {
  %t = (f32[4]{0}) parameter(0)
  %x = f32[4]{0} get-tuple-element(%t), index=0
  %e = f32[4]{0} exponential(%x)
  %g = f32[4]{0} fusion(%e), kind=kLoop, calls=%fused_a
  ROOT %r = (f32[4]{0}) tuple(%g)
}

%light (t: (f32[4])) -> (f32[4]) {
  ROOT %t = (f32[4]{0}) parameter(0)
}

%called (x: f32[4]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  ROOT %f = f32[4]{0} fusion(%x), kind=kLoop, calls=%fused_a, metadata={op_name="jit(f)/updates/sin"}
}

ENTRY %main (x: f32[4]) -> f32[4] {
  %x = f32[4]{0} parameter(0)
  %zero = s32[] constant(0)
  %t0 = (s32[], f32[4]{0}) tuple(%zero, %x)
  %w = (s32[], f32[4]{0}) while(%t0), condition=%cond, body=%body, metadata={op_name="jit(f)/physics/while"}, backend_config={"known_trip_count":{"n":"3"}}
  %w2 = (s32[], f32[4]{0}) while(%w), condition=%cond2, body=%body2, metadata={op_name="jit(f)/targets/while"}
  %y = f32[4]{0} get-tuple-element(%w2), index=1
  %b = f32[4]{0} bitcast(%y)
  %p = s32[] fusion(%b), kind=kLoop, calls=%fused_a
  %t1 = (f32[4]{0}) tuple(%b)
  %c = (f32[4]{0}) conditional(%p, %t1, %t1), branch_computations={%light, %heavy}, metadata={op_name="jit(f)/cond"}
  %z = f32[4]{0} get-tuple-element(%c), index=0
  ROOT %out = f32[4]{0} call(%z), to_apply=%called
}
"""


def test_hand_written_hlo_counts_as_worked_out():
  d = sd.serial_depth(HLO, ("physics", "targets", "updates"))
  # physics: 3 trips x (2 body kernels; the add is 1 more) + 4 condition runs.
  assert d.kernels["physics"] == 3 * 3 + 4 * 1
  # targets: at most 7 trips x 1 kernel + 8 condition runs x 1.
  assert d.kernels["targets"] == 7 + 8
  assert d.kernels["updates"] == 1  # the called fusion
  # other: the predicate's fusion and the heavier branch (2 kernels).
  assert d.kernels["other"] == 1 + 2
  assert d.total == 13 + 15 + 1 + 3
  # Host syncs: 4 + 8 while tests and one branch read.
  assert d.syncs == dict(physics=4, targets=8, updates=0, other=1)
  loops = {(l.part, l.kind, l.trips) for l in d.loops}
  assert loops == {("physics", "fixed", 3), ("targets", "at most", 7)}


def _count(f, *args, parts=("physics", "targets")):
  return sd.serial_depth(jax.jit(f).lower(*args).compile().as_text(), parts)


def _fori(trips):
  def f(x):
    with jax.named_scope("physics"):
      return jax.lax.fori_loop(0, trips, lambda i, x: jnp.sin(x) @ x, x)
  return f


def test_fori_loop_weighted_by_its_fixed_trip_count():
  x = jnp.ones((4, 4))
  d5, d10 = _count(_fori(5), x), _count(_fori(10), x)
  (l5,), (l10,) = d5.loops, d10.loops
  assert (l5.kind, l5.trips, l10.kind, l10.trips) == ("fixed", 5, "fixed", 10)
  assert l5.part == "physics" and l5.body_kernels == l10.body_kernels >= 2
  assert d10.kernels["physics"] - d5.kernels["physics"] == 5 * l5.body_kernels


def test_while_with_tolerance_exit_counts_at_most_its_bound():
  def f(x):
    with jax.named_scope("targets"):
      return jax.lax.while_loop(lambda s: (s[0] < 7) & (jnp.sum(s[1]) > 1e-3),
                                lambda s: (s[0] + 1, jnp.cos(s[1]) @ s[1]), (0, x))[1]
  d = _count(f, jnp.ones((4, 4)))
  (loop,) = d.loops
  assert (loop.part, loop.kind, loop.trips) == ("targets", "at most", 7)
  assert d.kernels["targets"] >= 7 * 2
  assert d.syncs["targets"] == 8


@pytest.mark.parametrize("heavy_first", [True, False])
def test_cond_counts_its_costliest_branch(heavy_first):
  heavy = _fori(6)
  light = lambda x: x + 1.0
  branches = (heavy, light) if heavy_first else (light, heavy)
  f = lambda x: jax.lax.cond(x[0, 0] > 0, *branches, x)
  x = jnp.ones((4, 4))
  d = _count(f, x)
  (loop,) = d.loops
  assert (loop.kind, loop.trips) == ("fixed", 6)
  alone = _count(heavy, x)
  # The heavy branch's loop, as counted alone, is all inside the conditional.
  assert d.kernels["physics"] == alone.kernels["physics"]
  assert d.syncs["other"] == 1  # the branch read
