"""RTL == emulator == netlist executor, through Verilator, on random and real networks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rtl4ml
from rtl4ml.design import Design
from rtl4ml.fixed import Wire
from rtl4ml.verify.verilator import lint, pack_bus, simulate, unpack_bus

from .conftest import boundary_inputs, random_mlp

pytestmark = pytest.mark.hw


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_bus_pack_unpack_round_trip(data):
    n = data.draw(st.integers(1, 12))
    slots = []
    for _ in range(n):
        lo = data.draw(st.integers(-(2**45), 2**45))
        hi = data.draw(st.integers(lo, lo + 2**20))
        slots.append(Wire(lo, hi, 0))
    codes = np.array([[data.draw(st.integers(s.lo, s.hi)) for s in slots] for _ in range(5)], dtype=np.int64)
    np.testing.assert_array_equal(unpack_bus(pack_bus(codes, tuple(slots)), tuple(slots)), codes)


@pytest.mark.parametrize("seed,clock_ns", [(0, 5.0), (1, 1.0), (2, 2.5), (3, 0.8), (4, 3.0), (5, 10.0)])
def test_random_mlp_rtl_is_bit_exact(seed, clock_ns):
    rng = np.random.default_rng(seed)
    g = random_mlp(rng, max_in=6, max_input_width=24 if seed % 2 else 12)
    d = Design(g, name=f"rand{seed}", clock_ns=clock_ns)
    lint(d.verilog, d.name)
    x = boundary_inputs(g.input.op.types, 3000, rng, overshoot=True)
    xq = d.quantize_input(x)
    want = d.predict_codes(x)
    np.testing.assert_array_equal(d.execute_netlist(x), want)
    r = d.verify(x)
    assert r.ok, str(r)
    assert r.n_samples == 3000
    np.testing.assert_array_equal(r.outputs, d.predict(x))
    assert xq.shape == (3000, g.input.op.size)


def test_forty_bit_inputs_rtl(rng):
    g = random_mlp(np.random.default_rng(77), max_in=4, max_layers=2, max_input_width=40)
    while max(g.input.op.types.width) < 30:  # make sure the widths really are wide
        g = random_mlp(rng, max_in=4, max_layers=2, max_input_width=40)
    d = Design(g, name="wide40", clock_ns=2.0)
    x = boundary_inputs(g.input.op.types, 2000, rng)
    r = d.verify(x)
    assert r.ok, str(r)


def test_mismatch_is_reported_with_sample_output_and_bits(rng):
    """Break the Verilog on purpose: verification must catch it and say where."""
    gb = rtl4ml.graph.GraphBuilder()
    y = gb.relu(gb.dense(gb.input("fixed<8,3>", 3), np.array([[1.5, -0.25], [0.5, 2.0], [-1.0, 0.75]]),
                         np.array([0.5, 0.0])))
    g = gb.build(y)
    d = Design(g, name="broken", clock_ns=5.0)
    x = boundary_inputs(g.input.op.types, 500, rng)
    width = d.netlist.output_types[0].width
    broken = d.verilog
    line = next(ln for ln in broken.splitlines() if ln.startswith("  assign out_bus["))
    broken = broken.replace(line, line.replace(" = ", " = ~(", 1).replace(";", ");"), 1)
    sim = simulate(d.netlist, broken, d.name, d.quantize_input(x))
    want = d.predict_codes(x)
    assert (sim.codes[:, 0] != want[:, 0]).all()
    d.__dict__["verilog"] = broken  # the cached property, replaced
    r = d.verify(x)
    assert not r.ok and r.n_mismatch == 500
    assert r.first_mismatch.sample == 0 and r.first_mismatch.output == 0
    assert f"{r.first_mismatch.expected % (1 << width):0{width}b}" in str(r)
    assert "0b" in str(r.first_mismatch)


def test_verilog_is_deterministic(rng):
    g = random_mlp(np.random.default_rng(11))
    a = Design(g, name="det", clock_ns=2.0).verilog
    b = Design(rtl4ml.graph.Graph.from_json(g.to_json()), name="det", clock_ns=2.0).verilog
    assert a == b


@pytest.fixture(scope="module")
def jet_mlp():
    """A 16-64-32-32-5 MLP trained briefly on the shipped jets."""
    pytest.importorskip("torch")
    from rtl4ml.data import load_jets
    from rtl4ml.demo import train_float_mlp
    jets = load_jets()
    x = jets["features"].astype(np.float64)
    x = (x - x.mean(0)) / x.std(0)
    model = train_float_mlp(x[:6000], jets["labels"][:6000].astype(np.int64), hidden=(64, 32, 32), epochs=3)
    return model, x, jets["labels"].astype(np.int64)


def test_jet_mlp_on_real_jets_is_bit_exact(jet_mlp):
    model, x, y = jet_mlp
    d = rtl4ml.convert(model, input_type="fixed<16,6>", weight_type="fixed<8,3,RND,SAT>",
                       result_type="fixed<16,6,RND,SAT>", clock_ns=5.0, name="jet")
    lint(d.verilog, d.name)
    want = d.predict_codes(x)
    np.testing.assert_array_equal(d.execute_netlist(x), want)
    r = d.verify(x)
    assert r.ok and r.n_samples == len(x) == 10000, str(r)
    assert (d.predict(x).argmax(1) == y).mean() > 0.55  # it is a real classifier, not noise


def test_every_quantizer_mode_in_rtl(rng):
    """Per-element quantizers of every rounding x overflow mode on one input, summed, in one build."""
    from .conftest import OVERFLOWS, ROUNDINGS, random_types
    from rtl4ml.netlist.prims import Quant
    n = 40
    g = rtl4ml.graph.GraphBuilder()
    x = g.input(random_types(rng, n, 20))
    acc = None
    for r in ROUNDINGS:
        for o in OVERFLOWS:
            q = g.quantize(x, random_types(rng, n, 14, rounding=r, overflow=o), name=f"q_{r}_{o}")
            if r == "RND" and o == "SAT":
                q = g.relu(q)
            acc = q if acc is None else g.add(acc, q)
    d = Design(g.build(acc), name="qmodes", clock_ns=1.0)
    modes = {(p.target.rounding, p.target.overflow) for p in d.netlist.prims if isinstance(p, Quant)}
    assert len(modes) == 9 and d.netlist.count(Quant) > 200
    lint(d.verilog, d.name)
    xs = boundary_inputs(g.nodes[0].op.types, 4000, rng, overshoot=True)
    np.testing.assert_array_equal(d.execute_netlist(xs), d.predict_codes(xs))
    r = d.verify(xs)
    assert r.ok, str(r)
