"""Pipeline scheduling: place registers so every stage fits the target clock period.

The delay model is deliberately simple and documented (docs/design.md): an adder costs a
fixed LUT-plus-routing delay and a carry-chain delay per bit; wiring (shifts, truncation)
is free. Scheduling is as-soon-as-possible: each primitive joins the stage of its latest
operand unless its delay would overflow that stage's budget, in which case it starts the
next stage. Outputs are always registered, so the latency is at least one cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..netlist.ir import Add, Const, Input, Netlist, Prim, Quant, Reg, Relu, Scale


@dataclass(frozen=True)
class DelayModel:
    """Combinational delays in ns of the Netlist primitives on the target device."""

    adder_ns: float = 0.5          # one LUT level plus local routing
    adder_ns_per_bit: float = 0.015  # carry-chain propagation per output bit
    mux_ns: float = 0.35           # a LUT level: ReLU select, saturation select

    def adder(self, width: int) -> float:
        return self.adder_ns + self.adder_ns_per_bit * width

    def delay(self, p: Prim, nl: Netlist) -> float:
        if isinstance(p, Add) or (isinstance(p, Scale) and p.negate):
            return self.adder(p.wire.width)
        if isinstance(p, Relu):
            return self.mux_ns
        if isinstance(p, Quant):
            src = nl.prims[p.a].wire
            t = self.adder(src.width + 1) if p.target.rounding != "TRN" and src.fraction > p.target.fraction else 0.0
            if p.target.overflow != "WRAP" and (p.wire.lo, p.wire.hi) != (src.lo, src.hi):
                t += self.adder(src.width) + self.mux_ns  # compare, then select
            return t
        return 0.0


DEFAULT_DELAY_MODEL = DelayModel()


@dataclass(frozen=True)
class PipelineReport:
    clock_ns: float
    latency_cycles: int
    stage_delay_ns: tuple[float, ...]   # critical path of each stage

    @property
    def critical_path_ns(self) -> float:
        return max(self.stage_delay_ns, default=0.0)

    @property
    def meets_timing(self) -> bool:
        return self.critical_path_ns <= self.clock_ns


def schedule_pipeline(nl: Netlist, clock_ns: float, model: DelayModel = DEFAULT_DELAY_MODEL) -> tuple[Netlist, PipelineReport]:
    """Return ``nl`` with pipeline registers inserted, and the per-stage critical paths."""
    if not clock_ns > 0:
        raise ValueError(f"clock_ns must be positive, got {clock_ns!r}")
    n = len(nl.prims)
    stage = [0] * n
    finish = [0.0] * n
    for k, p in enumerate(nl.prims):
        if isinstance(p, (Input, Const)):
            continue
        live = [a for a in p.args if not isinstance(nl.prims[a], Const)]
        s = max((stage[a] for a in live), default=0)
        t = max((finish[a] for a in live if stage[a] == s), default=0.0)
        d = model.delay(p, nl)
        if t > 0 and t + d > clock_ns:
            s, t = s + 1, 0.0
        stage[k], finish[k] = s, t + d
    latency = max((stage[o] for o in nl.outputs), default=0) + 1

    stage_delay = [0.0] * latency
    for k in range(n):
        if stage[k] < latency:
            stage_delay[stage[k]] = max(stage_delay[stage[k]], finish[k])

    prims: list[Prim] = []
    new_id: dict[int, int] = {}
    delayed: dict[tuple[int, int], int] = {}

    def at_stage(a: int, s: int) -> int:
        """New id of old wire ``a`` as seen in stage ``s`` (through registers)."""
        if isinstance(nl.prims[a], Const):
            return new_id[a]
        depth = s - stage[a]
        cur = new_id[a]
        for d in range(1, depth + 1):
            key = (a, d)
            if key not in delayed:
                prims.append(Reg(nl.prims[a].wire, cur))
                delayed[key] = len(prims) - 1
            cur = delayed[key]
        return cur

    for k, p in enumerate(nl.prims):
        remap = {a: at_stage(a, stage[k]) for a in p.args}
        prims.append(_with_args(p, remap))
        new_id[k] = len(prims) - 1
    outputs = [at_stage(o, latency) if not isinstance(nl.prims[o], Const) else new_id[o] for o in nl.outputs]
    out = Netlist(tuple(prims), nl.input_types, tuple(outputs), nl.output_types, latency)
    return out, PipelineReport(clock_ns, latency, tuple(stage_delay))


def _with_args(p: Prim, remap: dict[int, int]) -> Prim:
    if isinstance(p, Add):
        return replace(p, a=remap[p.a], b=remap[p.b])
    if p.args:
        return replace(p, a=remap[p.a])
    return p
