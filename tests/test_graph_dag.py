"""DAG graphs of N-D tensors: graph emulator == float64 reference == netlist == RTL.

Random models with skip connections, several inputs, several outputs, 2-D inputs flattened
inside, and every wiring and arithmetic op, on inputs at and beyond their type boundaries.
The float64 reference below is independent of the integer emulator: it computes each op on
real values (exact here, every width stays far below 53 bits) with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest

from rtl4ml.design import Design
from rtl4ml.fixed import quantize
from rtl4ml.graph import Graph, GraphBuilder, GraphError, lower_graph
from rtl4ml.netlist.execute import execute, split_outputs

from .conftest import ROUNDINGS, OVERFLOWS, boundary_inputs, random_type, random_types


def float_forward(graph: Graph, xs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Every node's value in float64, op by op, from the quantized inputs."""
    v: dict[str, np.ndarray] = {}
    feed = iter(xs)
    for n in graph.nodes:
        op, a = n.op, [v[i] for i in n.inputs]
        k = op.kind
        if k == "input":
            v[n.name] = quantize(next(feed), op.types)
        elif k == "constant":
            v[n.name] = op.effective[None]
        elif k == "dense":
            v[n.name] = a[0] @ op.effective_weight + op.effective_bias
        elif k == "relu":
            v[n.name] = np.maximum(a[0], 0)
        elif k == "quantize":
            v[n.name] = quantize(a[0], op.types.broadcast_to(a[0].shape[1:]))
        elif k in ("add", "sub", "mul", "maximum", "minimum"):
            fn = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "maximum": np.maximum,
                  "minimum": np.minimum}[k]
            x, y = (u.reshape((len(u),) + (1,) * (max(a[0].ndim, a[1].ndim) - u.ndim) + u.shape[1:]) for u in a)
            v[n.name] = fn(x, y)
        elif k == "affine":
            s = op.scale if op.scale_type is None else quantize(op.scale, op.scale_type)
            t = op.shift if op.shift_type is None else quantize(op.shift, op.shift_type)
            v[n.name] = a[0] * s + t
        elif k == "reduce":
            fn = {"sum": np.sum, "max": np.max, "min": np.min}[op.reduction]
            v[n.name] = fn(a[0], axis=tuple(x + 1 for x in op.axes), keepdims=op.keepdims)
        elif k == "reshape":
            v[n.name] = a[0].reshape((len(a[0]),) + op.shape)
        elif k == "transpose":
            v[n.name] = a[0].transpose((0,) + tuple(p + 1 for p in op.perm))
        elif k == "slice":
            v[n.name] = a[0][(slice(None),) + op.index]
        elif k == "concat":
            n_max = max(len(u) for u in a)
            v[n.name] = np.concatenate([np.broadcast_to(u, (n_max,) + u.shape[1:]) for u in a], axis=op.axis + 1)
        else:  # pragma: no cover - a new op needs a reference here
            raise AssertionError(f"no float reference for op {k!r}")
    return v


def layer(g: GraphBuilder, x: str, n_out: int, rng, name: str, relu=True, quant=True) -> str:
    n_in = g.shape(x)[-1]
    wt = random_type(rng, 7, rounding="RND", overflow="SAT")
    w = quantize(rng.normal(scale=2.0 ** wt.integer, size=(n_in, n_out)), wt)
    w[rng.random(w.shape) < 0.15] = 0
    h = g.dense(x, w, quantize(rng.normal(size=n_out), wt), name=name)
    if relu:
        h = g.relu(h, name=f"{name}_relu")
    if quant:
        h = g.quantize(h, random_types(rng, n_out, 12, rounding=str(rng.choice(ROUNDINGS)),
                                       overflow=str(rng.choice(OVERFLOWS))), name=f"{name}_q")
    return h


def residual_mlp(rng) -> Graph:
    g = GraphBuilder()
    n = int(rng.integers(3, 8))
    x = g.input(random_types(rng, n, 10), name="x")
    h = layer(g, layer(g, x, int(rng.integers(2, 9)), rng, "fc1"), n, rng, "fc2", relu=False, quant=False)
    skip = g.relu(g.add(x, h, name="skip"))
    return g.build(layer(g, skip, 3, rng, "head", relu=False))


def two_inputs(rng) -> Graph:
    g = GraphBuilder()
    a = g.input(random_types(rng, int(rng.integers(2, 6)), 10), name="tracks")
    b = g.input(random_types(rng, int(rng.integers(2, 6)), 14), name="towers")
    return g.build(layer(g, layer(g, g.concat([a, b], name="both"), 6, rng, "fc1"), 2, rng, "out", relu=False))


def two_outputs(rng) -> Graph:
    g = GraphBuilder()
    x = g.input(random_types(rng, int(rng.integers(2, 8)), 12), name="x")
    h = layer(g, x, 5, rng, "shared")
    return g.build([layer(g, h, 3, rng, "scores", relu=False), layer(g, h, 1, rng, "regression")])


def flattened_2d(rng) -> Graph:
    g = GraphBuilder()
    p, f = int(rng.integers(2, 6)), int(rng.integers(2, 4))
    x = g.input(random_types(rng, p * f, 10).broadcast_to((p * f,)), name="particles")
    x = g.reshape(x, (p, f), name="rows")          # per-element types on a 2-D input
    h = layer(g, x, 4, rng, "per_particle")          # one weight matrix shared by all rows
    return g.build(layer(g, g.flatten(h, name="flat"), 3, rng, "head", relu=False))


def tensor_ops(rng) -> Graph:
    g = GraphBuilder()
    p, f = 4, 3
    x = g.input(random_types(rng, p * f, 8), name="x")
    x = g.reshape(x, (p, f))
    t = g.transpose(x, (1, 0), name="t")                        # (f, p)
    a = g.slice(t, [(0, 2, 1)], name="first_two")               # (2, p)
    b = g.slice(t, [(1, 3, 1), (0, 4, 1)], name="last_two")     # (2, p)
    prod = g.mul(a, b, name="prod")                             # variable x variable
    c = g.constant(quantize(rng.normal(size=(p,)), "fixed<6,2>"), name="c")
    scaled = g.mul(prod, c, name="scaled")                      # by a constant: shift-and-add
    s = g.reduce(scaled, "sum", 1, name="sum")                  # (2,)
    m = g.reduce(x, "max", 0, name="max_over_rows")             # (f,)
    lo = g.reduce(x, "min", (0, 1), keepdims=True, name="min_all")   # (1, 1)
    aff = g.affine(m, quantize(rng.normal(size=f), "fixed<6,2>"), quantize(rng.normal(size=f), "fixed<6,2>"),
                   name="affine")
    mixed = g.concat([s, aff, g.reshape(lo, (1,))], name="mixed")       # (2 + f + 1,)
    diff = g.sub(g.maximum(mixed, g.constant(np.zeros(1), name="zero")),
                 g.minimum(mixed, g.constant(np.full(1, 0.75), name="cap")), name="diff")
    return g.build([diff, g.quantize(prod, "fixed<8,3,RND,SAT>", name="prod_q")])


MODELS = {"residual_mlp": residual_mlp, "two_inputs": two_inputs, "two_outputs": two_outputs,
          "flattened_2d": flattened_2d, "tensor_ops": tensor_ops}


def boundary_samples(graph: Graph, n: int, rng) -> list[np.ndarray]:
    return [boundary_inputs(node.op.types, n, rng, overshoot=True) for node in graph.inputs]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("model", MODELS)
def test_graph_equals_reference_and_netlist(model, seed):
    rng = np.random.default_rng(seed)
    g = MODELS[model](rng)
    xs = boundary_samples(g, 500, rng)
    ref = float_forward(g, xs)
    codes = g.emulate_codes(g.quantize_inputs(xs), keep_all=True)
    for name, t in g.types.items():   # every node, not only the outputs
        got = np.ldexp(codes[name].astype(np.float64), -t.fraction)
        np.testing.assert_array_equal(got, np.broadcast_to(ref[name], got.shape), err_msg=name)
        assert (codes[name] >= t.lo.astype(np.float64)).all() and (codes[name] <= t.hi.astype(np.float64)).all()
    nl = lower_graph(g, cmvm="cse")
    outs = split_outputs(nl, execute(nl, g.quantize_inputs(xs)))
    for o, got in zip(g.outputs, outs):
        np.testing.assert_array_equal(got, codes[o])


@pytest.mark.hw
@pytest.mark.parametrize("model", MODELS)
def test_dag_models_rtl_is_bit_exact(model):
    rng = np.random.default_rng(7)
    g = MODELS[model](rng)
    d = Design(g, name=f"dag_{model}", clock_ns=1.5)
    xs = boundary_samples(g, 2000, rng)
    x = xs[0] if len(xs) == 1 else {n.name: a for n, a in zip(g.inputs, xs)}
    r = d.verify(x)
    assert r.ok, str(r)
    want = d.predict(x)
    got = r.outputs
    if isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want)
    else:
        assert isinstance(got, dict) == isinstance(x, dict)
        for k in (want if isinstance(want, dict) else range(len(want))):
            np.testing.assert_array_equal(got[k], want[k])


def test_several_inputs_and_outputs_by_position_and_name():
    rng = np.random.default_rng(1)
    g = two_inputs(rng)
    a, b = boundary_samples(g, 50, rng)
    by_pos = g.predict((a, b))
    by_name = g.predict({"towers": b, "tracks": a})
    np.testing.assert_array_equal(by_pos, by_name)
    with pytest.raises(GraphError, match=r"inputs are named \['tracks', 'towers'\]; got \['tracks'\]"):
        g.predict({"tracks": a})
    with pytest.raises(GraphError, match="pass a tuple of 2 arrays"):
        g.predict(a)
    g2 = two_outputs(rng)
    x = boundary_samples(g2, 20, rng)[0]
    scores, reg = g2.predict(x)
    assert scores.shape == (20, 3) and reg.shape == (20, 1)
    assert set(g2.predict({"x": x})) == set(g2.outputs)


def test_shape_errors_name_the_node():
    g = GraphBuilder()
    x = g.input("fixed<8,3>", (4, 3))
    with pytest.raises(GraphError, match=r"node 'bad' \(reshape\): cannot reshape a tensor of shape \(4, 3\)"):
        g.reshape(x, (5, 2), name="bad")
    with pytest.raises(GraphError, match=r"'cat'.*cannot concatenate shapes \[\(4, 3\), \(3,\)\]"):
        g.concat([x, g.input("fixed<8,3>", 3, name="y")], axis=0, name="cat")
    with pytest.raises(GraphError, match=r"'plus'.*cannot add tensors of shapes \(4, 3\) and \(4,\)"):
        g.add(x, g.input("fixed<8,3>", 4, name="z"), name="plus")
    with pytest.raises(GraphError, match=r"'tr'.*permutation \(0, 0\)"):
        g.transpose(x, (0, 0), name="tr")
    with pytest.raises(GraphError, match=r"'r'.*cannot reduce axes \(2,\)"):
        g.reduce(x, "sum", 2, name="r")


def test_json_round_trip_of_a_dag(rng):
    g = tensor_ops(rng)
    g2 = Graph.from_json(g.to_json())
    xs = boundary_samples(g, 100, rng)
    for u, v in zip(g.predict(xs[0]), g2.predict(xs[0])):
        np.testing.assert_array_equal(u, v)
    assert g.to_json() == g2.to_json()
