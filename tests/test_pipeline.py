"""Pipeline scheduling: fewest stages, every stage meets the clock, registers placed correctly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtl4ml.design import Design
from rtl4ml.graph import lower_graph
from rtl4ml.netlist.builder import NetlistBuilder
from rtl4ml.netlist.execute import execute
from rtl4ml.fixed import Wire
from rtl4ml.netlist.prims import Add, Reg
from rtl4ml.passes.dce import simplify
from rtl4ml.passes.pipeline import DEFAULT_DELAY_MODEL, DelayModel, _asap, _n_stages, schedule_pipeline

from .conftest import boundary_inputs, random_mlp


def chain(k: int, width: int = 8):
    """``x0 + x1 + ... + xk`` as a chain of k adders."""
    nb = NetlistBuilder()
    xs = [nb.input(Wire(-(1 << (width - 1)), (1 << (width - 1)) - 1, 0)) for _ in range(k + 1)]
    acc = xs[0]
    for x in xs[1:]:
        acc = nb.add(acc, x)
    return nb.finish([acc], [nb.wire(acc)])


def critical_path(nl, model=DEFAULT_DELAY_MODEL) -> float:
    """Longest combinational path of an unpipelined netlist."""
    t = [0.0] * len(nl.prims)
    for k, p in enumerate(nl.prims):
        t[k] = max((t[a] for a in p.args), default=0.0) + model.delay(p, nl)
    return max(t, default=0.0)


@pytest.mark.parametrize("k,clock", [(1, 5.0), (6, 1.0), (12, 2.0), (12, 0.7), (20, 3.3)])
def test_chain_gets_the_fewest_stages(k, clock):
    nl = chain(k)
    out, rep = schedule_pipeline(nl, clock)
    delays = [DEFAULT_DELAY_MODEL.delay(p, nl) for p in nl.prims if isinstance(p, Add)]
    # a chain of adders: greedy packing is optimal, and no schedule beats the total-delay bound
    stages, t = 1, 0.0
    for d in delays:
        if t + d > clock:
            stages, t = stages + 1, 0.0
        t += d
    assert rep.latency_cycles == stages >= math.ceil(sum(delays) / clock - 1e-9)
    assert rep.meets_timing and len(rep.stage_delay_ns) == rep.stages
    assert out.latency == rep.latency_cycles


def test_balancing_never_lengthens_the_critical_path():
    rng = np.random.default_rng(0)
    for _ in range(5):
        nl = simplify(lower_graph(random_mlp(rng, max_in=8, max_layers=3)))
        delay = [DEFAULT_DELAY_MODEL.delay(p, nl) for p in nl.prims]
        for clock in (1.0, 2.5):
            if max(delay, default=0) > clock:
                continue
            stage, finish = _asap(nl, delay, clock)
            asap_cp = max(finish, default=0.0)
            _, rep = schedule_pipeline(nl, clock)
            assert rep.stages == _n_stages(nl, stage)          # balancing keeps the minimum
            assert rep.critical_path_ns <= asap_cp + 1e-9
            assert rep.meets_timing


@pytest.mark.parametrize("seed", range(8))
def test_pipelined_netlist_computes_the_same_and_registers_line_up(seed):
    rng = np.random.default_rng(seed)
    graph = random_mlp(rng, max_in=8, max_layers=3)
    nl = simplify(lower_graph(graph, cmvm="cse"))
    clock = float(rng.choice([0.8, 1.5, 4.0]))
    out, rep = schedule_pipeline(nl, clock)
    x = graph.quantize_input(boundary_inputs(graph.input.op.types, 200, rng, overshoot=True))
    assert np.array_equal(execute(out, x), execute(nl, x))
    # every path from the input bus to an output crosses exactly `latency` registers
    regs = [0] * len(out.prims)
    for k, p in enumerate(out.prims):
        depth = {regs[a] for a in p.args if not out.prims[a].wire.is_const}
        assert len(depth) <= 1, "operands from different cycles"
        regs[k] = (depth.pop() if depth else 0) + isinstance(p, Reg)
    for o in out.outputs:
        assert out.prims[o].wire.is_const or regs[o] == rep.latency_cycles
    assert rep.register_bits == sum(p.wire.width for p in out.prims if isinstance(p, Reg))


def test_slower_clock_never_needs_more_stages():
    rng = np.random.default_rng(3)
    nl = simplify(lower_graph(random_mlp(rng, max_in=8, max_layers=3)))
    stages = [schedule_pipeline(nl, c)[1].stages for c in (1.0, 1.5, 2.5, 5.0, 50.0)]
    assert stages == sorted(stages, reverse=True) and stages[-1] == 1


def test_report_and_errors():
    _, rep = schedule_pipeline(chain(3), 10.0)
    assert rep.stages == 1 and rep.register_bits > 0 and rep.critical_path_ns == pytest.approx(critical_path(chain(3)))
    with pytest.raises(ValueError, match="clock_ns"):
        schedule_pipeline(chain(1), 0)


def test_delay_model_is_the_documented_calibration():
    m = DelayModel()
    assert m.adder(16) == pytest.approx(0.5 + 16 * 0.015)
    assert m.adder(32) - m.adder(0) == pytest.approx(32 / 4 * 0.06)   # one CARRY4 hop per 4 bits


@pytest.mark.hw
def test_deeply_pipelined_design_matches_in_rtl():
    rng = np.random.default_rng(21)
    graph = random_mlp(rng, max_in=8, max_layers=3)
    d = Design(graph, name="deep_pipe", clock_ns=0.9)
    assert d.pipeline.stages >= 3 and d.pipeline.meets_timing
    x = boundary_inputs(graph.input.op.types, 1500, rng, overshoot=True)
    r = d.verify(x)
    assert r.ok, str(r)


def test_saturation_delay_is_a_lut_tree_not_a_carry_chain():
    """A saturating quantizer costs LUT levels for its top-bit test, growing with log6 of the bits checked."""
    from rtl4ml.fixed import FixedType

    def sat_delay(in_bits: int) -> float:
        b = NetlistBuilder()
        x = b.input(Wire(-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1, 0))
        q = b.quant(x, FixedType(True, 7, 0, "TRN", "SAT"))
        nl = b.finish([q], [b.wire(q)])
        return DEFAULT_DELAY_MODEL.delay(nl.prims[q], nl)

    assert sat_delay(12) == 2 * DEFAULT_DELAY_MODEL.mux_ns  # 5 top bits: one LUT level, then the select
    assert sat_delay(40) == 3 * DEFAULT_DELAY_MODEL.mux_ns  # 33 bits: two levels
    assert sat_delay(40) < DEFAULT_DELAY_MODEL.adder(40)
