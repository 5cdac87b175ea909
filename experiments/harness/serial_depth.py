"""Serial depth of a compiled XLA program: how many kernels it runs one after
another, read from its optimised HLO text (`compiled.as_text()`).

A device runs a program's top-level instructions in order; each of these is
one kernel launch (or, on a CPU, one thunk):
  fusion, custom-call, copy / copy-start, and any other instruction not
  listed as free below (an unfused dot, reduce, scatter, sort, iota, ...).
Free (no kernel): parameter, constant, tuple, get-tuple-element, bitcast,
  after-all, add-dependency, opt-barrier, partition-id, replica-id, domain,
  and the second halves of async pairs (copy-done, *-done, *-update).
Control flow is walked into, not counted as a kernel:
  while        trip x (body + cond) + cond: the condition runs once more than
               the body. The trip is XLA's `known_trip_count` where the
               backend config has one ("fixed"); else a bound read from the
               condition's compare of an integer against a constant ("at
               most"); else 1 ("unknown").
  conditional  the costliest branch (one branch runs).
  call         the called computation (XLA:CPU keeps small calls).
A fusion's own computation is one kernel and is not walked into.

Host round trips ("syncs"): on a GPU each while iteration's exit test and each
conditional's branch index go back to the host (unless command buffers hold
the loop); the report counts them too, weighted the same way.

Each kernel is attributed to the first `jax.named_scope` of `parts` found in
its op_name metadata (e.g. ".../physics/..."); kernels with none go to
"other". Pure text processing: nothing here compiles or imports jax.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Dict, List, Optional, Sequence, Tuple

FREE = frozenset({
    "parameter", "constant", "tuple", "get-tuple-element", "bitcast", "after-all",
    "add-dependency", "opt-barrier", "partition-id", "replica-id", "domain",
    "copy-done", "async-done", "async-update", "all-reduce-done", "all-gather-done",
    "collective-permute-done", "send-done", "recv-done",
})
CONTROL = frozenset({"while", "conditional", "call"})

_HEADER = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s*\(.*\)\s*->\s*.*\{\s*$")
_INSTR = re.compile(r"^\s*(ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"([a-z][a-z0-9\-]*)\(")


@dataclasses.dataclass
class Instr:
  name: str
  opcode: str
  text: str  # the whole line after "name = "

  def attr(self, key: str) -> Optional[str]:
    m = re.search(rf"\b{key}=%?([\w.\-]+)", self.text)
    return m.group(1) if m else None

  @property
  def op_name(self) -> str:
    m = re.search(r'op_name="([^"]*)"', self.text)
    return m.group(1) if m else ""

  @property
  def branches(self) -> List[str]:
    m = re.search(r"branch_computations=\{([^}]*)\}", self.text)
    if m:
      return [b.strip().lstrip("%") for b in m.group(1).split(",") if b.strip()]
    return [c for c in (self.attr("true_computation"), self.attr("false_computation")) if c]

  @property
  def known_trip_count(self) -> Optional[int]:
    m = re.search(r'"known_trip_count"\s*:\s*\{\s*"n"\s*:\s*"(\d+)"', self.text)
    return int(m.group(1)) if m else None

  @property
  def operands(self) -> List[str]:
    """Operand names (types and layouts dropped)."""
    start = self.text.find(self.opcode + "(") + len(self.opcode) + 1
    depth, end = 1, start
    while end < len(self.text) and depth:
      depth += {"(": 1, ")": -1}.get(self.text[end], 0)
      end += 1
    return re.findall(r"%([\w.\-]+)", self.text[start:end - 1]) or [
        t.split()[-1] for t in self.text[start:end - 1].split(",") if t.strip()]


def _opcode(rest: str) -> str:
  """The opcode of an instruction's right-hand side: skip its shape (a tuple
  shape is parenthesised and may hold spaces)."""
  i = 0
  if rest.startswith("("):
    depth = 0
    for i, ch in enumerate(rest):
      depth += {"(": 1, ")": -1}.get(ch, 0)
      if depth == 0:
        break
    i += 1
  else:
    i = rest.find(" ")
  m = _OPCODE.search(rest, i)
  return m.group(1) if m else ""


def parse(hlo: str) -> Tuple[Dict[str, List[Instr]], str]:
  """{computation name: instructions} and the entry computation's name."""
  comps: Dict[str, List[Instr]] = {}
  entry, current = "", None
  for line in hlo.splitlines():
    if current is None:
      m = _HEADER.match(line)
      if m:
        current = m.group(2)
        comps[current] = []
        if m.group(1):
          entry = current
      continue
    if line.strip() == "}":
      current = None
      continue
    m = _INSTR.match(line)
    if m:
      rest = m.group(3)
      comps[current].append(Instr(m.group(2), _opcode(rest), rest))
  if not entry:
    raise ValueError("no ENTRY computation in the HLO text")
  return comps, entry


_DIRECTION = re.compile(r"direction=(LT|LE|GT|GE)")
_INT_CONST = re.compile(r"^[su](?:8|16|32|64)\[\]\S*\s+constant\((-?\d+)\)")


def condition_bound(comps, cond: str) -> Optional[int]:
  """An upper bound on the trips of a while whose condition is `cond`: the
  smallest N such that some compare of an integer against a constant stops
  the loop once a counter reaches N (a counter from 0 or more, stepping by 1:
  `i < N` gives N, `i <= N` gives N + 1). None where no such compare exists."""
  seen, todo, bounds = set(), [cond], []
  while todo:
    name = todo.pop()
    if name in seen or name not in comps:
      continue
    seen.add(name)
    instrs = comps[name]
    consts = {}
    for ins in instrs:
      m = _INT_CONST.match(ins.text)
      if m:
        consts[ins.name] = int(m.group(1))
    for ins in instrs:
      if ins.opcode == "fusion" or ins.opcode == "call":
        callee = ins.attr("calls") or ins.attr("to_apply")
        if callee:
          todo.append(callee)
      if ins.opcode != "compare":
        continue
      d = _DIRECTION.search(ins.text)
      ops = ins.operands
      if not d or len(ops) != 2:
        continue
      lhs, rhs = (consts.get(o) for o in ops)
      direction = d.group(1)
      if rhs is not None and lhs is None:  # i ? N
        n = rhs + (1 if direction in ("LE", "GT") else 0)
      elif lhs is not None and rhs is None:  # N ? i
        n = lhs + (1 if direction in ("GE", "LT") else 0)
      else:
        continue
      if n >= 0:
        bounds.append(n)
  return min(bounds) if bounds else None


def _is_threefry(ins: Instr, trips: int, kind: str) -> bool:
  """jax's threefry2x32 as XLA:CPU gets it: a fixed 5-trip loop whose state
  is an s32 counter and unsigned 32-bit words only."""
  shape = ins.text[:ins.text.find(" while(")]
  types = re.findall(r"\b([a-z]+\d*)\[", shape)
  return (kind == "fixed" and trips == 5 and bool(types) and types[0] == "s32"
          and "u32" in types and set(types) <= {"s32", "u32"})


@dataclasses.dataclass
class Loop:
  name: str
  part: str
  trips: int  # per execution of the while
  kind: str  # "fixed" | "at most" | "unknown"
  executions: float  # how many times the while itself runs per program run
  body_kernels: float  # kernels of one trip (body + condition)
  threefry: bool = False  # jax's threefry PRNG: a rolled loop on XLA:CPU only


@dataclasses.dataclass
class Depth:
  kernels: Dict[str, float]  # per part
  syncs: Dict[str, float]  # host round trips per part (while tests, branch reads)
  loops: List[Loop]
  # Of `kernels`, those inside jax's threefry loops (per part): jax rolls them
  # (5 trips) on CPU only and unrolls them into a fusion on GPU.
  threefry: Dict[str, float] = dataclasses.field(default_factory=dict)

  @property
  def total(self) -> float:
    return sum(self.kernels.values())

  @property
  def total_threefry(self) -> float:
    return sum(self.threefry.values())

  @property
  def total_syncs(self) -> float:
    return sum(self.syncs.values())

  def as_dict(self) -> dict:
    return dict(total=self.total, kernels=self.kernels, total_syncs=self.total_syncs,
                syncs=self.syncs, total_threefry=self.total_threefry, threefry=self.threefry,
                loops=[dataclasses.asdict(l) for l in self.loops])


def part_of(op_name: str, parts: Sequence[str]) -> str:
  """The first of `parts` that is a component of the scope path `op_name`."""
  for component in op_name.split("/"):
    if component in parts:
      return component
  return "other"


def serial_depth(hlo: str, parts: Sequence[str] = ()) -> Depth:
  """Kernels and host syncs run one after another by one run of the program."""
  comps, entry = parse(hlo)
  parts = tuple(parts)

  def walk(name: str, inherited: str, stack=()) -> Tuple[dict, dict, list, dict]:
    """(kernels by part, syncs by part, loops, threefry kernels by part) of
    one run of `name`."""
    if name in stack:
      raise ValueError(f"recursive computation {name}")
    kernels: Dict[str, float] = {}
    syncs: Dict[str, float] = {}
    loops: List[Loop] = []
    threefry: Dict[str, float] = {}

    def add(into, other, weight=1.0):
      for k, v in other.items():
        into[k] = into.get(k, 0.0) + weight * v

    for ins in comps.get(name, []):
      part = part_of(ins.op_name, parts)
      part = inherited if part == "other" else part
      if ins.opcode in FREE:
        continue
      if ins.opcode == "while":
        body, cond = ins.attr("body"), ins.attr("condition")
        trips, kind = ins.known_trip_count, "fixed"
        if trips is None:
          trips, kind = condition_bound(comps, cond), "at most"
        if trips is None:
          trips, kind = 1, "unknown"
        bk, bs, bl, bt = walk(body, part, stack + (name,))
        ck, cs, cl, ct = walk(cond, part, stack + (name,))
        is_threefry = _is_threefry(ins, trips, kind)
        add(kernels, bk, trips)
        add(kernels, ck, trips + 1)
        add(syncs, bs, trips)
        add(syncs, cs, trips + 1)
        add(syncs, {part: trips + 1})
        add(threefry, bk if is_threefry else bt, trips)
        add(threefry, ck if is_threefry else ct, trips + 1)
        loops.append(Loop(ins.name, part, trips, kind, 1.0,
                          sum(bk.values()) + sum(ck.values()), is_threefry))
        for l in bl + cl:
          loops.append(dataclasses.replace(l, executions=l.executions * trips))
      elif ins.opcode == "conditional":
        best = None
        for b in ins.branches:
          r = walk(b, part, stack + (name,))
          if best is None or sum(r[0].values()) > sum(best[0].values()):
            best = r
        if best:
          add(kernels, best[0])
          add(syncs, best[1])
          loops.extend(best[2])
          add(threefry, best[3])
        add(syncs, {part: 1.0})
      elif ins.opcode == "call":
        r = walk(ins.attr("to_apply"), part, stack + (name,))
        add(kernels, r[0])
        add(syncs, r[1])
        loops.extend(r[2])
        add(threefry, r[3])
      else:
        add(kernels, {part: 1.0})
    return kernels, syncs, loops, threefry

  kernels, syncs, loops, threefry = walk(entry, "other")
  order = list(parts) + ["other"]
  return Depth({p: kernels.get(p, 0.0) for p in order}, {p: syncs.get(p, 0.0) for p in order},
               loops, {p: threefry.get(p, 0.0) for p in order})


def report(depth: Depth) -> str:
  """A few lines: totals per part, then every while loop with its trips."""
  per_part = lambda d: ", ".join(f"{p} {v:.0f}" for p, v in d.items())
  lines = [f"serial kernels: {depth.total:.0f}  ({per_part(depth.kernels)})",
           f"  of which in CPU-only threefry loops: {depth.total_threefry:.0f}  "
           f"({per_part(depth.threefry)})",
           f"host syncs (while tests, branch reads): {depth.total_syncs:.0f}  "
           f"({per_part(depth.syncs)})",
           "while loops (how many alike: part, trips, runs per program, kernels per trip):"]
  groups: Dict[tuple, int] = {}
  for l in depth.loops:
    k = (l.part, l.kind, l.trips, l.executions, l.body_kernels, l.threefry)
    groups[k] = groups.get(k, 0) + 1
  for (part, kind, trips, runs, body, tf), n in groups.items():
    trips = f"{kind} {trips}" if kind != "fixed" else f"{trips}"
    lines.append(f"  {n:>3d} x  {part:<12s} trips {trips:<10s} runs {runs:<5.0f} "
                 f"{body:.0f} kernels/trip" + ("  (threefry)" if tf else ""))
  return "\n".join(lines)


if __name__ == "__main__":  # python serial_depth.py FILE.hlo [parts,...]
  import sys
  text = open(sys.argv[1]).read()
  print(json.dumps(serial_depth(text, sys.argv[2].split(",") if len(sys.argv) > 2 else ())
                   .as_dict(), indent=1))
