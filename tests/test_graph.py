"""Graph type inference and emulation, and Graph == Netlist executor on random networks."""

from __future__ import annotations

import numpy as np
import pytest

from rtl4ml.fixed import FixedTypeArray, WidthError, quantize
from rtl4ml.graph import Graph, GraphBuilder, GraphError, lower_graph
from rtl4ml.netlist.execute import execute
from rtl4ml.netlist.prims import Add, Const, Quant, Relu

from .conftest import boundary_inputs, random_mlp


def _codes_within_types(graph: Graph, xq: np.ndarray) -> None:
    """Every emulated value lies inside its node's inferred interval."""
    values = graph.emulate_codes(xq, keep_all=True)
    for name, t in graph.types.items():
        v = values[name]
        assert (v >= np.array(t.lo, dtype=np.float64)).all() and (v <= np.array(t.hi, dtype=np.float64)).all(), name


@pytest.mark.parametrize("seed", range(60))
def test_random_mlp_graph_equals_netlist(seed):
    rng = np.random.default_rng(seed)
    g = random_mlp(rng)
    x = boundary_inputs(g.input.op.types, 400, rng, overshoot=True)
    xq = g.quantize_input(x)
    want = g.emulate_codes(xq)[g.outputs[0]]
    got = execute(lower_graph(g), xq)
    np.testing.assert_array_equal(got, want)
    _codes_within_types(g, xq)


@pytest.mark.parametrize("seed", range(12))
def test_wide_random_mlp_graph_equals_netlist(seed):
    """Input widths up to 40 bits: sums beyond 2**53 take the int64 path of the emulator."""
    rng = np.random.default_rng(1000 + seed)
    g = random_mlp(rng, max_input_width=40, max_layers=2)
    x = boundary_inputs(g.input.op.types, 300, rng)
    xq = g.quantize_input(x)
    np.testing.assert_array_equal(execute(lower_graph(g), xq), g.emulate_codes(xq)[g.outputs[0]])


def test_dense_interval_is_exact_and_attained():
    """The inferred range of a dense output is reached by the extreme inputs."""
    g = GraphBuilder()
    x = g.input("fixed<6,3>", 3)
    w = np.array([[0.5, -1.25], [2.0, 0.0], [-0.75, 3.0]])
    y = g.dense(x, w, np.array([0.25, -1.0]))
    G = g.build(y)
    t = G.types[y]
    lo, hi = -4.0, 4.0 - 1 / 8
    corners = np.array(np.meshgrid(*[[lo, hi]] * 3)).reshape(3, -1).T
    vals = G.predict(corners)
    assert np.ldexp(float(t.lo[0]), -int(t.fraction[0])) == vals[:, 0].min()
    assert np.ldexp(float(t.hi[1]), -int(t.fraction[1])) == vals[:, 1].max()
    assert t.fraction.tolist() == [5, 5]  # 0.25 and 0.75 steps times 1/8


def test_quantize_node_matches_fixed_module(rng):
    g = GraphBuilder()
    x = g.input("fixed<20,8>", 4)
    types = FixedTypeArray([True, False, True, True], [2, 3, 0, -2], [3, 2, 5, 6], "RND_CONV", "SAT_SYM")
    y = g.quantize(x, types)
    G = g.build(y)
    xv = rng.normal(size=(500, 4)) * 10
    np.testing.assert_array_equal(G.predict(xv), quantize(quantize(xv, "fixed<20,8>"), types))


def test_add_and_relu_exact(rng):
    g = GraphBuilder()
    x = g.input("fixed<8,4>", 2)
    a = g.dense(x, np.array([[1.0, 0.0], [0.0, 0.5]]), np.zeros(2))
    s = g.relu(g.add(x, a))
    G = g.build(s)
    xv = quantize(rng.normal(size=(200, 2)) * 4, "fixed<8,4>")
    want = np.maximum(xv + xv * np.array([1.0, 0.5]), 0)
    np.testing.assert_array_equal(G.predict(xv), want)
    np.testing.assert_array_equal(execute(lower_graph(G), G.quantize_input(xv)), G.emulate_codes(G.quantize_input(xv))[s])


def test_pruned_weights_and_dead_relus_fold_away():
    g = GraphBuilder()
    x = g.input("fixed<8,4>", 4)
    w = np.zeros((4, 3))
    w[0, 0] = 0.5
    h = g.relu(g.dense(x, w, np.array([0.0, -1.0, 2.0])))  # outputs 1, 2 are constants
    G = g.build(h)
    nl = lower_graph(G)
    assert nl.count(Add) == 0 and nl.count(Relu) == 1
    consts = [nl.prims[o] for o in nl.outputs[1:]]
    assert all(isinstance(c, Const) for c in consts)
    assert [c.wire.lo * 2.0 ** -c.wire.fraction for c in consts] == [0.0, 2.0]


def test_identity_quantizer_is_removed():
    g = GraphBuilder()
    x = g.input("fixed<8,4>", 2)
    y = g.quantize(x, "fixed<10,5>", 2)  # wider type, same scale or finer: nothing to do
    assert lower_graph(g.build(y)).count(Quant) == 0


def test_too_wide_emulation_names_the_node():
    g = GraphBuilder()
    x = g.input("fixed<60,30>", 4)
    y = g.dense(x, np.full((4, 2), 3.0), np.zeros(2), name="wide_layer")
    G = g.build(y)
    with pytest.raises(WidthError, match="wide_layer"):
        G.predict(np.ones((2, 4)))


def test_graph_errors_name_nodes():
    g = GraphBuilder()
    x = g.input("fixed<8,4>", 3)
    with pytest.raises(GraphError, match=r"'fc'.*expects 4 features on the last axis, got shape \(3,\)"):
        g.dense(x, np.ones((4, 2)), np.zeros(2), name="fc")
    with pytest.raises(GraphError, match=r"node .dense.: dense weight has a non-finite value nan at index \(0, 0\)"):
        GraphBuilder().dense("x", np.array([[np.nan]]), np.zeros(1))


def test_json_round_trip_is_exact(rng):
    g = random_mlp(rng)
    g2 = Graph.from_json(g.to_json())
    x = boundary_inputs(g.input.op.types, 100, rng)
    np.testing.assert_array_equal(g.predict(x), g2.predict(x))
    assert g.to_json() == g2.to_json()
