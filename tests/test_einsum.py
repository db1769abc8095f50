"""Einsum of two variables and of a variable with a constant: graph emulator == an
independent float64 reference (np.einsum on the quantized values) == netlist == RTL.

Equations and shapes are drawn at random (hypothesis); per-element input types of random
widths, inputs at and beyond their type boundaries. One Verilator build covers the op.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rtl4ml.design import Design
from rtl4ml.fixed import FixedTypeArray, WidthError, quantize
from rtl4ml.graph import Graph, GraphBuilder, GraphError

from .conftest import boundary_inputs, random_types
from .test_layers import graph_equals_netlist


@st.composite
def equations(draw):
    letters = "ijkl"
    n = draw(st.integers(1, 4))
    used = letters[:n]
    a = "".join(draw(st.permutations(used))[:draw(st.integers(1, n))])
    b = "".join(draw(st.permutations(used))[:draw(st.integers(1, n))])
    pool = sorted(set(a + b))
    out = "".join(draw(st.permutations(pool))[:draw(st.integers(0, len(pool)))])
    sizes = {c: draw(st.integers(1, 4)) for c in used}
    return f"{a},{b}->{out}", sizes, draw(st.integers(0, 2**16))


def _input(g, rng, subs, sizes, name, width=9):
    shape = tuple(sizes[c] for c in subs)
    n = int(np.prod(shape))
    types = random_types(rng, n, width).broadcast_to((n,))
    return g.reshape(g.input(types, name=name), shape), types, shape


@settings(max_examples=40, deadline=None)
@given(equations())
def test_einsum_of_two_variables_equals_numpy_and_netlist(case):
    eq, sizes, seed = case
    rng = np.random.default_rng(seed)
    sa, sb = eq.split("->")[0].split(",")
    g = GraphBuilder()
    a, ta, shape_a = _input(g, rng, sa, sizes, "a")
    b, tb, shape_b = _input(g, rng, sb, sizes, "b")
    y = g.einsum(eq, a, b)
    graph = g.build(y)
    xa = boundary_inputs(ta, 200, rng, overshoot=True)
    xb = boundary_inputs(tb, 200, rng, overshoot=True)
    (got,) = graph_equals_netlist(graph, [xa, xb])
    qa = quantize(xa, ta).reshape((-1,) + shape_a)
    qb = quantize(xb, tb).reshape((-1,) + shape_b)
    ref = np.einsum("z" + eq.replace(",", ",z").replace("->", "->z"), qa, qb)
    np.testing.assert_array_equal(got, ref)
    t = graph.types[y]                        # exact bounds: every value inside, and reached
    codes = np.ldexp(got, t.fraction)
    assert np.all(codes >= t.lo.astype(np.float64)) and np.all(codes <= t.hi.astype(np.float64))


@pytest.mark.parametrize("eq,const_shape", [("pf,fg->pg", (3, 5)), ("pf,gf->gp", (5, 3)), ("fg,pf->pg", (3, 5)),
                                            ("fp,fg->pg", (3, 5))])
def test_constant_matrix_becomes_dense(eq, const_shape):
    rng = np.random.default_rng(1)
    w = quantize(rng.normal(size=const_shape), "fixed<6,2>")
    w[0, 0] = 0
    sa, sb = eq.split("->")[0].split(",")
    var_subs = sa if len(const_shape) == 2 and sb in ("fg", "gf") else sb
    shape = (4, 3) if var_subs == "pf" else (3, 4)
    g = GraphBuilder()
    x = g.input("fixed<8,3>", shape, name="x")
    c = g.constant(w, name="w")
    args = (x, c) if var_subs == sa else (c, x)
    y = g.einsum(eq, *args, name="mix")
    graph = g.build(y)
    assert "dense" in [n.op.kind for n in graph.nodes] and "einsum" not in [n.op.kind for n in graph.nodes]
    plain = GraphBuilder()
    x2 = plain.input("fixed<8,3>", shape, name="x")
    c2 = plain.constant(w, name="w")
    y2 = plain.einsum(eq, *((x2, c2) if var_subs == sa else (c2, x2)), dense=False)
    xs = boundary_inputs(graph["x"].op.types, 300, rng, overshoot=True)
    (got,) = graph_equals_netlist(graph, [xs])
    (want,) = graph_equals_netlist(plain.build(y2), [xs])
    np.testing.assert_array_equal(got, want)
    q = quantize(xs, "fixed<8,3>")
    out = eq.split("->")[1]
    spec = f"z{sa},{sb}->z{out}" if var_subs == sa else f"{sa},z{sb}->z{out}"
    np.testing.assert_array_equal(got, np.einsum(spec, *((q, w) if var_subs == sa else (w, q))))


def test_einsum_errors_name_the_node():
    g = GraphBuilder()
    a = g.input("fixed<8,3>", (3, 4), name="a")
    b = g.input("fixed<8,3>", (5, 4), name="b")
    with pytest.raises(GraphError, match=r"'bad'.*axis 'f' has size 4 in one operand and 5"):
        g.einsum("pf,fq->pq", a, b, name="bad")
    with pytest.raises(GraphError, match=r"'dots'.*'\.\.\.' is not supported"):
        g.einsum("...f,qf->q", a, b, name="dots")
    with pytest.raises(GraphError, match=r"'diag'.*repeats a letter"):
        g.einsum("pp,qf->pq", a, b, name="diag")


def test_too_wide_sums_raise_width_error():
    """Each output fits, but mixing a wide integer and a fine fraction in one operand does not
    fit the emulator's aligned arithmetic: refused, naming the node, never wrapped."""
    t = FixedTypeArray(np.array([True, True]), np.array([28, 1]), np.array([0, 27]))
    g = GraphBuilder()
    a = g.input(t, name="a")
    graph = g.build(g.einsum("p,q->pq", a, a, name="wide"))
    assert graph.types["wide"].max_width() <= 62
    with pytest.raises(WidthError, match=r"'wide'.*einsum 'p,q->pq' sums reach"):
        graph.predict(np.zeros((1, 2)))


def test_json_round_trip():
    g = GraphBuilder()
    a = g.input("fixed<8,3>", (3, 4), name="a")
    graph = g.build(g.einsum("pf,qf->pq", a, a))
    again = Graph.from_json(graph.to_json())
    xs = np.random.default_rng(0).normal(size=(20, 3, 4))
    np.testing.assert_array_equal(again.predict(xs), graph.predict(xs))


@pytest.mark.hw
def test_einsum_rtl_is_bit_exact():
    """One Verilator build: pairwise products, attention-style contractions, a constant mix."""
    rng = np.random.default_rng(7)
    g = GraphBuilder()
    q = g.reshape(g.input(random_types(rng, 12, 8).broadcast_to((12,)), name="q"), (4, 3))
    k = g.reshape(g.input(random_types(rng, 12, 8).broadcast_to((12,)), name="k"), (4, 3))
    s = g.einsum("pf,qf->pq", q, k, name="scores")
    sq = g.quantize(s, "fixed<8,3,RND,SAT>", name="sq")
    av = g.einsum("pq,qf->pf", sq, k, name="av")
    outer = g.einsum("pf,pg->pfg", q, k, name="outer")
    mix = g.einsum("pf,qp->qf", q, g.constant(quantize(rng.normal(size=(2, 4)), "fixed<6,2>")), name="mix")
    graph = g.build([s, av, outer, mix])
    d = Design(graph, name="einsum_ops", clock_ns=2.5)
    x = {n.name: boundary_inputs(n.op.types, 1000, rng, overshoot=True) for n in graph.inputs}
    r = d.verify(x)
    assert r.ok, str(r)
    want = d.predict(x)
    for key in want:
        np.testing.assert_array_equal(r.outputs[key], want[key])


def _widths_types(spec: list[tuple[bool, int]], rng) -> FixedTypeArray:
    """One element per (signed, width), each with a random fraction."""
    fr = rng.integers(-2, 6, len(spec))
    return FixedTypeArray(np.array([s for s, _ in spec]), np.array([w - s - f for (s, w), f in zip(spec, fr)]),
                          fr)


#: operand (signed, width) pairs on both sides of MUL_LUT_MAX_BITS (100 = 10 x 10): 1-bit,
#: a 1-bit signed (-1 / 0) operand, narrow x wide, the threshold itself, just above it
_MUL_SIDES = [(False, 1), (True, 1), (True, 2), (False, 3), (True, 5), (False, 8), (True, 8), (True, 10),
              (False, 10), (True, 11), (False, 13), (True, 16)]


def _outer_products(rng):
    g = GraphBuilder()
    a = g.input(_widths_types(_MUL_SIDES, rng), name="a")
    b = g.input(_widths_types(_MUL_SIDES[::-1], rng), name="b")
    return g.build(g.einsum("p,q->pq", a, b, name="outer"))


def test_var_x_var_verilog_uses_star_only_above_threshold():
    """Narrow products are partial products (no ``*`` for Yosys to map to a DSP); products with
    bits(a) * bits(b) above MUL_LUT_MAX_BITS keep the ``*`` operator, one per product."""
    from rtl4ml.netlist.prims import MUL_LUT_MAX_BITS
    graph = _outer_products(np.random.default_rng(3))
    widths = [w for _, w in _MUL_SIDES]
    wide = sum(wa * wb > MUL_LUT_MAX_BITS for wa in widths for wb in widths[::-1])
    assert 0 < wide < len(widths) ** 2
    text = Design(graph, name="outer_mul", clock_ns=10).verilog
    assert text.count(" * ") == wide


def test_narrow_products_are_adder_trees_the_pipeline_can_split():
    """A 10 x 10-bit product (at MUL_LUT_MAX_BITS) is partial products summed by adders, so at a
    1 ns clock the scheduler registers inside it and meets timing; one ``Mul`` could not."""
    from rtl4ml.netlist.prims import Mul
    rng = np.random.default_rng(4)
    g = GraphBuilder()
    a = g.input(_widths_types([(True, 10)] * 3, rng), name="a")
    b = g.input(_widths_types([(True, 10)] * 3, rng), name="b")
    graph = g.build(g.einsum("p,p->p", a, b, name="y"))
    slow, fast = Design(graph, name="m10", clock_ns=10), Design(graph, name="m10", clock_ns=1.0)
    assert slow.pipeline.stages == 1 and fast.pipeline.stages >= 3
    assert fast.pipeline.meets_timing
    assert not any(isinstance(p, Mul) for p in fast.netlist.prims)
    x = [boundary_inputs(n.op.types, 500, rng) for n in graph.inputs]
    (want,) = graph_equals_netlist(graph, x)
    np.testing.assert_array_equal(want, quantize(x[0], graph["a"].op.types) * quantize(x[1], graph["b"].op.types))


@pytest.mark.hw
def test_var_x_var_multipliers_rtl_bit_exact_all_widths():
    """Every pair of operand widths and signs on both sides of the threshold: graph ==
    netlist == Verilator on boundary values (each operand's min, max, 0, one step inside) and
    random ones, incl. inputs outside the type that wrap first. One build."""
    rng = np.random.default_rng(11)
    graph = _outer_products(rng)
    d = Design(graph, name="outer_mul", clock_ns=1.0)   # registers inside the partial-product trees
    x = {n.name: boundary_inputs(n.op.types, 1500, rng, overshoot=True) for n in graph.inputs}
    (want,) = graph_equals_netlist(graph, [x["a"], x["b"]])
    ta, tb = graph["a"].op.types, graph["b"].op.types
    np.testing.assert_array_equal(want, np.einsum("zp,zq->zpq", quantize(x["a"], ta), quantize(x["b"], tb)))
    r = d.verify(x)
    assert r.ok, str(r)
    np.testing.assert_array_equal(np.asarray(r.outputs).reshape(want.shape), want)


@pytest.mark.hw
@pytest.mark.slow
def test_narrow_var_x_var_products_use_no_dsp():
    """Yosys synth_xilinx: 10 x 10-bit and 8 x 12-bit products (at the threshold) take no DSP,
    11 x 10-bit ones (just above) take one each."""
    rng = np.random.default_rng(5)
    def products(wa: int, wb: int):
        g = GraphBuilder()
        a = g.input(_widths_types([(True, wa)] * 2, rng), name="a")
        b = g.input(_widths_types([(True, wb)] * 2, rng), name="b")
        return Design(g.build(g.einsum("p,p->p", a, b, name="y")), name=f"mul_{wa}x{wb}", clock_ns=2.5)
    for (wa, wb), dsps in {(10, 10): 0, (8, 12): 0, (11, 10): 2}.items():
        est = products(wa, wb).estimate(synth=True)
        assert est.dsp == dsps, (wa, wb, est.dsp, est.lut)
        assert (est.lut > 100) == (dsps == 0), (wa, wb, est.lut)
