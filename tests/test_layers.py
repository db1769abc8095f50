"""Convolutions, pooling, upsampling, lookup tables, softmax and the anomaly-score ops:
graph emulator == an independent float64 reference (torch's own functions) == netlist == RTL.

Inputs sit at and beyond their type boundaries; convolutions are drawn at random over
kernel, stride, padding, dilation and groups (hypothesis), so padded borders of every kind
are covered. One Verilator build holds every op.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from rtl4ml.design import Design
from rtl4ml.fixed import quantize
from rtl4ml.graph import Graph, GraphBuilder, GraphError, lower_graph
from rtl4ml.graph import composite
from rtl4ml.netlist.execute import execute, split_outputs

from .conftest import boundary_inputs, random_types


def graph_equals_netlist(g: Graph, xs: list[np.ndarray]) -> list[np.ndarray]:
    """The graph's outputs (values), after checking the netlist executor gives the same codes."""
    q = g.quantize_inputs(xs)
    codes = g.emulate_codes(q)
    nl = lower_graph(g, cmvm="cse")
    for o, got in zip(g.outputs, split_outputs(nl, execute(nl, q))):
        np.testing.assert_array_equal(got, codes[o], err_msg=o)
    return [np.ldexp(codes[o].astype(np.float64), -g.types[o].fraction) for o in g.outputs]


def _t(a) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


CONV = {1: F.conv1d, 2: F.conv2d}
MAXPOOL = {1: F.max_pool1d, 2: F.max_pool2d}
AVGPOOL = {1: F.avg_pool1d, 2: F.avg_pool2d}


@st.composite
def conv_cases(draw):
    nd = draw(st.sampled_from([1, 2]))
    groups = draw(st.sampled_from([1, 2]))
    cin = groups * draw(st.integers(1, 2))
    cout = groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(nd))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    padding = tuple(draw(st.integers(0, 2)) for _ in range(nd))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    size = tuple(draw(st.integers(d * (k - 1) + 1, 7)) for k, d in zip(kernel, dilation))
    return nd, cin, cout, kernel, stride, padding, dilation, groups, size, draw(st.integers(0, 2**16))


@settings(max_examples=30, deadline=None)
@given(conv_cases())
def test_conv_equals_torch_and_netlist(case):
    nd, cin, cout, kernel, stride, padding, dilation, groups, size, seed = case
    rng = np.random.default_rng(seed)
    w = quantize(rng.normal(scale=1.5, size=(cout, cin // groups) + kernel), "fixed<6,2>")
    w[rng.random(w.shape) < 0.2] = 0
    b = quantize(rng.normal(size=cout), "fixed<6,2>")
    g = GraphBuilder()
    types = random_types(rng, cin * int(np.prod(size)), 10).broadcast_to((cin * int(np.prod(size)),))
    x = g.reshape(g.input(types, name="x"), (cin,) + size)
    y = g.conv(x, w, b, stride, padding, dilation, groups, name="conv")
    graph = g.build(y)
    xs = boundary_inputs(types, 300, rng, overshoot=True)
    (got,) = graph_equals_netlist(graph, [xs])
    xq = quantize(xs, types).reshape((-1, cin) + size)
    ref = CONV[nd](_t(xq), _t(w), _t(b), stride, padding, dilation, groups).numpy()
    np.testing.assert_array_equal(got, ref)
    t = graph.types[y]
    codes = np.ldexp(got, t.fraction)
    assert (codes >= t.lo.astype(np.float64)).all() and (codes <= t.hi.astype(np.float64)).all()


@pytest.mark.parametrize("nd", [1, 2])
def test_pooling_and_upsampling_equal_torch(nd, rng):
    c, size = 3, (7,) * nd
    n = c * 7 ** nd
    types = random_types(rng, n, 9).broadcast_to((n,))     # per-element types: windows mix fractions
    g = GraphBuilder()
    x = g.reshape(g.input(types, name="x"), (c,) + size)
    outs = [g.pool(x, "max", 3, stride=2, padding=1, name="max_pad"),
            g.pool(x, "max", 2, name="max"),
            g.pool(x, "max", 2, stride=1, dilation=2, name="max_dil"),
            g.pool(x, "sum", 3, stride=2, padding=1, name="sum_pad"),
            g.upsample(x, 2, name="up")]
    graph = g.build(outs)
    xs = boundary_inputs(types, 300, rng, overshoot=True)
    got = graph_equals_netlist(graph, [xs])
    xq = _t(quantize(xs, types).reshape((-1, c) + size))
    refs = [MAXPOOL[nd](xq, 3, 2, 1), MAXPOOL[nd](xq, 2), MAXPOOL[nd](xq, 2, 1, 0, 2),
            AVGPOOL[nd](xq, 3, 2, 1) * 3 ** nd, F.interpolate(xq, scale_factor=2, mode="nearest")]
    for a, r, name in zip(got, refs, graph.outputs):
        np.testing.assert_allclose(a, r.numpy(), rtol=0, atol=1e-12, err_msg=name)


def test_all_negative_inputs_to_max_pool_and_relu():
    g = GraphBuilder()
    x = g.input("fixed<8,3>", (2, 4))
    graph = g.build([g.pool(x, "max", 2, padding=1), g.relu(x)])
    xs = np.random.default_rng(0).uniform(-4, -0.1, size=(200, 2, 4))
    mp, r = graph_equals_netlist(graph, [xs])
    assert (mp < 0).all()                 # padding never wins a max
    np.testing.assert_array_equal(r, 0)


FUNCS = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh, "exp": np.exp, "gelu": None, "silu": None,
         "sin": np.sin}


@pytest.mark.parametrize("function", ["sigmoid", "tanh", "exp", "sin", "gelu", "silu"])
def test_lookup_table_is_the_quantized_function(function):
    """Every code of the input's domain, both ends included: entry == quantize(f(x))."""
    in_t, out_t = "fixed<9,4>", "fixed<10,4,RND,SAT>"
    g = GraphBuilder()
    x = g.input(in_t, 1)
    graph = g.build(g.lookup(x, function, out_t))
    xs = np.arange(-256, 256)[:, None] / 32.0      # the whole domain of fixed<9,4>
    (got,) = graph_equals_netlist(graph, [xs])
    f = FUNCS[function] or {"gelu": lambda v: torch.nn.functional.gelu(_t(v)).numpy(),
                            "silu": lambda v: torch.nn.functional.silu(_t(v)).numpy()}[function]
    np.testing.assert_array_equal(got, quantize(f(xs), out_t))


def test_lookup_of_a_python_function_and_its_domain_errors(tmp_path):
    g = GraphBuilder()
    x = g.input("ufixed<6,2>", 3)
    y = g.lookup(x, lambda v: np.sqrt(v) + 0.25 * v, "ufixed<8,2,RND,SAT>", name="mine")
    graph = g.build(y)
    xs = np.random.default_rng(1).uniform(0, 4, size=(100, 3))
    (got,) = graph_equals_netlist(graph, [xs])
    v = quantize(xs, "ufixed<6,2>")
    np.testing.assert_array_equal(got, quantize(np.sqrt(v) + 0.25 * v, "ufixed<8,2,RND,SAT>"))
    again = Graph.from_json(graph.to_json())           # a Python function is saved as its tables
    np.testing.assert_array_equal(again.predict(xs), graph.predict(xs))
    g = GraphBuilder()
    with pytest.raises(GraphError, match=r"'log'.*log\(-4\.0\) is not a number.*ReLU or a clamp"):
        g.lookup(g.input("fixed<8,3>", 2), "log", "fixed<8,3>")
    with pytest.raises(GraphError, match=r"65536 entries.*more than 2\^12.*drop 4 fraction bits"):
        g.lookup(g.input("fixed<16,6>", 2, name="wide"), "exp", "fixed<8,4>")
    with pytest.raises(GraphError, match="unknown table function 'erf'"):
        g.lookup(g.input("fixed<8,3>", 2, name="z"), "erf", "fixed<8,3>")
    g = GraphBuilder()
    y = g.lookup(g.input("ufixed<4,4>", 1), "reciprocal", "ufixed<8,1,RND,SAT>")   # 1/0 saturates
    (got,) = graph_equals_netlist(g.build(y), [np.arange(16)[:, None]])
    assert got[0, 0] == float(quantize(np.array(2.0), "ufixed<8,1,RND,SAT>")) and got[1, 0] == 1.0


def test_lookup_follows_its_input_type_through_passes():
    """The tables are derived from the input type at hand, not frozen when the node was made."""
    g = GraphBuilder()
    x = g.input("fixed<6,3>", 2)
    y = g.lookup(g.dense(x, np.array([[1.0, 0.5], [0.25, -1.0]]), np.zeros(2)), "tanh", "fixed<8,1,RND,SAT>")
    graph = g.build(y)
    data = graph.to_json()
    for n in data["nodes"]:       # narrow the input type: the saved graph re-tabulates
        if n["op"] == "input":
            n["types"]["integer"] = [1] * len(n["types"]["integer"])
    narrow = Graph.from_json(data)
    assert narrow.types[y].lo[0] > graph.types[y].lo[0]
    xs = np.random.default_rng(2).uniform(-2, 2, size=(200, 2))
    graph_equals_netlist(narrow, [xs])


@pytest.mark.parametrize("n", [2, 5, 16])
def test_softmax_error_is_within_its_bound(n):
    g = GraphBuilder()
    x = g.input("fixed<10,5>", (4, n))
    graph = g.build([composite.softmax(g, x), composite.softmax(g, x, argmax_only=True)])
    rng = np.random.default_rng(n)
    xs = rng.normal(scale=4, size=(3000, 4, n))
    xs[:300] = xs[:300, :, :1]                                   # all inputs equal
    xs[300:600, :, 1] = xs[300:600, :, 0]                        # a tie for the maximum
    xs[600:900] = rng.choice([-16.0, 15.96875], size=(300, 4, n))   # the type's ends
    p, idx = graph_equals_netlist(graph, [xs])
    xq = quantize(xs, "fixed<10,5>")
    ref = torch.softmax(_t(xq), dim=-1).numpy()
    err = np.abs(p - ref).max()
    bound = composite.softmax_error_bound(n)
    assert err <= bound, (err, bound)
    assert bound < 0.06                                          # the bound says something
    np.testing.assert_array_equal(idx, xq.argmax(-1))            # first index on ties, as numpy
    np.testing.assert_allclose(p[:300], 1 / n, atol=bound)


def test_softmax_bound_fails_for_a_coarse_type():
    """The bound is tight enough that a wrong implementation would exceed it: with a very
    coarse exp table the measured error grows, and so does the bound."""
    fine = composite.softmax_error_bound(5)
    coarse = composite.softmax_error_bound(5, exp_type="ufixed<5,1,RND,SAT>")
    assert coarse > 2 * fine


def test_anomaly_score_ops(rng):
    g = GraphBuilder()
    x = g.input("fixed<8,3>", 6, name="x")
    r = g.input("fixed<8,3>", 6, name="recon")
    score = composite.squared_error(g, x, r)
    leaky = composite.leaky_relu(g, x, 0.125)
    clamp = composite.clamp(g, x, -1.0, 1.5)
    mean = composite.mean(g, x, 0)
    # the score squares 9-bit differences (partial products: Bit + Select + Add), "sq" 8-bit
    # inputs (a table of squares)
    graph = g.build([score, leaky, clamp, mean, g.square(x, name="sq")])
    a = boundary_inputs(graph.inputs[0].op.types, 400, rng, overshoot=True)
    b = boundary_inputs(graph.inputs[1].op.types, 400, rng, overshoot=True)
    s, lk, cl, mn, sq = graph_equals_netlist(graph, [a, b])
    aq, bq = quantize(a, "fixed<8,3>"), quantize(b, "fixed<8,3>")
    np.testing.assert_array_equal(s, ((aq - bq) ** 2).sum(axis=1))
    np.testing.assert_array_equal(lk, np.maximum(aq, aq / 8))
    np.testing.assert_array_equal(cl, np.clip(aq, -1, 1.5))
    np.testing.assert_allclose(mn, aq.mean(axis=1), atol=2.0 ** -12 * 4)
    np.testing.assert_array_equal(sq, aq ** 2)
    assert graph.types[graph.outputs[4]].lo.min() == 0          # a square is known non-negative
    kinds = {type(p).__name__ for p in lower_graph(graph).prims}
    assert {"Bit", "Select", "Lookup"} <= kinds and "Mul" not in kinds


def test_shape_errors_name_the_node():
    g = GraphBuilder()
    x = g.input("fixed<8,3>", (3, 5))
    with pytest.raises(GraphError, match=r"'c'.*conv with a 2-d kernel and 3 input channels expects an input of shape"):
        g.conv(x, np.ones((2, 3, 2, 2)), np.zeros(2), name="c")
    with pytest.raises(GraphError, match=r"'c2'.*groups=2 must divide the 3 output channels"):
        g.conv(x, np.ones((3, 3, 2)), np.zeros(3), groups=2, name="c2")
    with pytest.raises(GraphError, match=r"'c3'.*does not fit an input of spatial shape \(5,\)"):
        g.conv(x, np.ones((2, 3, 7)), np.zeros(2), name="c3")
    with pytest.raises(GraphError, match=r"'p'.*padding \(2,\) must be at most half the kernel"):
        g.pool(x, "max", 3, padding=2, name="p")
    with pytest.raises(GraphError, match=r"'u'.*upsampling by \(2, 2\) expects"):
        g.upsample(x, (2, 2), name="u")


def test_json_round_trip():
    rng = np.random.default_rng(3)
    g = GraphBuilder()
    x = g.input("fixed<8,3>", (2, 6, 6))
    c = g.conv(x, quantize(rng.normal(size=(4, 1, 3, 3)), "fixed<6,2>"), np.zeros(4), 1, 1, 1, 2)
    p = g.pool(g.relu(c), "max", 2)
    s = composite.softmax(g, g.reshape(g.upsample(p, 2), (4, 36)))
    graph = g.build(s)
    again = Graph.from_json(graph.to_json())
    xs = rng.normal(size=(50, 2, 6, 6))
    np.testing.assert_array_equal(again.predict(xs), graph.predict(xs))
    assert again.to_json() == graph.to_json()


def every_op_graph(rng) -> Graph:
    g = GraphBuilder()
    img = g.input(random_types(rng, 2 * 36, 9).broadcast_to((72,)), name="img")
    img = g.reshape(img, (2, 6, 6))
    seq = g.input("fixed<8,3>", (3, 10), name="seq")
    w2 = quantize(rng.normal(size=(4, 2, 3, 3)), "fixed<6,2>")
    w1 = quantize(rng.normal(size=(2, 3, 3)), "fixed<6,2>")
    dw = quantize(rng.normal(size=(2, 1, 3, 3)), "fixed<6,2>")
    conv = g.conv(img, w2, quantize(rng.normal(size=4), "fixed<6,2>"), 2, 1, name="conv2d")
    depth = g.conv(img, dw, np.zeros(2), 1, 0, 1, 2, name="depthwise")
    c1 = g.conv(seq, w1, np.zeros(2), 1, 2, 2, name="conv1d")
    t = g.quantize(c1, "fixed<8,3,RND,SAT>", name="c1q")
    outs = [conv, depth, c1,
            g.pool(img, "max", 3, stride=2, padding=1, name="maxpool"),
            g.pool(img, "sum", 2, name="sumpool"),
            g.upsample(seq, 2, name="up"),
            g.lookup(t, "sigmoid", "ufixed<8,0,RND,SAT>", name="sigmoid"),
            g.lookup(t, lambda v: v * v * 0.5, "ufixed<8,4,RND,SAT>", name="custom"),
            composite.softmax(g, seq, name="softmax"),
            composite.softmax(g, seq, argmax_only=True, name="argmax"),
            composite.squared_error(g, seq, g.constant(np.full((3, 10), 0.5)), name="score"),
            composite.leaky_relu(g, seq, 0.1, name="leaky"),
            g.square(t, name="square_by_table")]          # 8 bits: a table of squares
    return g.build(outs)


@pytest.mark.hw
def test_every_layer_op_in_rtl_is_bit_exact():
    """One Verilator build: every op of this file, many inputs at the type boundaries."""
    rng = np.random.default_rng(11)
    graph = every_op_graph(rng)
    d = Design(graph, name="layer_ops", clock_ns=2.0)
    x = {n.name: boundary_inputs(n.op.types, 1500, rng, overshoot=True) for n in graph.inputs}
    x["seq"][:100] = x["seq"][:100, :, :1]                  # softmax (last axis) of equal inputs
    x["seq"][100:200, :, 1] = x["seq"][100:200, :, 0]       # a tie for the maximum
    x["img"][200:300] = -np.abs(x["img"][200:300]) - 2.0 ** -8   # all negative: max pooling, ReLU
    r = d.verify(x)
    assert r.ok, str(r)
    want = d.predict(x)
    for k in want:
        np.testing.assert_array_equal(r.outputs[k], want[k])


def test_conv_lowering_grows_linearly_in_positions():
    """Doubling the positions about doubles the primitives (the kernel's adder graph is
    solved once per kind of border, not per position)."""
    rng = np.random.default_rng(5)
    w = quantize(rng.normal(size=(8, 2, 3, 3)), "fixed<8,3>")
    counts = []
    for s in (8, 16):
        g = GraphBuilder()
        y = g.conv(g.input("fixed<8,3>", (2, s, s)), w, np.zeros(8), 1, 1)
        counts.append(len(lower_graph(g.build(y)).prims))
    ratio = counts[1] / counts[0]
    assert 3.6 < ratio < 4.4, counts          # 4x positions
    assert math.isfinite(ratio)


def test_table_after_a_quantizer_that_only_adds_fraction_bits():
    """The netlist drops such a quantizer (the value is unchanged), so the table's wire has
    fewer fraction bits than its graph type: the entries must be re-indexed, not sliced."""
    g = GraphBuilder()
    x = g.input("fixed<8,3>", 3)
    y = g.lookup(g.quantize(x, "fixed<10,4,RND,SAT>"), "tanh", "fixed<8,1,RND,SAT>")
    xs = np.arange(-128, 128)[:, None].repeat(3, 1) / 32.0
    (got,) = graph_equals_netlist(g.build(y), [xs])
    np.testing.assert_array_equal(got, quantize(np.tanh(xs), "fixed<8,1,RND,SAT>"))
