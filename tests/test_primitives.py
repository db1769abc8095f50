"""Every Netlist primitive owns its meaning, and each part of it agrees with the others:
evaluation, constant folding, the inferred interval, and the Verilog (through Verilator)."""

from __future__ import annotations

import numpy as np
import pytest

from rtl4ml.backends.verilog import emit_verilog
from rtl4ml.fixed import FixedType, Wire
from rtl4ml.netlist.builder import NetlistBuilder
from rtl4ml.netlist.execute import execute
from rtl4ml.netlist.ir import PRIMITIVES, REQUIRED_METHODS, Cost, ExecContext, Prim
from rtl4ml.netlist.prims import COMPARISONS, Lookup
from rtl4ml.passes.pipeline import DEFAULT_DELAY_MODEL, schedule_pipeline
from rtl4ml.verify.verilator import lint, simulate


def random_wire(rng, max_bits: int = 12) -> Wire:
    """Mostly intervals around zero (so comparisons are not decided by the types alone)."""
    span = 1 << int(rng.integers(2, max_bits + 1))
    lo = -int(rng.integers(0, span)) if rng.random() < 0.8 else int(rng.integers(0, span))
    return Wire(lo, lo + span, int(rng.integers(-3, 6)))


def _lookup(nb, a, rng):
    w = nb.wire(a)
    if w.hi - w.lo > 300:   # keep tables small: a narrower copy of the operand first
        a = nb.quant(a, FixedType(True, 7, 0, "TRN", "SAT"))
        w = nb.wire(a)
    table = rng.integers(-50, 50, w.hi - w.lo + 1)
    return nb.lookup(a, table, int(rng.integers(-2, 4)))


#: How to make each primitive from random operands: ``(builder, a, b, c, rng) -> wire``.
CASES = {
    "Input": lambda nb, a, b, c, rng: a,
    "Const": lambda nb, a, b, c, rng: nb.add(a, nb.const(int(rng.integers(-9, 9)), int(rng.integers(-2, 3)))),
    "Add": lambda nb, a, b, c, rng: nb.add(a, b, int(rng.integers(-3, 4)), bool(rng.integers(2))),
    "Scale": lambda nb, a, b, c, rng: nb.scale(a, int(rng.integers(-3, 4)), bool(rng.integers(2))),
    "Mul": lambda nb, a, b, c, rng: nb.mul(a, b),
    "Bit": lambda nb, a, b, c, rng: nb.add(a, nb.bit(b, int(rng.integers(0, 14)))),
    "Relu": lambda nb, a, b, c, rng: nb.relu(a),
    "Compare": lambda nb, a, b, c, rng: nb.compare(str(rng.choice(COMPARISONS)), a, b),
    "Select": lambda nb, a, b, c, rng: nb.select(nb.compare("lt", c, a), a, b),
    "Max": lambda nb, a, b, c, rng: nb.maximum(a, b),
    "Min": lambda nb, a, b, c, rng: nb.minimum(a, b),
    "Quant": lambda nb, a, b, c, rng: nb.quant(a, FixedType(bool(rng.integers(2)), int(rng.integers(1, 8)),
                                                            int(rng.integers(-1, 5)),
                                                            str(rng.choice(["TRN", "RND", "RND_CONV"])),
                                                            str(rng.choice(["WRAP", "SAT", "SAT_SYM"])))),
    "Lookup": lambda nb, a, b, c, rng: _lookup(nb, a, rng),
    "Reg": None,   # inserted by the pipeline scheduler, exercised by every scheduled netlist below
}


def test_every_primitive_has_a_case_and_defines_its_meaning():
    assert set(CASES) == set(PRIMITIVES), "a primitive without a test case (or a stale case)"
    for name, cls in PRIMITIVES.items():
        for m in REQUIRED_METHODS:
            owner = next(c for c in cls.__mro__ if m in c.__dict__)
            assert owner is not Prim, f"{name} inherits {m} from Prim"


def test_a_primitive_missing_part_of_its_meaning_is_refused():
    with pytest.raises(TypeError, match="Half does not define delay, cost, verilog"):
        class Half(Prim):
            @classmethod
            def output(cls, wires, **params):
                return wires[0]

            def evaluate(self, vals, wires, ctx):
                return vals[0]

            def fold(self, codes, wires):
                return codes[0]


def random_netlist(rng, n_inputs: int = 6, n_prims: int = 60, max_bits: int = 12):
    nb = NetlistBuilder()
    xs = [nb.input(random_wire(rng, max_bits)) for _ in range(n_inputs)]
    pool = list(xs)
    kinds = [k for k, f in CASES.items() if f is not None]
    made = {k: 0 for k in kinds}
    for i in range(n_prims):
        kind = kinds[i % len(kinds)]
        src = xs if rng.random() < 0.6 else pool   # mostly inputs: wide, signed, overlapping ranges
        a, b, c = (src[int(rng.integers(len(src)))] for _ in range(3))
        before = len(nb.prims)
        w = CASES[kind](nb, a, b, c, rng)
        if nb.wire(w).width <= 40:
            pool.append(w)
        made[kind] += kind in {type(p).__name__ for p in nb.prims[before:] + [nb.prims[w]]}   # made or returned one
    outs = pool[n_inputs:]
    return nb.finish(outs), made


def values_of_every_wire(nl, xq):
    """Evaluate every primitive (no freeing), to check each one separately."""
    ctx = ExecContext(xq, len(xq))
    v = []
    for k, p in enumerate(nl.prims):
        v.append(p.evaluate([v[a] for a in p.args], nl.operand_wires[k], ctx))
    return v


@pytest.mark.parametrize("seed", range(8))
def test_evaluation_folding_and_intervals_agree(seed):
    rng = np.random.default_rng(seed)
    nl, made = random_netlist(rng)
    assert sum(made.values()) > 25
    xq = np.stack([rng.integers(t.lo, t.hi + 1, 300) for t in nl.input_types], axis=1)
    xq[:3] = [[t.lo for t in nl.input_types], [t.hi for t in nl.input_types], [0] * len(nl.input_types)]
    xq[2] = np.clip(xq[2], [t.lo for t in nl.input_types], [t.hi for t in nl.input_types])
    v = values_of_every_wire(nl, xq)
    for k, p in enumerate(nl.prims):
        assert (v[k] >= p.wire.lo).all() and (v[k] <= p.wire.hi).all(), f"{p} leaves its interval"
        if p.args:
            for s in range(0, 300, 37):   # folding the operands' values gives the evaluated value
                codes = [int(v[a][s]) for a in p.args]
                assert p.fold(codes, nl.operand_wires[k]) == v[k][s], p
        assert isinstance(p.cost(nl.operand_wires[k]), Cost)
        assert p.delay(nl.operand_wires[k], DEFAULT_DELAY_MODEL) >= 0


def test_builder_folds_constants_through_every_primitive():
    rng = np.random.default_rng(5)
    for _ in range(200):
        nb = NetlistBuilder()
        a = nb.const(int(rng.integers(-40, 40)), int(rng.integers(-2, 4)))
        b = nb.const(int(rng.integers(-40, 40)), int(rng.integers(-2, 4)))
        kind = str(rng.choice([k for k, f in CASES.items() if f is not None and k != "Input"]))
        w = CASES[kind](nb, a, b, a, rng)
        assert nb.wire(w).is_const, kind


@pytest.mark.hw
def test_every_primitive_in_rtl_matches_the_executor():
    """Many random primitives in one Verilator build, pipelined at two clocks: bit-exact."""
    rng = np.random.default_rng(99)
    nl, made = random_netlist(rng, n_inputs=8, n_prims=400, max_bits=14)
    assert all(n > 0 for n in made.values()), made
    xq = np.stack([rng.integers(t.lo, t.hi + 1, 3000) for t in nl.input_types], axis=1)
    for clock in (1.0,):
        piped, rep = schedule_pipeline(nl, clock)
        assert rep.stages >= 2
        verilog = emit_verilog(piped, "prims")
        lint(verilog, "prims")
        sim = simulate(piped, verilog, "prims", xq)
        np.testing.assert_array_equal(sim.codes, execute(nl, xq))
        assert sim.bad_valid == 0


def test_lookup_table_must_cover_its_operand():
    nb = NetlistBuilder()
    a = nb.input(Wire(-2, 3, 0))
    with pytest.raises(ValueError, match="needs 6 entries, got 4"):
        nb.lookup(a, [1, 2, 3, 4], 0)
    assert isinstance(nb.prims[nb.lookup(a, range(6), 1)], Lookup)
