"""Constant folding, rounding fusion and dead-code removal keep the function and drop the work."""

from __future__ import annotations

import numpy as np
import pytest

from rtl4ml.design import Design
from rtl4ml.estimate.analytic import adder_stats
from rtl4ml.fixed import FixedType
from rtl4ml.graph import GraphBuilder, lower_graph
from rtl4ml.netlist.builder import NetlistBuilder
from rtl4ml.netlist.execute import execute
from rtl4ml.fixed import Wire
from rtl4ml.netlist.ir import Bus, Netlist
from rtl4ml.netlist.prims import Add, Const, Input, Quant, Relu, Scale
from rtl4ml.passes.dce import fold_constants, fuse_relu, fuse_rounding, remove_dead, simplify

from .conftest import boundary_inputs, random_mlp

W8 = Wire(-128, 127, 0)


def test_remove_dead_keeps_inputs_and_drops_unread_work():
    nb = NetlistBuilder()
    a, b, c = nb.input(W8), nb.input(W8), nb.input(W8)
    keep = nb.add(a, b)
    nb.add(b, c, 2)                 # nobody reads this
    nb.relu(nb.add(a, c, 1, True))  # nor this chain
    nl = nb.finish([keep], [nb.wire(keep)])
    out = remove_dead(nl)
    assert out.count(Input) == 3 and out.count(Add) == 1 and out.count(Relu) == 0
    x = np.random.default_rng(0).integers(-128, 128, (50, 3))
    assert np.array_equal(execute(out, x), execute(nl, x))
    assert remove_dead(out) is out


def test_fold_constants_evaluates_constant_subgraphs():
    prims = (Input(W8, (), 0),
             Const(Wire(3, 3, 0), ()),
             Const(Wire(-5, -5, 1), ()),                                        # -2.5
             Add(Wire(1, 1, 1), (1, 2), 0, False),                              # 3 + (-2.5) = 0.5
             Relu(Wire(1, 1, 1), (3,)),                                         # 0.5
             Quant(Wire(1, 1, 0), (4,), FixedType(True, 3, 0, "RND")),          # round(0.5) = 1
             Add(Wire(-127, 128, 0), (0, 5), 0, False),                         # x + 1
             Scale(Wire(-127, 128, 0), (0,), 0, True),                          # -x
             Const(Wire(0, 0, 0), ()),
             Add(W8, (0, 8), 0, False))                                         # x + 0
    outs = (Wire(-127, 128, 0), Wire(-127, 128, 0), W8)
    nl = Netlist(prims, (Bus("x", (1,), (W8,)),), (6, 7, 9), (Bus("y", (3,), outs),))
    out = fold_constants(nl)
    assert out.count(Add) == 1 and out.count(Relu) == 0 and out.count(Quant) == 0
    xq = np.arange(-128, 128).reshape(-1, 1)
    assert np.array_equal(execute(out, xq), execute(nl, xq))
    assert np.array_equal(execute(out, xq)[:, 0], xq[:, 0] + 1)


def biased_rnd_layer(rounding: str, overflow: str = "SAT", relu: bool = False):
    gb = GraphBuilder()
    x = gb.input("fixed<10,4>", 6)
    rng = np.random.default_rng(1)
    w = np.round(rng.normal(size=(6, 4)) * 8) / 8
    y = gb.dense(x, w, np.array([0.375, -1.25, 0.0, 2.0]))
    y = gb.quantize(y, f"fixed<8,3,{rounding},{overflow}>", 4)
    return gb.build(gb.relu(y) if relu else y)


def test_bias_and_round_half_up_fuse_into_one_adder():
    g = biased_rnd_layer("RND")
    nl = lower_graph(g)
    fused = fuse_rounding(nl)
    before, after = adder_stats(nl), adder_stats(fused)
    assert after.adders == before.adders - 3            # three biased outputs, one unbiased
    assert sum(isinstance(p, Quant) and p.target.rounding == "RND" for p in fused.prims) == 1
    x = g.quantize_input(boundary_inputs(g.input.op.types, 3000, np.random.default_rng(2), overshoot=True))
    assert np.array_equal(execute(fused, x), g.emulate_codes(x)[g.outputs[0]])


def relu_rnd_layer(overflow: str, gb: GraphBuilder | None = None, x: str | None = None):
    """``RND(relu(x @ w + b))``, four of five outputs biased (a graph, or its output name)."""
    build = gb is None
    if build:
        gb = GraphBuilder()
        x = gb.input("fixed<10,4>", 6)
    w = np.round(np.random.default_rng(4).normal(size=(6, 5)) * 8) / 8
    y = gb.relu(gb.dense(x, w, np.array([0.375, -1.25, 0.0, 2.0, -0.0625])))
    y = gb.quantize(y, f"ufixed<6,2,RND,{overflow}>", 5)
    return gb.build(y) if build else y


@pytest.mark.parametrize("overflow", ["SAT", "WRAP"])
def test_rounding_fuses_through_a_relu(overflow):
    """Dense -> ReLU -> RND (QReLU, HGQ2 activations): the half LSB moves into the bias."""
    g = relu_rnd_layer(overflow)
    nl = lower_graph(g)
    fused = fuse_rounding(nl)
    assert adder_stats(fused).adders == adder_stats(nl).adders - 4     # four biased outputs
    assert sum(isinstance(p, Quant) and p.target.rounding == "RND" for p in fused.prims) == 1
    x = g.quantize_input(boundary_inputs(g.input.op.types, 4000, np.random.default_rng(5), overshoot=True))
    assert np.array_equal(execute(fused, x), g.emulate_codes(x)[g.outputs[0]])
    assert np.array_equal(execute(simplify(nl), x), g.emulate_codes(x)[g.outputs[0]])


def test_rounding_does_not_fuse_through_a_relu_read_twice():
    gb = GraphBuilder()
    x = gb.input("fixed<10,4>", 3)
    h = gb.relu(gb.dense(x, np.eye(3) * 0.375, np.array([0.25, -0.5, 1.0])))
    g = gb.build([gb.quantize(h, "ufixed<6,2,RND,SAT>", 3), h])
    nl = lower_graph(g)
    assert fuse_rounding(nl) is nl


@pytest.mark.parametrize("rounding", ["TRN", "RND_CONV"])
def test_other_roundings_are_not_fused(rounding):
    nl = lower_graph(biased_rnd_layer(rounding))
    assert fuse_rounding(nl) is nl


@pytest.mark.parametrize("overflow,fused", [("SAT", True), ("SAT_SYM", True), ("WRAP", False)])
def test_relu_after_saturation_becomes_an_unsigned_clamp(overflow, fused):
    g = biased_rnd_layer("TRN", overflow, relu=True)
    nl = lower_graph(g)
    out = fuse_relu(nl)
    assert out.count(Relu) == (0 if fused else nl.count(Relu)) and nl.count(Relu) > 0
    x = g.quantize_input(boundary_inputs(g.input.op.types, 3000, np.random.default_rng(3), overshoot=True))
    assert np.array_equal(execute(out, x), g.emulate_codes(x)[g.outputs[0]])


def test_pruned_weights_and_zero_columns_cost_nothing():
    gb = GraphBuilder()
    x = gb.input("fixed<8,3>", 4)
    w = np.array([[1.5, 0, 0.25], [0, 0, -2.0], [0.75, 0, 0], [0, 0, 0]])   # column 1 and input 3 dead
    h = gb.relu(gb.dense(x, w, np.array([0.0, -3.0, 0.0])))                # neuron 1 is ReLU(-3) = 0
    g = gb.build(gb.dense(h, np.array([[1.0], [5.0], [-1.0]]), np.zeros(1)))
    nl = simplify(lower_graph(g))
    # neuron 1 is constant zero, so its outgoing weight 5.0 costs nothing either
    assert adder_stats(nl).adders == adder_stats(simplify(lower_graph(_without_dead(g)))).adders
    xq = g.quantize_input(boundary_inputs(g.input.op.types, 500, np.random.default_rng(0)))
    assert np.array_equal(execute(nl, xq), g.emulate_codes(xq)[g.outputs[0]])


def _without_dead(g):
    gb = GraphBuilder()
    x = gb.input("fixed<8,3>", 4)
    h = gb.relu(gb.dense(x, np.array([[1.5, 0.25], [0, -2.0], [0.75, 0], [0, 0]]), np.zeros(2)))
    return gb.build(gb.dense(h, np.array([[1.0], [-1.0]]), np.zeros(1)))


@pytest.mark.parametrize("seed", range(10))
def test_simplify_preserves_random_networks(seed):
    rng = np.random.default_rng(50 + seed)
    g = random_mlp(rng, max_in=8, max_layers=3)
    nl = lower_graph(g)
    out = simplify(nl)
    assert len(out.prims) <= len(nl.prims)
    x = g.quantize_input(boundary_inputs(g.input.op.types, 400, rng, overshoot=True))
    assert np.array_equal(execute(out, x), g.emulate_codes(x)[g.outputs[0]])


@pytest.mark.hw
def test_fused_rounding_and_relu_match_in_rtl():
    """Both fusions (quantize -> ReLU, ReLU -> RND) in one Verilator build."""
    gb = GraphBuilder()
    x = gb.input("fixed<10,4>", 6)
    rng = np.random.default_rng(1)
    w = np.round(rng.normal(size=(6, 4)) * 8) / 8
    y = gb.quantize(gb.dense(x, w, np.array([0.375, -1.25, 0.0, 2.0])), "fixed<8,3,RND,SAT>", 4)
    g = gb.build(gb.concat([gb.relu(y), relu_rnd_layer("SAT", gb, x)]))
    assert adder_stats(fuse_rounding(lower_graph(g))).adders == adder_stats(lower_graph(g)).adders - 7
    d = Design(g, name="fused_rnd", clock_ns=2.0)
    assert adder_stats(d.netlist).adders < adder_stats(lower_graph(g)).adders
    assert d.netlist.count(Relu) == 5            # only the ReLUs before the RND quantizer remain
    x = boundary_inputs(g.input.op.types, 3000, np.random.default_rng(5), overshoot=True)
    r = d.verify(x)
    assert r.ok, str(r)
