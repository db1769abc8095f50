"""Pipeline scheduling: the fewest register stages that meet the clock, then balanced.

1. **Fewest stages.** As-soon-as-possible packing: every primitive joins the stage of its
   latest operand unless its delay would overflow that stage, in which case it starts the
   next stage. On a DAG with a fixed delay per primitive this is optimal: by induction no
   schedule can finish any primitive in an earlier stage, so none has fewer stages.
2. **Balance the stages.** With the stage count ``L`` fixed, the smallest period ``T`` that
   still packs into ``L`` stages is found by bisection; packing at ``T`` instead of at the
   target clock spreads the logic evenly, so the worst stage has the most slack.
3. **Fewest register bits.** Every primitive may sit anywhere between its as-soon-as-possible
   and as-late-as-possible stage (both at ``T``, same ``L``). Three placements are compared
   and the one needing the fewest register bits is kept: all as soon as possible, all as
   late as possible, and a mixed one where a primitive whose result is wider than its
   operands moves late (its narrow operands are registered instead of its wide result).

Outputs are registered, so the latency is the number of stages (at least one cycle).
Constants and wiring cost no time; the delay model is documented in :class:`DelayModel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..netlist.ir import Netlist, Prim
from ..netlist.prims import Reg
from ..netlist.rewrite import Rewriter
from .dce import remove_dead


@dataclass(frozen=True)
class DelayModel:
    """Combinational delays in ns of the Netlist primitives on the target device.

    Calibration (``benchmarks/pipeline_calibration.py``, Yosys ``synth_xilinx -family xcup``
    then ``ltp -noff``): a registered ``w``-bit adder maps to one LUT level feeding a carry
    chain of ``ceil(w/4)`` CARRY4 cells, and its longest path is ``5 + w/4`` cells for
    w = 4, 8, 16, 32 exactly; chaining adders adds one LUT level each before Yosys merges
    them (merging only shortens the path, so the per-adder model is conservative). Yosys
    gives cell counts, not nanoseconds: the per-cell figures are UltraScale+ (-2) typical
    values, one LUT level with its local routing 0.5 ns and a CARRY4 hop 0.06 ns
    (0.015 ns/bit). ``adder_ns`` therefore covers one LUT level plus routing into the carry
    chain, ``adder_ns_per_bit`` the ripple. A saturation is an OR/AND tree over the top bits
    (``ceil(log6 k)`` LUT levels for ``k`` bits) and one select level, ``mux_ns`` each.
    """

    adder_ns: float = 0.5
    adder_ns_per_bit: float = 0.015
    mux_ns: float = 0.35           # a LUT level: ReLU select, saturation select

    def adder(self, width: int) -> float:
        return self.adder_ns + self.adder_ns_per_bit * width

    def multiplier(self, width_a: int, width_b: int) -> float:
        """A LUT-based multiplier: partial products, then an adder tree of ``ceil(log2(rows))``
        levels as wide as the product (rough: not calibrated on Yosys like the adder)."""
        rows = max(min(width_a, width_b), 1)
        return self.mux_ns + max(math.ceil(math.log2(rows)), 1) * self.adder(width_a + width_b)

    def table(self, address_bits: int) -> float:
        """A ROM of ``2**address_bits`` entries: one LUT6 level, then a MUXF7/MUXF8 or LUT level
        per two address bits beyond six (rough)."""
        return self.mux_ns * (1 + math.ceil(max(address_bits - 6, 0) / 2))

    def delay(self, p: Prim, nl: Netlist, k: int | None = None) -> float:
        """Delay of primitive ``p`` (number ``k`` of ``nl``, when known) in ns."""
        wires = nl.operand_wires[k] if k is not None else tuple(nl.prims[a].wire for a in p.args)
        return p.delay(wires, self)


DEFAULT_DELAY_MODEL = DelayModel()


@dataclass(frozen=True)
class PipelineReport:
    clock_ns: float
    latency_cycles: int
    stage_delay_ns: tuple[float, ...]   # critical path of each stage
    register_bits: int = 0              # pipeline register bits inserted

    @property
    def stages(self) -> int:
        return self.latency_cycles

    @property
    def critical_path_ns(self) -> float:
        return max(self.stage_delay_ns, default=0.0)

    @property
    def meets_timing(self) -> bool:
        return self.critical_path_ns <= self.clock_ns + 1e-9


def _live_args(nl: Netlist, p: Prim) -> list[int]:
    return [a for a in p.args if not nl.prims[a].wire.is_const]


def _earliest_start(live: list[int], stage: list[int], finish: list[float], d: float,
                    period: float) -> tuple[int, float]:
    """Stage and start time of a primitive of delay ``d`` packed right after its operands."""
    s = max((stage[a] for a in live), default=0)
    t = max((finish[a] for a in live if stage[a] == s), default=0.0)
    if t > 0 and t + d > period + 1e-12:
        s, t = s + 1, 0.0
    return s, t


def _asap(nl: Netlist, delay: list[float], period: float) -> tuple[list[int], list[float]]:
    """Earliest stage of every primitive and its finish time within that stage."""
    stage = [0] * len(nl.prims)
    finish = [0.0] * len(nl.prims)
    for k, p in enumerate(nl.prims):
        if not p.args:
            continue
        s, t = _earliest_start(_live_args(nl, p), stage, finish, delay[k], period)
        stage[k], finish[k] = s, t + delay[k]
    return stage, finish


def _n_stages(nl: Netlist, stage: list[int]) -> int:
    return max((stage[o] for o in nl.outputs if not nl.prims[o].wire.is_const), default=0) + 1


def _alap(nl: Netlist, delay: list[float], period: float, last: int) -> tuple[list[int], list[float]]:
    """Latest stage of every primitive and the latest time it may finish there."""
    n = len(nl.prims)
    stage = [last] * n
    due = [period] * n
    consumers: list[list[int]] = [[] for _ in range(n)]
    for k, p in enumerate(nl.prims):
        for a in _live_args(nl, p):
            consumers[a].append(k)
    for k in range(n - 1, -1, -1):
        best = (last, period)
        for c in consumers[k]:
            start = due[c] - delay[c]   # latest start of c within its stage
            best = min(best, (stage[c], start) if start >= delay[k] - 1e-12 else (stage[c] - 1, period))
        stage[k], due[k] = best
        if not nl.prims[k].args:   # the bus arrives in cycle 0
            stage[k], due[k] = 0, 0.0
    return stage, due


def _fits(nl: Netlist, delay: list[float], period: float, stages: int) -> bool:
    return _n_stages(nl, _asap(nl, delay, period)[0]) <= stages


def schedule_pipeline(nl: Netlist, clock_ns: float, model: DelayModel = DEFAULT_DELAY_MODEL) -> tuple[Netlist, PipelineReport]:
    """Return ``nl`` with pipeline registers inserted, and the per-stage critical paths.

    Primitives that no output reads are dropped first: they would need no registers but
    could sit in stages beyond the outputs'.
    """
    if not clock_ns > 0:
        raise ValueError(f"clock_ns must be positive, got {clock_ns!r}")
    nl = remove_dead(nl)
    n = len(nl.prims)
    delay = [model.delay(p, nl, k) for k, p in enumerate(nl.prims)]
    asap, _ = _asap(nl, delay, clock_ns)
    stages = _n_stages(nl, asap)

    # balance: the shortest period that still needs no more stages
    lo, hi = max(delay, default=0.0), clock_ns
    if lo < hi and stages > 1:
        for _ in range(8):
            mid = (lo + hi) / 2
            if _fits(nl, delay, mid, stages):
                hi = mid
            else:
                lo = mid
    period = max(hi, max(delay, default=0.0))
    early, _ = _asap(nl, delay, period)
    latency = _n_stages(nl, early)
    late, due = _alap(nl, delay, period, latency - 1)
    candidates = [early, _place(nl, delay, period, early, late, due)]
    if _valid(nl, delay, period, late):
        candidates.append(late)
    stage = min((c for c in candidates if _n_stages(nl, c) <= latency), key=lambda c: _register_bits(nl, c, latency))

    finish = [0.0] * n
    stage_delay = [0.0] * latency
    for k, p in enumerate(nl.prims):
        if not p.args:
            continue
        t = max((finish[a] for a in _live_args(nl, p) if stage[a] == stage[k]), default=0.0) + delay[k]
        finish[k] = t
        stage_delay[stage[k]] = max(stage_delay[stage[k]], t)
    out, reg_bits = _insert_registers(nl, stage, latency)
    return out, PipelineReport(clock_ns, latency, tuple(round(t, 6) for t in stage_delay), reg_bits)


def _place(nl: Netlist, delay: list[float], period: float, early: list[int], late: list[int],
           due: list[float]) -> list[int]:
    """Stages between as-soon and as-late as possible that keep register bits low."""
    n = len(nl.prims)
    stage = list(early)
    finish = [0.0] * n
    for k, p in enumerate(nl.prims):
        if not p.args:
            continue
        live = _live_args(nl, p)
        s0, t0 = _earliest_start(live, stage, finish, delay[k], period)
        s, t = s0, t0 + delay[k]
        in_bits = sum(nl.prims[a].wire.width for a in set(live))
        if late[k] > s and p.wire.width > in_bits:
            # register the narrow operands rather than the wide result: start fresh later
            s, t = late[k], delay[k]
            if t > due[k] + 1e-12:
                s, t = s0, t0 + delay[k]
        stage[k], finish[k] = s, t
    return stage


def _valid(nl: Netlist, delay: list[float], period: float, stage: list[int]) -> bool:
    """Does every stage of the assignment fit the period (operands never from later stages)?"""
    finish = [0.0] * len(nl.prims)
    for k, p in enumerate(nl.prims):
        if not p.args:
            continue
        live = _live_args(nl, p)
        if any(stage[a] > stage[k] for a in live):
            return False
        finish[k] = max((finish[a] for a in live if stage[a] == stage[k]), default=0.0) + delay[k]
        if finish[k] > period + 1e-9:
            return False
    return True


def _register_bits(nl: Netlist, stage: list[int], latency: int) -> int:
    """Pipeline register bits an assignment needs (each value held until its last reader)."""
    last = [stage[k] for k in range(len(nl.prims))]
    for k, p in enumerate(nl.prims):
        for a in p.args:
            last[a] = max(last[a], stage[k])
    for o in nl.outputs:
        last[o] = latency
    return sum((last[k] - stage[k]) * p.wire.width for k, p in enumerate(nl.prims) if not p.wire.is_const)


def _insert_registers(nl: Netlist, stage: list[int], latency: int) -> tuple[Netlist, int]:
    r = Rewriter(nl)
    delayed: dict[tuple[int, int], int] = {}
    bits = 0

    def at_stage(a: int, s: int) -> int:
        """New id of old wire ``a`` as seen in stage ``s`` (through registers)."""
        nonlocal bits
        cur = r.new_id[a]
        if nl.prims[a].wire.is_const:
            return cur
        src = nl.prims[a]
        for d in range(1, s - stage[a] + 1):
            key = (a, d)
            if key not in delayed:
                delayed[key] = r.emit(Reg(src.wire, (cur,), origin=src.origin))
                bits += src.wire.width
            cur = delayed[key]
        return cur

    for k, p in enumerate(nl.prims):
        r.new_id[k] = r.emit(p.with_args([at_stage(a, stage[k]) for a in p.args]))
    outputs = [at_stage(o, latency) for o in nl.outputs]
    return r.finish(outputs, latency), bits
