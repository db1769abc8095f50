"""Graph passes: each keeps the function bit for bit (BatchNorm folding: as documented), and
the fixpoint driver removes what it should."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl4ml.fixed import FixedType, quantize, requantize
from rtl4ml.graph import GraphBuilder
from rtl4ml.graph.ops import Affine, Constant, Dense, Quantize
from rtl4ml.passes.graph_passes import (compose_quantizers, fold_batchnorm, fold_constants, merge_quantizers,
                                        remove_dead, remove_identities, run_passes)

from .conftest import boundary_inputs
from .test_graph_dag import MODELS, boundary_samples

types = st.builds(FixedType, st.booleans(), st.integers(-2, 8), st.integers(-2, 8),
                  st.sampled_from(["TRN", "RND", "RND_CONV"]), st.sampled_from(["WRAP", "SAT", "SAT_SYM"]))


@settings(max_examples=400, deadline=None)
@given(t1=types, t2=types, f0=st.integers(-2, 10), lo=st.integers(-3000, 3000), span=st.integers(0, 3000))
def test_composed_quantizer_equals_the_two_in_sequence(t1, t2, f0, lo, span):
    t = compose_quantizers(t1, t2, f0)
    if t is None:
        return
    q = np.arange(lo, lo + span + 1)
    two = requantize(requantize(q, f0, t1), t1.fraction, t2)
    np.testing.assert_array_equal(requantize(q, f0, t), two)


def test_common_quantizer_chains_do_merge():
    assert compose_quantizers(FixedType(True, 6, 8), FixedType(True, 3, 4), 10) == FixedType(True, 3, 4)
    assert compose_quantizers(FixedType(True, 6, 8), FixedType(True, 3, 4, "RND", "SAT"), 10) is None  # WRAP then SAT
    t = compose_quantizers(FixedType(True, 6, 8, "TRN", "SAT"), FixedType(True, 3, 4, "RND", "SAT"), 10)
    assert t == FixedType(True, 3, 4, "RND", "SAT")
    assert compose_quantizers(FixedType(True, 6, 8, "RND"), FixedType(True, 3, 4), 10) is None   # double rounding
    # SAT_SYM clamps to -127, a following SAT of the same width would allow -128: not one SAT
    assert compose_quantizers(FixedType(True, 7, 0, "TRN", "SAT_SYM"), FixedType(True, 7, 0, "TRN", "SAT"), 0) is None


def _predict_same(g1, g2, rng, n=400):
    xs = boundary_samples(g1, n, rng)
    a, b = g1.predict(xs if len(xs) > 1 else xs[0]), g2.predict(xs if len(xs) > 1 else xs[0])
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("model", MODELS)
def test_run_passes_keeps_random_models_bit_exact(model):
    rng = np.random.default_rng(3)
    g = MODELS[model](rng)
    g2 = run_passes(g)
    assert g2.outputs == g.outputs and len(g2.nodes) <= len(g.nodes)
    _predict_same(g, g2, rng)


def test_batchnorm_folds_into_the_float_weights_before_rounding(rng):
    g = GraphBuilder()
    x = g.input("fixed<10,4>", 5)
    w, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    h = g.dense(x, w, b, name="fc", weight_type="fixed<8,3,RND,SAT>")
    scale, shift = np.array([0.7, 1.9, -0.4]), np.array([0.1, -2.0, 0.3])
    y = g.relu(g.affine(h, scale, shift, name="bn"))
    out = run_passes(g.build(y))
    assert [n.op.kind for n in out.nodes] == ["input", "dense", "relu"]
    fc = out["fc"].op   # the folded layer keeps the Dense's name
    np.testing.assert_array_equal(fc.effective_weight, quantize(w * scale, "fixed<8,3,RND,SAT>"))
    np.testing.assert_array_equal(fc.effective_bias, quantize(b * scale + shift, "fixed<8,3,RND,SAT>"))
    xs = rng.normal(size=(200, 5)) * 3
    ref = np.maximum(quantize(xs, "fixed<10,4>") @ fc.effective_weight + fc.effective_bias, 0)
    np.testing.assert_array_equal(out.predict(xs), ref)


def test_batchnorm_is_not_folded_into_exact_weights_or_a_shared_dense(rng):
    g = GraphBuilder()
    x = g.input("fixed<10,4>", 4)
    exact = g.dense(x, quantize(rng.normal(size=(4, 2)), "fixed<6,2>"), np.zeros(2), name="qat")  # no weight_type
    a = g.affine(exact, np.array([0.5, 2.0]), np.zeros(2), name="bn1")
    shared = g.dense(x, rng.normal(size=(4, 2)), np.zeros(2), name="fc", weight_type="fixed<8,3>")
    b = g.affine(shared, np.array([0.5, 2.0]), np.zeros(2), name="bn2")
    graph = g.build([a, b, shared])
    out, changed = fold_batchnorm(graph)
    assert not changed and out is graph


def test_constant_subgraphs_fold(rng):
    g = GraphBuilder()
    x = g.input("fixed<8,3>", 3)
    c = g.mul(g.constant([0.5, 1.5, -2.0], name="a"), g.constant([3.0, 0.25, 1.0], name="b"), name="ab")
    y = g.add(x, g.reduce(c, "sum", 0, keepdims=True, name="total"), name="y")
    graph = g.build(y)
    out, changed = fold_constants(graph)
    assert changed and isinstance(out["total"].op, Constant) and out["total"].inputs == ()
    out = remove_dead(out)[0]
    assert {n.name for n in out.nodes} == {"x", "total", "y"}
    _predict_same(graph, out, rng)


def test_identities_are_removed_but_outputs_keep_their_names(rng):
    g = GraphBuilder()
    x = g.input("fixed<8,3>", (2, 3))
    r = g.reshape(g.transpose(g.reshape(x, (2, 3), name="same"), (0, 1), name="noperm"), (6,), name="flat")
    q = g.quantize(r, "fixed<12,5>", name="wider")   # changes the fraction: kept
    z = g.quantize(g.relu(x, name="r1"), "ufixed<8,3>", name="nop")   # ReLU of signed: kept
    last = g.slice(x, [(0, 2, 1), (0, 3, 1)], name="whole")
    graph = g.build([q, z, last])
    out, changed = remove_identities(graph)
    assert changed and "same" not in out and "noperm" not in out
    assert "whole" in out and "wider" in out and "r1" in out   # an output, a scale change, a real ReLU
    _predict_same(graph, out, rng)


def test_quantizer_chains_merge_in_the_graph(rng):
    g = GraphBuilder()
    x = g.input("fixed<16,6>", 4)
    q = g.quantize(g.quantize(x, "fixed<14,6,TRN,SAT>", name="inner"), "fixed<8,3,RND,SAT>", name="outer")
    graph = g.build(q)
    out, changed = merge_quantizers(graph)
    assert changed and [n.name for n in out.nodes] == ["x", "outer"]
    assert isinstance(out["outer"].op, Quantize) and out["outer"].op.types.rounding == "RND"
    xs = boundary_inputs(graph.input.op.types, 3000, rng, overshoot=True)
    np.testing.assert_array_equal(out.predict(xs), graph.predict(xs))


def test_ops_hold_their_pending_quantization():
    d = Dense(np.array([[0.3]]), np.array([0.2]), FixedType(True, 1, 3))   # TRN: floor
    assert d.effective_weight[0, 0] == 0.25 and d.effective_bias[0] == 0.125
    a = Affine(np.array([0.3]), np.array([0.0]))
    assert a.scale[0] == 0.3   # no type: the exact float64 value
