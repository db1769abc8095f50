"""Learned LUT networks (rtl4ml.nn.lutnet): thresholds exact at their boundaries, the extended
finite-difference gradient against its definition, model == design.predict == netlist, and
RTL in one shared Verilator build on random inputs, inputs at every threshold and jets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rtl4ml
import rtl4ml.nn as qnn
from rtl4ml.design import Design
from rtl4ml.fixed import parse_type
from rtl4ml.graph import GraphBuilder, GraphError
from rtl4ml.graph.ops import BitLookup, Thermometer
from rtl4ml.graph.ops.luts import Popcount
from rtl4ml.nn.lutnet import _efd_weights, _EFDLookup, default_tau
from rtl4ml.torch_common import ConversionError

JETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "jets_pythia8" / "jets_pythia8_small.npz"


def lutnet(input_type="fixed<6,3,TRN,SAT>", n_thr=6, units=(30, 10), k=(6, 4), mapping="random", seed=0,
           popcount="adders"):
    enc = qnn.Thermometer(4, n_thr, input_type)
    layers, n = [enc], enc.out_bits
    for i, (u, kk) in enumerate(zip(units, k)):
        layers.append(qnn.LUTLayer(n, u, kk, mapping=mapping, seed=seed + i))
        n = u
    return torch.nn.Sequential(*layers, qnn.GroupSum(5 if n % 5 == 0 else 1, popcount=popcount))


def randomize(model, rng):
    """Random tables and thresholds (some outside the input range, some shared)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, qnn.LUTLayer):
                m.tables.copy_(torch.as_tensor(rng.uniform(-1, 1, m.tables.shape)))
            if isinstance(m, qnn.Thermometer):
                t = rng.uniform(-5, 5, m.thresholds.shape)
                t[:, 0] = t[:, 1]                                  # a shared comparator
                m.thresholds.copy_(torch.as_tensor(t))
    return model.eval()


def threshold_inputs(enc: qnn.Thermometer, rng, n: int) -> np.ndarray:
    """Inputs exactly at thresholds, one LSB either side of them, and random ones."""
    t = enc.thresholds.detach().numpy()
    lsb = np.ldexp(1.0, -enc.types.fraction)
    x = rng.uniform(-5, 5, (n, enc.n_features))
    pick = rng.integers(0, enc.n_thresholds, x.shape)
    at = t[np.arange(enc.n_features), pick]
    step = rng.integers(-1, 2, x.shape) * lsb
    grid = np.floor(at / lsb) * lsb
    choice = rng.integers(0, 3, x.shape)
    return np.select([choice == 0, choice == 1], [at, grid + step], x)


def model_out(model, x):
    with torch.no_grad():
        return model.eval()(torch.as_tensor(x, dtype=torch.float64)).numpy().astype(np.float64)


# --------------------------------------------------------------------------- ops


@pytest.mark.parametrize("tname", ["fixed<6,3,TRN,SAT>", "fixed<10,4>", "ufixed<5,2,TRN,SAT>"])
def test_thermometer_bits_are_exact_at_the_thresholds(tname, rng):
    t = parse_type(tname)
    lsb = 2.0 ** -t.fraction
    thr = np.array([0.0, lsb, 1.5 * lsb, -2.25 * lsb, 1.0, 100.0, -100.0, 1.0])
    g = GraphBuilder()
    x = g.input(t, 1)
    g_out = g.node(Thermometer(np.zeros(len(thr), dtype=int), thr), (x,), "enc")
    design = Design(g.build(g_out), name="therm", clock_ns=2.5)
    codes = np.arange(t.min_q, t.max_q + 1)
    xs = np.ldexp(codes.astype(np.float64), -t.fraction)[:, None]
    want = (xs > thr[None, :]).astype(np.float64)
    np.testing.assert_array_equal(design.predict(xs), want)
    np.testing.assert_array_equal(design.execute_netlist(xs), design.predict_codes(xs))
    op = design.graph[g_out].op
    from rtl4ml.graph.tensor import TensorType
    inside = {(0, T) for T in op.codes(TensorType.from_types(design.graph.inputs[0].op.types))
              if t.min_q <= T < t.max_q}
    assert op.comparators(TensorType.from_types(design.graph.inputs[0].op.types)) == len(inside) < len(thr)


def test_bit_lookup_matches_its_truth_tables(rng):
    conn = rng.integers(0, 9, (12, 5))
    conn[0] = [3, 3, 1, 0, 2]                                      # a bit read twice
    tab = rng.integers(0, 2, (12, 32))
    g = GraphBuilder()
    x = g.input(parse_type("ufixed<1,1>"), 9)
    out = g.node(BitLookup(conn, tab), (x,), "lut")
    design = Design(g.build(out), name="bits", clock_ns=2.5)
    xs = rng.integers(0, 2, (500, 9)).astype(np.float64)
    addr = (xs[:, conn].astype(int) << np.arange(5)).sum(-1)
    want = tab[np.arange(12), addr]
    np.testing.assert_array_equal(design.predict(xs), want)
    np.testing.assert_array_equal(design.execute_netlist(xs), design.predict_codes(xs))


@pytest.mark.parametrize("n, groups", [(1, 1), (2, 1), (4, 2), (7, 1), (13, 1), (40, 5), (96, 1)])
def test_popcount_counts_with_lut_compressors(n, groups, rng):
    """Random bits and constant ones (thresholds outside the input's range) into the compressor tree."""
    thr = rng.uniform(-3, 3, n)
    thr[rng.random(n) < 0.2] = rng.choice([-10.0, 10.0])               # constant 1 and 0 bits
    feat = np.arange(n) % 3
    g = GraphBuilder()
    x = g.input(parse_type("fixed<6,3,TRN,SAT>"), 3)
    bits = g.node(Thermometer(feat, thr), (x,), "enc")
    design = Design(g.build(g.node(Popcount(groups), (bits,), "pc")), name="pc", clock_ns=2.0)
    xs = np.concatenate([rng.uniform(-4.5, 4.5, (3000, 3)), thr[:3 * (n // 3)].reshape(-1, 3)])
    q = np.floor(np.clip(xs, -4, 3.875) * 8)                           # the input's codes (TRN, SAT)
    want = (q[:, feat] > np.floor(thr * 8)).reshape(len(xs), groups, -1).sum(2)
    np.testing.assert_array_equal(design.predict(xs), want)
    np.testing.assert_array_equal(design.execute_netlist(xs), design.predict_codes(xs))
    np.testing.assert_array_equal(Design.from_json(design.to_json()).predict(xs), want)


def test_popcount_refuses_bad_groups_and_inputs():
    g = GraphBuilder()
    x = g.input(parse_type("ufixed<1,1>"), 6)
    with pytest.raises(GraphError, match="6 bits do not split into 4 groups"):
        g.node(Popcount(4), (x,), "pc")
    with pytest.raises(GraphError, match="at least 1"):
        Popcount(0)
    y = g.input(parse_type("fixed<6,3>"), 4)
    with pytest.raises(GraphError, match="input 0 is not a bit"):
        g.node(Popcount(2), (y,), "pc2")
    with pytest.raises(ValueError, match="'adders' or 'compressors'"):
        qnn.GroupSum(5, popcount="wallace")


def test_ops_refuse_bad_parameters_and_inputs():
    with pytest.raises(GraphError, match="1..6"):
        BitLookup(np.zeros((2, 7), dtype=int), np.zeros((2, 128)))
    with pytest.raises(GraphError, match="values other than 0 and 1"):
        BitLookup(np.zeros((2, 2), dtype=int), np.full((2, 4), 2))
    with pytest.raises(GraphError, match="not finite"):
        Thermometer([0, 1], [0.5, np.nan])
    g = GraphBuilder()
    x = g.input(parse_type("fixed<6,3>"), 4)
    with pytest.raises(GraphError, match="input 0 is not a bit"):
        g.node(BitLookup(np.array([[0, 2]]), np.zeros((1, 4))), (x,), "lut")


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("decay", ["linear", "exp"])
def test_efd_gradient_equals_its_definition(decay, rng):
    k, units, n = 3, 4, 7
    tables = torch.tensor(rng.uniform(-2, 2, (units, 1 << k)), requires_grad=True)
    bits = torch.tensor(rng.integers(0, 2, (n, units, k)), dtype=torch.float64, requires_grad=True)
    g = torch.tensor(rng.normal(size=(n, units)))
    out = _EFDLookup.apply(bits, tables, _efd_weights(k, decay))
    weight = (lambda h: 1 / (h + 1)) if decay == "linear" else (lambda h: 3.0 ** -h)
    out.backward(g)
    A = tables.detach().clamp(-1, 1).numpy()
    b = bits.detach().numpy().astype(int)
    want_x = np.zeros((n, units, k))
    want_t = np.zeros((units, 1 << k))
    for s in range(n):
        for u in range(units):
            a = int((b[s, u] << np.arange(k)).sum())
            want_t[u, a] += g[s, u]
            for i in range(k):
                tot = 0.0
                for c in range(1 << k):
                    h = ((a ^ c) & ~(1 << i)).bit_count()
                    tot += (1 if c >> i & 1 else -1) * A[u, c] * weight(h)
                want_x[s, u, i] = g[s, u] * tot
    np.testing.assert_allclose(bits.grad.numpy(), want_x, rtol=1e-12)
    np.testing.assert_allclose(tables.grad.numpy(), want_t, rtol=1e-12)
    np.testing.assert_array_equal(out.detach().numpy(), (tables.detach().numpy()[np.arange(units), :][
        np.arange(units)[None], (b << np.arange(k)).sum(-1)] > 0).astype(float))


@pytest.mark.parametrize("mapping", ["random", "learned"])
def test_training_learns_and_eval_forward_is_binary(mapping):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 4))
    y = ((x[:, 0] > 0.3).astype(int) + (x[:, 1] > -0.5).astype(int) * 2 + (x[:, 2] > 1)) % 5
    model = lutnet(mapping=mapping, units=(50, 25), k=(6, 6))
    model[0].init_quantiles(x)
    before = [m.connections.clone() for m in model if isinstance(m, qnn.LUTLayer)]
    qnn.fit_lutnet(model, x, y, epochs=4, lr=3e-2, seed=1)
    acc = (model_out(model, x).argmax(1) == y).mean()
    assert acc > 0.5, acc                                           # chance is 0.2
    bits = model[:-1].eval()(torch.as_tensor(x)).detach()
    assert set(np.unique(bits.numpy())) <= {0.0, 1.0}
    after = [m.connections for m in model if isinstance(m, qnn.LUTLayer)]
    assert any(not torch.equal(a, b) for a, b in zip(before, after)) == (mapping == "learned")


def test_learned_thresholds_move():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(1500, 4))
    y = (x[:, 0] > 0.7).astype(int)
    enc = qnn.Thermometer(4, 3, "fixed<8,3,TRN,SAT>", learn=True)
    model = torch.nn.Sequential(enc, qnn.LUTLayer(12, 10, 4), qnn.GroupSum(2))
    t0 = enc.thresholds.detach().clone()
    qnn.fit_lutnet(model, x, y, epochs=2, lr=3e-2)
    assert not torch.equal(t0, enc.thresholds.detach())


def test_clamp_keeps_the_entries_within_one():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1500, 4))
    y = (x[:, 0] + x[:, 1] > 0).astype(int)
    peaks = {}
    for clamp in (False, True):
        model = torch.nn.Sequential(qnn.Thermometer(4, 4, "fixed<6,3,TRN,SAT>").init_quantiles(x),
                                    qnn.LUTLayer(16, 10, 4, clamp=clamp), qnn.GroupSum(2))
        qnn.fit_lutnet(model, x, y, epochs=3, lr=0.2, tau=1.0)
        model.train()(torch.as_tensor(x[:4]))                      # the clamp acts on the training forward
        peaks[clamp] = float(model[1].tables.detach().abs().max())
    assert peaks[True] <= 1.0 < peaks[False], peaks


def test_default_tau_is_the_root_of_the_units_per_class():
    enc = qnn.Thermometer(4, 4)
    model = torch.nn.Sequential(enc, qnn.LUTLayer(16, 80, 6), qnn.LUTLayer(80, 45, 6), qnn.GroupSum(5))
    assert default_tau(model) == 3.0
    with pytest.raises(ValueError, match="tau must be positive"):
        qnn.fit_lutnet(model, np.zeros((8, 4)), np.zeros(8, dtype=int), epochs=1, tau=-1.0)


def test_per_feature_input_types_and_their_errors():
    enc = qnn.Thermometer(4, 3, MIXED)
    assert enc.types.width.tolist() == [8, 6, 10, 6]
    x = np.array([[0.04, 0.04, 0.04, 0.2]])                              # each feature at its own LSB
    assert enc.quantize(torch.as_tensor(x)).numpy().tolist() == [[1 / 32, 0.0, 5 / 128, 1 / 8]]
    with pytest.raises(ValueError, match="3 input types for 4 features"):
        qnn.Thermometer(4, 3, MIXED[:3])
    with pytest.raises(ValueError, match="share one rounding and overflow mode"):
        qnn.Thermometer(2, 3, ["fixed<6,3,TRN,SAT>", "fixed<6,3,RND,SAT>"])
    with pytest.raises(ValueError, match="'linear' or 'exp'"):
        qnn.LUTLayer(8, 4, 3, efd="cubic")


# --------------------------------------------------------------------------- export


MIXED = ["fixed<8,3,TRN,SAT>", "fixed<6,3,TRN,SAT>", "fixed<10,3,TRN,SAT>", "fixed<6,3,TRN,SAT>"]


@pytest.mark.parametrize("case", [{}, {"input_type": "fixed<9,4>", "k": (3, 5)}, {"input_type": MIXED, "popcount": "compressors", "units": (40, 35)},
                                  {"mapping": "learned", "units": (20, 5), "k": (2, 6), "n_thr": 3}])
def test_model_equals_design_and_netlist(case, rng):
    model = randomize(lutnet(**case), rng)
    design = rtl4ml.convert(model, clock_ns=2.5)
    x = np.concatenate([threshold_inputs(model[0], rng, 3000), rng.uniform(-20, 20, (200, 4))])
    ref = model_out(model, x)
    np.testing.assert_array_equal(design.predict(x), ref)
    np.testing.assert_array_equal(design.execute_netlist(x), design.predict_codes(x))
    loaded = Design.from_json(design.to_json())
    np.testing.assert_array_equal(loaded.predict(x), ref)


def test_export_errors_name_the_layer():
    model = torch.nn.Sequential(qnn.LUTLayer(4, 5, 2))
    with pytest.raises(ConversionError, match=r"layer '0' \(LUTLayer\):.*input 0 is not a bit"):
        rtl4ml.convert(model, input_type="fixed<6,3>")
    model = torch.nn.Sequential(qnn.Thermometer(4, 2), qnn.LUTLayer(8, 6, 2), qnn.GroupSum(4))
    with pytest.raises(ConversionError, match=r"GroupSum\): 6 bits do not split into 4"):
        rtl4ml.convert(model)
    with pytest.raises(ConversionError, match="input_type does not apply"):
        rtl4ml.convert(lutnet(), input_type="fixed<8,3>")
    with pytest.raises(ValueError, match="1..6"):
        qnn.LUTLayer(8, 4, 7)


@pytest.mark.hw
def test_rtl_is_bit_exact_on_random_threshold_and_jet_inputs(rng):
    if not JETS.exists():
        pytest.skip(f"{JETS} not found")
    jets = np.load(JETS)["features"].astype(np.float64)
    z = (jets - jets.mean(0)) / jets.std(0)
    types = ["fixed<8,3,TRN,SAT>"] * 2 + ["fixed<6,3,TRN,SAT>"] * 14      # finer masses: Compare comparators
    enc = qnn.Thermometer(16, 8, types).init_quantiles(z)
    model = torch.nn.Sequential(enc, qnn.LUTLayer(enc.out_bits, 60, 6, seed=1), qnn.LUTLayer(60, 45, 5, seed=2),
                                qnn.GroupSum(5, popcount="compressors"))          # the adder head: Reduce's tests
    randomize(model[1:], rng)
    design = rtl4ml.convert(model, clock_ns=2.0)
    from rtl4ml.netlist.prims import Compare, Lookup
    kinds = {type(p) for p in design.netlist.prims if p.origin == "0"}
    assert {Compare, Lookup} <= kinds, kinds                              # both comparator kinds in one build
    assert any(isinstance(p, Lookup) for p in design.netlist.prims if p.origin == "3")   # compressor tables
    x = np.concatenate([z, threshold_inputs(enc, rng, 2000), rng.uniform(-6, 6, (500, 16))])
    ref = model_out(model, x)
    np.testing.assert_array_equal(design.predict(x), ref)
    r = design.verify(x)
    assert r.ok, str(r)
    np.testing.assert_array_equal(r.outputs, ref)


def test_learned_select_gradients(rng):
    from rtl4ml.nn.lutnet import _LearnedSelect
    x = torch.tensor(rng.integers(0, 2, (5, 7)), dtype=torch.float64, requires_grad=True)
    scores = torch.tensor(rng.normal(size=(4, 7)), requires_grad=True)
    g = torch.tensor(rng.normal(size=(5, 4)))
    out = _LearnedSelect.apply(x, scores)
    np.testing.assert_array_equal(out.detach().numpy(), x.detach().numpy()[:, scores.detach().numpy().argmax(1)])
    out.backward(g)
    np.testing.assert_allclose(scores.grad.numpy(), g.numpy().T @ (2 * x.detach().numpy() - 1))
    np.testing.assert_allclose(x.grad.numpy(), g.numpy() @ torch.softmax(scores.detach(), 1).numpy())


@pytest.mark.parametrize("tname, prim", [("fixed<6,3>", "Lookup"), ("fixed<7,3>", "Compare")])
def test_comparators_are_tables_up_to_six_input_bits(tname, prim):
    from rtl4ml.netlist.prims import Compare, Lookup
    enc = qnn.Thermometer(2, 3, tname)
    design = rtl4ml.convert(torch.nn.Sequential(enc).eval())
    kinds = {type(p).__name__ for p in design.netlist.prims if isinstance(p, (Compare, Lookup))}
    assert kinds == {prim}
    assert sum(isinstance(p, (Compare, Lookup)) for p in design.netlist.prims) == enc.comparators() == 6
