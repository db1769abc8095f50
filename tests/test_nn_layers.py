"""QAT convolutions, pooling, tables and softmax: model(x) == design.predict(x) == RTL, bit
for bit; EBOPs of a convolution; the torch frontend's convolution, pooling and table layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import rtl4ml
import rtl4ml.nn as qnn
from rtl4ml.graph import lower_graph
from rtl4ml.netlist.execute import execute, split_outputs
from rtl4ml.torch_common import ConversionError


def train_briefly(model: nn.Module, x: torch.Tensor, steps: int = 15, beta: float = 1e-6) -> None:
    torch.manual_seed(0)
    model.train()
    model(x)                                   # materialize lazy quantizers
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    target = torch.randn(len(x), *model(x).shape[1:])
    for _ in range(steps):
        loss = (model(x) - target).square().mean() + beta * qnn.ebops(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    qnn.calibrate(model, x)


def cnn2d() -> nn.Module:
    return nn.Sequential(
        qnn.QInput((1, 8, 8)),
        qnn.QConv2d(1, 4, 3, padding=1, batchnorm=True), qnn.QReLU(),
        qnn.QMaxPool2d(2),
        qnn.QConv2d(4, 6, 3, padding=1, groups=2), qnn.QReLU(),
        qnn.QAvgPool2d(3, stride=2, padding=1),               # 1/9: a quantized scale
        nn.Flatten(), qnn.QLinear(24, 5), qnn.QActivation(init_f=4), qnn.QSoftmax(dim=1))


def cnn1d() -> nn.Module:
    return nn.Sequential(
        qnn.QInput((3, 12)),
        qnn.QConv1d(3, 4, 3, stride=2, dilation=1, batchnorm=True), qnn.QActivation(overflow="SAT", init_f=5),
        qnn.QTanh(), qnn.QAvgPool1d(2), nn.Flatten(), qnn.QLinear(8, 2),
        qnn.QActivation(overflow="SAT", init_f=5), qnn.QSigmoid())


MODELS = {"cnn2d": (cnn2d, (1, 8, 8)), "cnn1d": (cnn1d, (3, 12))}


@pytest.mark.parametrize("name", MODELS)
def test_qat_model_equals_design_bit_for_bit(name):
    make, shape = MODELS[name]
    torch.manual_seed(1)
    model = make()
    x = torch.randn(256, *shape) * 1.5
    train_briefly(model, x)
    design = rtl4ml.convert(model)
    xt = torch.cat([x, torch.randn(512, *shape) * 3])        # beyond the calibrated range too
    with torch.no_grad():
        want = model(xt.double()).numpy()
    got = design.predict(xt.numpy())
    np.testing.assert_array_equal(got, want)
    q = design.graph.quantize_inputs([xt.numpy()])
    nl = lower_graph(design.graph)
    (out,) = split_outputs(nl, execute(nl, q))
    np.testing.assert_array_equal(out, design.predict_codes(xt.numpy()))
    assert float(qnn.ebops(model)) > 0


@pytest.mark.hw
def test_qat_cnn_rtl_is_bit_exact():
    torch.manual_seed(2)
    model = cnn2d()
    x = torch.randn(256, 1, 8, 8)
    train_briefly(model, x, steps=5)
    design = rtl4ml.convert(model, clock_ns=2.5)
    xt = np.random.default_rng(0).normal(scale=2, size=(600, 1, 8, 8))
    r = design.verify(xt)
    assert r.ok, str(r)
    with torch.no_grad():
        np.testing.assert_array_equal(r.outputs, model(torch.from_numpy(xt)).numpy())


def test_conv_ebops_count_every_position_and_tap():
    """The convolution formula against a loop over output positions and taps."""
    torch.manual_seed(3)
    conv = qnn.QConv2d(2, 3, (2, 3), stride=(1, 2), padding=1, groups=1)
    conv.eval()
    bx = torch.randint(0, 9, (2, 5, 6)).double()
    bw = conv.weight_bits().detach().double()
    total, acc = 0.0, 0.0
    for o in range(3):
        for i in range((5 + 2 - 2) // 1 + 1):
            for j in range((6 + 2 - 3) // 2 + 1):
                for c in range(2):
                    for a in range(2):
                        for b in range(3):
                            r, s = i - 1 + a, 2 * j - 1 + b
                            if 0 <= r < 5 and 0 <= s < 6 and bw[o, c, a, b] > 0:
                                total += bx[c, r, s] * bw[o, c, a, b]
                                acc += bx[c, r, s] + bw[o, c, a, b]
    np.testing.assert_allclose(float(conv.ebops(bx, accumulator=False)), total)
    np.testing.assert_allclose(float(conv.ebops(bx)), total + acc)


def test_table_input_too_wide_names_the_layer():
    model = nn.Sequential(qnn.QInput(4, init_f=12), qnn.QSigmoid())
    x = torch.randn(64, 4) * 4
    model.train()
    model(x)
    model.eval()
    qnn.calibrate(model, x)
    with pytest.raises(ConversionError, match=r"layer '1' \(QSigmoid\).*more than 2\^12.*QActivation with fewer bits"):
        rtl4ml.convert(model)


# --------------------------------------------------------------------------- torch frontend


def test_torch_cnn_converts_with_batchnorm_folded():
    torch.manual_seed(4)
    m = nn.Sequential(nn.Conv1d(3, 4, 3, padding="same"), nn.BatchNorm1d(4), nn.LeakyReLU(0.125),
                      nn.MaxPool1d(2), nn.Upsample(scale_factor=2), nn.Conv1d(4, 2, 1), nn.Sigmoid(),
                      nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(2, 3), nn.Softmax(dim=1))
    with torch.no_grad():
        m[1].running_mean.uniform_(-0.5, 0.5)
        m[1].running_var.uniform_(0.5, 2)
    m.eval()
    d = rtl4ml.convert(m, input_type="fixed<10,4>", input_shape=(3, 8), weight_type="fixed<10,3,RND,SAT>",
                       result_type="fixed<12,5,RND,SAT>", activation_type={"6": "ufixed<10,0,RND,SAT>"})
    kinds = [n.op.kind for n in d.graph.nodes]
    assert "affine" not in kinds and kinds.count("conv") == 2 and "upsample" in kinds
    x = np.random.default_rng(0).normal(size=(400, 3, 8))
    with torch.no_grad():
        ref = m(torch.tensor(x, dtype=torch.float32)).numpy()
    got = d.predict(x)
    assert np.abs(got - ref).max() < 0.05
    nl = lower_graph(d.graph)
    q = d.graph.quantize_inputs([x])
    (out,) = split_outputs(nl, execute(nl, q))
    np.testing.assert_array_equal(out, d.predict_codes(x))


@pytest.mark.parametrize("layer,message", [
    (nn.Conv1d(3, 3, 3, padding=1, padding_mode="reflect"), "padding_mode='reflect' is not supported"),
    (nn.MaxPool1d(2, ceil_mode=True), "ceil_mode=True is not supported"),
    (nn.AdaptiveAvgPool1d(2), r"output_size=2 is not supported; only global pooling"),
    (nn.Upsample(scale_factor=2, mode="linear"), "mode='linear' is not supported"),
    (nn.Conv1d(3, 3, 2, padding="same"), "padding='same' with an even kernel"),
])
def test_unsupported_layer_options_are_refused_by_name(layer, message):
    m = nn.Sequential(nn.Identity(), layer)
    with pytest.raises(rtl4ml.graph.GraphError, match=rf"layer '1' \({type(layer).__name__}\).*{message}"):
        rtl4ml.convert(m, input_type="fixed<8,3>", input_shape=(3, 8), weight_type="fixed<8,3>")


def test_wide_table_input_suggests_table_input_type():
    torch.manual_seed(5)
    m = nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    with pytest.raises(rtl4ml.graph.GraphError, match=r"layer '1' \(Tanh\).*pass table_input_type="):
        rtl4ml.convert(m, input_type="fixed<12,4>", weight_type="fixed<10,3>")
    d = rtl4ml.convert(m, input_type="fixed<12,4>", weight_type="fixed<10,3>", table_input_type="fixed<10,3,RND,SAT>")
    x = np.random.default_rng(1).normal(size=(200, 4))
    with torch.no_grad():
        ref = m(torch.tensor(x, dtype=torch.float32)).numpy()
    # tanh entries round to 2^-8, its input to 2^-8, the weights to 2^-8 (times |x| <= 4, 4 inputs)
    assert np.abs(d.predict(x) - ref).max() < 0.05


def test_tables_count_in_ebops():
    """A table of a address bits and b output bits costs b * 2**max(a - 6, 0) LUTs per element."""
    torch.manual_seed(6)
    model = nn.Sequential(qnn.QInput(3, init_f=6), qnn.QSigmoid(init_f=5))
    x = torch.randn(64, 3) * 3
    model.train()
    model(x)
    model.eval()
    qnn.calibrate(model, x)
    a = model[0].quantizer.bits().detach()
    b = model[1].quantizer.bits().detach()
    assert (a > 6).all()
    np.testing.assert_allclose(float(qnn.ebops(model)), float((b * 2 ** (a - 6)).sum()))
