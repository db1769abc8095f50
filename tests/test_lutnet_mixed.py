"""NeuraLUT-style units (qnn.MLPLUTLayer) and LUT layers mixed with arithmetic layers in one
model: the eval forward reads the tabulated MLP, gradients are the surrogate's, and every mix
is model == design.predict == netlist (== RTL in one shared Verilator build)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import rtl4ml
import rtl4ml.nn as qnn
from rtl4ml.design import Design


def model_out(model, x):
    with torch.no_grad():
        return model.eval()(torch.as_tensor(x, dtype=torch.float64)).numpy().astype(np.float64)


def toy(rng, n=2000, f=4):
    x = rng.normal(size=(n, f))
    y = ((x[:, 0] > 0.3).astype(int) + (x[:, 1] > -0.5).astype(int) * 2 + (x[:, 2] > 1)) % 5
    return x, y


def check_exact(model, x):
    design = rtl4ml.convert(model, clock_ns=2.5)
    ref = model_out(model, x)
    np.testing.assert_array_equal(design.predict(x), ref)
    np.testing.assert_array_equal(design.execute_netlist(x), design.predict_codes(x))
    np.testing.assert_array_equal(Design.from_json(design.to_json()).predict(x), ref)
    return design, ref


def test_mlplut_eval_reads_the_table_its_mlps_give(rng):
    layer = qnn.MLPLUTLayer(20, 12, k=5, seed=3, hidden=8)
    bits = torch.as_tensor(rng.integers(0, 2, (400, 20)), dtype=torch.float32)
    tables = layer.truth_tables()
    assert tables.shape == (12, 32) and set(np.unique(tables)) <= {0, 1}
    assert 0 < tables.mean() < 1                                        # not a constant unit
    sel = bits.numpy()[:, layer.connections.numpy()].astype(np.int64)  # (N, units, k)
    addr = (sel << np.arange(5)).sum(-1)
    expect = tables[np.arange(12)[None], addr]
    np.testing.assert_array_equal(layer.eval()(bits).numpy(), expect)
    with torch.no_grad():                                               # the MLP itself, where not at its step
        z = layer._mlp(torch.as_tensor(sel, dtype=torch.float32)).numpy()
    far = np.abs(z) > 1e-4
    np.testing.assert_array_equal((z > 0)[far], expect[far].astype(bool))
    np.testing.assert_array_equal(layer.train()(bits).detach().numpy()[far], expect[far])


def test_mlplut_gradients_are_the_tanh_surrogate(rng):
    layer = qnn.MLPLUTLayer(10, 6, k=4, seed=1, hidden=5).train()
    bits = torch.as_tensor(rng.integers(0, 2, (50, 10)), dtype=torch.float32).requires_grad_()
    g = torch.as_tensor(rng.normal(size=(50, 6)), dtype=torch.float32)
    layer(bits).backward(g)
    got = [bits.grad.clone()] + [p.grad.clone() for p in (layer.w1, layer.skip, layer.b2)]
    bits.grad = None
    layer.zero_grad()
    sel = bits[:, layer.connections.reshape(-1)].reshape(50, 6, 4)
    ((1 + torch.tanh(layer._mlp(sel))) / 2).backward(g)
    want = [bits.grad] + [p.grad for p in (layer.w1, layer.skip, layer.b2)]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    assert float(got[0].abs().sum()) > 0


@pytest.mark.parametrize("mapping", ["random", "learned"])
def test_mlplut_network_learns_and_equals_its_design(mapping, rng):
    x, y = toy(rng)
    enc = qnn.Thermometer(4, 6, "fixed<6,3,TRN,SAT>").init_quantiles(x)
    model = torch.nn.Sequential(enc, qnn.MLPLUTLayer(enc.out_bits, 40, 6, mapping=mapping, seed=2),
                                qnn.MLPLUTLayer(40, 25, 4, seed=3, hidden=4), qnn.GroupSum(5))
    qnn.fit_lutnet(model, x, y, epochs=4, lr=3e-2, seed=1)
    assert (model_out(model, x).argmax(1) == y).mean() > 0.5            # chance is 0.2
    assert qnn.lut_units(model) == 65
    check_exact(model, np.concatenate([x, rng.uniform(-6, 6, (300, 4))]))


def test_mlplut_refuses_an_empty_hidden_layer():
    with pytest.raises(ValueError, match="at least one hidden neuron"):
        qnn.MLPLUTLayer(8, 4, 3, hidden=0)


def test_lut_bits_feed_an_arithmetic_head(rng):
    x, y = toy(rng)
    enc = qnn.Thermometer(4, 6, "fixed<6,3,TRN,SAT>").init_quantiles(x)
    model = torch.nn.Sequential(enc, qnn.LUTLayer(enc.out_bits, 30, 6, mapping="learned"), qnn.QLinear(30, 5))
    qnn.fit(model, x, y, epochs=4, lr=3e-2)
    assert (model_out(model, x).argmax(1) == y).mean() > 0.5
    head = model[2]
    bw = head.weight_bits().detach()
    live = (bw > 0).to(bw.dtype)
    expect = float(bw.sum() + (live * (bw + 1)).sum())                  # every input is one bit
    assert float(qnn.ebops(model).detach()) == pytest.approx(expect)
    check_exact(model, x)


def mixed_front(rng, x, y, epochs=3):
    """QInput -> QLinear -> QReLU -> Thermometer -> LUT units: trained end to end."""
    model = torch.nn.Sequential(qnn.QInput(4), qnn.QLinear(4, 6), qnn.QReLU(6),
                                qnn.Thermometer(6, 4, "fixed<6,3,TRN,SAT>"),
                                qnn.LUTLayer(24, 30, 6, mapping="learned", seed=4), qnn.GroupSum(5))
    w0 = model[1].weight.detach().clone()
    qnn.fit(model, x, y, epochs=epochs, lr=3e-2, loss=lambda o, t: torch.nn.functional.cross_entropy(o / 2.5, t))
    assert not torch.equal(w0, model[1].weight.detach())               # gradients pass the encoder
    return model


def test_arithmetic_layers_feed_a_thermometer(rng):
    x, y = toy(rng)
    model = mixed_front(rng, x, y)
    thresholds = model[3].thresholds.detach().clone()
    qnn.calibrate(model, x)
    assert model[3].thresholds.dtype == torch.float64                   # calibration keeps the exact values
    assert torch.equal(model[3].thresholds.detach(), thresholds)
    assert model[1].weight.dtype == torch.float32
    design, _ = check_exact(model, np.concatenate([x, rng.uniform(-8, 8, (300, 4))]))
    assert any(n.name == "3_quant" for n in design.graph.nodes)         # the encoder's input quantizer


def test_thermometer_on_a_tensor_with_gradients_stays_exact():
    """Inside a model its input carries gradients: the forward must still see the exact
    quantized value, also far outside the type's range (where ``x + (xq - x)`` is not ``xq``)."""
    enc = qnn.Thermometer(2, 3, "fixed<6,3,TRN,SAT>").init_quantiles(np.array([[-1.0, -1.0], [1.0, 1.0]]))
    x = torch.tensor([[1e30, -1e30], [0.3, 3.874], [-4.0, 1e-30]], dtype=torch.float64, requires_grad=True)
    want = enc.eval()(x.detach())
    assert torch.equal(enc(x), want)
    enc.train()
    assert torch.equal(enc(x), want)
    enc(x).sum().backward()
    assert torch.isfinite(x.grad).all() and float(x.grad[1].abs().sum()) > 0


@pytest.mark.hw
def test_rtl_of_a_mixed_arithmetic_and_lut_network(rng):
    """One build: QLinear -> Thermometer -> MLPLUTLayer -> LUTLayer -> QLinear head."""
    x, y = toy(rng, 3000)
    model = torch.nn.Sequential(qnn.QInput(4), qnn.QLinear(4, 6), qnn.QReLU(6),
                                qnn.Thermometer(6, 4, "fixed<6,3,TRN,SAT>"),
                                qnn.MLPLUTLayer(24, 30, 6, mapping="learned", seed=4, hidden=6),
                                qnn.LUTLayer(30, 20, 4, seed=5), qnn.QLinear(20, 5))
    qnn.fit(model, x, y, epochs=2, lr=3e-2)
    qnn.calibrate(model, x)
    xs = np.concatenate([x, rng.uniform(-8, 8, (500, 4))])
    design, ref = check_exact(model, xs)
    r = design.verify(xs)
    assert r.ok, str(r)
    np.testing.assert_array_equal(r.outputs, ref)
