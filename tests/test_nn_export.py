"""rtl4ml.nn export: the float64 eval forward pass == design.predict == the Netlist, bit for bit.

Models get random per-element precisions (some pruned to zero width), random weights and
all rounding/overflow modes; inputs include values on and next to quantization steps,
half-LSB ties and values far outside the calibrated ranges.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import rtl4ml  # noqa: E402
import rtl4ml.nn as qnn  # noqa: E402
from rtl4ml.frontends.torch import ConversionError  # noqa: E402

from .conftest import near_quantization_steps  # noqa: E402


def randomize(model: nn.Module, rng: np.random.Generator, f_lo: float = -2, f_hi: float = 8,
              prune: float = 0.15) -> nn.Module:
    """Random per-element bits; a fraction of weights pruned (f so low that they round to 0)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, qnn.WeightQuantizer):
                f = rng.uniform(f_lo, f_hi, m.f.shape)
                f[rng.random(m.f.shape) < prune] = -12
                m.f.copy_(torch.tensor(f))
            elif isinstance(m, qnn.ActivationQuantizer) and m.initialized:
                f = rng.uniform(f_lo, f_hi, m.f.shape)
                f[rng.random(m.f.shape) < prune / 2] = -12
                m.f.copy_(torch.tensor(f))
                if m.i is not None:
                    m.i.copy_(torch.tensor(rng.uniform(-1, 4, m.i.shape)))
                    m.i_ready.fill_(True)
            elif isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.tensor(rng.normal(0, 0.5, m.num_features)))
                m.running_var.copy_(torch.tensor(rng.uniform(0.3, 3, m.num_features)))
                m.weight.copy_(torch.tensor(rng.uniform(0.5, 2, m.num_features)))
                m.bias.copy_(torch.tensor(rng.normal(0, 0.3, m.num_features)))
    return model


def hard_inputs(design, rng, n: int, scale: float = 2.0) -> np.ndarray:
    """Gaussian inputs plus, per input element, its quantization steps, ties, ulps and range ends."""
    t = design.graph.input.op.types
    f = t.fraction
    x = near_quantization_steps(rng, rng.normal(0, scale, (n, len(f))), f)
    lo = t.min_q * np.ldexp(1.0, -f)
    hi = t.max_q * np.ldexp(1.0, -f)
    lsb = np.ldexp(1.0, -f)
    edges = np.stack([lo, hi, lo - lsb, hi + lsb, hi + lsb / 2, lo * 8 - 1, hi * 8 + 1])
    return np.concatenate([x, edges])


def forward64(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """The model's float64 evaluation-mode forward pass (the reference that export matches)."""
    model.eval()
    model.double()
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def assert_bit_exact(model: nn.Module, design, x: np.ndarray) -> np.ndarray:
    ref = forward64(model, x)
    emu = design.predict(x)
    np.testing.assert_array_equal(ref, emu)
    codes = design.execute_netlist(x)
    np.testing.assert_array_equal(codes, design.predict_codes(x))
    return ref


def mlp(n_in: int = 6, hidden=(9, 7), n_out: int = 4, **kw) -> nn.Sequential:
    layers: list = [qnn.QInput(n_in, init_i=2.0, rounding=kw.get("in_rounding", "TRN"),
                               overflow=kw.get("in_overflow", "SAT"))]
    n = n_in
    for h in hidden:
        layers += [qnn.QLinear(n, h, batchnorm=kw.get("batchnorm", False), rounding=kw.get("w_rounding", "RND")),
                   qnn.QReLU(h, rounding=kw.get("act_rounding", "TRN"), overflow=kw.get("act_overflow", "WRAP"),
                             init_i=3.0)]
        n = h
    layers.append(qnn.QLinear(n, n_out, rounding=kw.get("w_rounding", "RND")))
    if kw.get("out_quant"):
        layers.append(qnn.QActivation(n_out, rounding="RND_CONV", overflow="SAT_SYM", init_i=3.0))
    return nn.Sequential(*layers)


CASES = [
    dict(),
    dict(in_rounding="RND", in_overflow="WRAP", act_rounding="RND", w_rounding="TRN"),
    dict(in_rounding="RND_CONV", in_overflow="SAT_SYM", act_rounding="RND_CONV", act_overflow="SAT", out_quant=True),
    dict(batchnorm=True, act_overflow="SAT_SYM", w_rounding="RND_CONV"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_random_per_element_widths_are_bit_exact(case, seed):
    rng = np.random.default_rng(100 * case + seed)
    torch.manual_seed(seed)
    model = randomize(mlp(**CASES[case]), rng)
    x_cal = rng.normal(0, 1.5, (3000, 6))
    qnn.calibrate(model, x_cal)
    design = rtl4ml.convert(model, clock_ns=2.5)
    x = hard_inputs(design, rng, 3000, scale=3.0)  # beyond calibration: internal WRAPs wrap, SATs clip
    ref = assert_bit_exact(model, design, x)
    assert np.isfinite(ref).all()
    assert_bit_exact(model, design, x_cal)


def test_api_of_the_issue_with_lazy_relu_and_training():
    """The issue's example: QReLU() without a size, a few training steps, calibrate, convert."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (2000, 16)).astype(np.float32)
    y = (x[:, :5] @ rng.normal(0, 1, (5, 5))).argmax(1)
    torch.manual_seed(0)
    model = nn.Sequential(qnn.QInput(16), qnn.QLinear(16, 64), qnn.QReLU(), qnn.QLinear(64, 5))
    qnn.init_lazy(model, torch.from_numpy(x[:8]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for s in range(0, 2000, 100):
        task_loss = nn.functional.cross_entropy(model(xt[s:s + 100]), yt[s:s + 100])
        loss = task_loss + 1e-6 * qnn.ebops(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
    qnn.calibrate(model, x)
    design = rtl4ml.convert(model, clock_ns=2.5)
    model.eval()
    model.double()
    assert (model(torch.from_numpy(x)).detach().numpy() == design.predict(x)).all()
    assert_bit_exact(model, design, hard_inputs(design, rng, 2000))


# --------------------------------------------------------------------------- pruning


def test_pruned_weights_and_activations_remove_logic():
    rng = np.random.default_rng(11)
    torch.manual_seed(1)
    model = randomize(mlp(), rng, f_lo=3, f_hi=6, prune=0.0)
    x = rng.normal(0, 1.5, (2000, 6))
    qnn.calibrate(model, x)
    full = rtl4ml.convert(model).estimate(synth=False)
    # prune half of the first layer's weights: code 0 means no adder
    with torch.no_grad():
        model[1].weight_quantizer.f[:, :3] = -20
    qnn.calibrate(model, x)
    d = rtl4ml.convert(model)
    assert (d.graph["1"].op.weight[:3] == 0).all()
    fewer = d.estimate(synth=False)
    assert fewer.adders < full.adders and fewer.adder_bits < full.adder_bits
    # a width-0 activation is the constant 0: the next layer's column of adders disappears
    with torch.no_grad():
        model[2].quantizer.f[:5] = -20
    qnn.calibrate(model, x)
    d2 = rtl4ml.convert(model)
    assert (model[2].fixed_types().width[:5] == 0).all()
    assert d2.estimate(synth=False).adders < fewer.adders
    assert_bit_exact(model, d2, hard_inputs(d2, rng, 1000))
    # pruning everything leaves only the biases: no adders at all in the hidden layers
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, qnn.WeightQuantizer):
                m.f.fill_(-20)
    qnn.calibrate(model, x)
    d3 = rtl4ml.convert(model)
    assert d3.estimate(synth=False).adders == 0
    assert_bit_exact(model, d3, x)


def test_ebops_counts_only_live_bits():
    rng = np.random.default_rng(3)
    model = randomize(mlp(), rng)
    x = rng.normal(0, 1.5, (500, 6))
    qnn.calibrate(model, x)
    with torch.no_grad():
        e = float(qnn.ebops(model, accumulator=False))
        manual = 0.0
        layers = list(model)
        for k, m in enumerate(layers):
            if isinstance(m, qnn.QLinear):
                bi = layers[k - 1].fixed_types().width
                w, _ = m.export_params()
                wq = m.weight_quantizer
                codes = np.round(np.abs(w.T) * 2.0 ** np.round(np.clip(wq.f.numpy(), -16, 24)))
                bw = np.where(codes > 0, np.floor(np.log2(np.maximum(codes, 1))) + 1, 0)
                manual += float((bw * bi[None, :]).sum())
    assert e == manual


def test_ebops_gradient_equals_finite_difference_of_whole_bits():
    """d ebops / d f equals the change of ebops when one fractional bit is added (TRN, positive codes)."""
    torch.manual_seed(0)
    lin = qnn.QLinear(3, 2, bias=False, rounding="TRN").double()
    inq = qnn.QInput(3, overflow="WRAP", rounding="TRN", init_f=3.0).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.7, 1.3, 0.26], [2.2, 0.9, 0.41]]))
        lin.weight_quantizer.f.fill_(4.0)
    model = nn.Sequential(inq, lin)
    x = torch.tensor([[0.3, 1.9, 0.55], [2.6, 0.2, 0.7]], dtype=torch.float64)
    model.train()
    model(x)
    e0 = qnn.ebops(model)
    e0.backward()
    g_w, g_in = lin.weight_quantizer.f.grad.clone(), inq.quantizer.f.grad.clone()
    for f, g, indices in ((lin.weight_quantizer.f, g_w, [(0, 0), (1, 2), (0, 1)]),
                          (inq.quantizer.f, g_in, [0, 1, 2])):
        for idx in indices:
            with torch.no_grad():
                f[idx] += 1
            model(x)
            fd = float(qnn.ebops(model).detach() - e0.detach())
            with torch.no_grad():
                f[idx] -= 1
            assert fd == float(g[idx])


def test_qlinear_is_linear_in_its_input():
    """Gradient w.r.t. the input equals the finite difference (the layer is exactly linear)."""
    torch.manual_seed(2)
    lin = qnn.QLinear(4, 3).double().eval()
    x = torch.randn(1, 4, dtype=torch.float64, requires_grad=True)
    y = lin(x)
    J = torch.stack([torch.autograd.grad(y[0, j], x, retain_graph=True)[0][0] for j in range(3)])
    h = 2.0 ** -10
    for i in range(4):
        e = torch.zeros(1, 4, dtype=torch.float64)
        e[0, i] = h
        fd = (lin(x.detach() + e) - lin(x.detach() - e)) / (2 * h)
        torch.testing.assert_close(fd[0], J[:, i], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- calibration guard


def test_convert_refuses_uncalibrated_or_stale_models():
    rng = np.random.default_rng(0)
    model = randomize(mlp(), rng)
    x = rng.normal(0, 1, (200, 6))
    with pytest.raises(ConversionError, match=r"not calibrated: call rtl4ml\.nn\.calibrate\(model, x_sample\)"):
        rtl4ml.convert(model)
    qnn.calibrate(model, x)
    rtl4ml.convert(model)
    # a training step after calibration makes the widths stale
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    model(torch.tensor(x, dtype=torch.float32)).sum().backward()
    opt.step()
    with pytest.raises(ConversionError, match=r"changed after calibration.*calibrate\(model, x_sample\) again"):
        rtl4ml.convert(model)
    qnn.calibrate(model, x)
    rtl4ml.convert(model)
    # changing precision (float32 <-> float64) is not a change
    model.double()
    rtl4ml.convert(model)


def test_conversion_errors_name_the_layer():
    with pytest.raises(ConversionError, match=r"layer '0' \(QLinear\).*qnn\.QInput\(5\)"):
        rtl4ml.convert(nn.Sequential(qnn.QLinear(5, 2)))
    rng = np.random.default_rng(0)
    model = randomize(mlp(), rng)
    qnn.calibrate(model, rng.normal(0, 1, (100, 6)))
    with pytest.raises(ConversionError, match="input_type does not apply"):
        rtl4ml.convert(model, input_type="fixed<8,3>")
    with pytest.raises(ConversionError, match="weight_type for layer '1' does not apply"):
        rtl4ml.convert(model, weight_type={"1": "fixed<8,2>"})
    with pytest.raises(ConversionError, match="weight_type given, but no layer"):
        rtl4ml.convert(model, weight_type="fixed<8,2>")
    with torch.no_grad():
        model[1].weight[0, 2] = float("nan")
    with pytest.raises(qnn.QuantizerError, match=r"layer '2' saw non-finite values"):
        qnn.calibrate(model, rng.normal(0, 1, (100, 6)))


def test_float64_exactness_guard():
    """Sums wider than 53 bits would make the float64 forward inexact: convert refuses."""
    model = nn.Sequential(qnn.QInput(4, init_i=20.0, f_bounds=(-16, 40)),
                          qnn.QLinear(4, 2, f_bounds=(-16, 40)))
    with torch.no_grad():
        model[0].quantizer.f.fill_(30.0)
        model[1].weight_quantizer.f.fill_(30.0)
    qnn.calibrate(model, np.random.default_rng(0).normal(0, 1e5, (50, 4)))
    with pytest.raises(ConversionError, match=r"layer '1' \(QLinear\): its sums need \d+ bits"):
        rtl4ml.convert(model)


# --------------------------------------------------------------------------- BatchNorm


def test_plain_linear_batchnorm_is_folded_for_ptq():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    randomize(model, rng)
    model.eval()
    lin, bn = model[0], model[1]
    folded = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    with torch.no_grad():
        s = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        folded[0].weight.copy_(lin.weight.double() * s[:, None])
        folded[0].bias.copy_((lin.bias.double() - bn.running_mean.double()) * s + bn.bias.double())
        folded[2].load_state_dict({k: v.double() for k, v in model[3].state_dict().items()})
    kw = dict(input_type="fixed<10,3>", weight_type="fixed<8,2,RND,SAT>", result_type="fixed<12,5,RND,SAT>")
    x = rng.normal(0, 1, (500, 5))
    a = rtl4ml.convert(model, **kw)
    b = rtl4ml.convert(folded, **kw)
    np.testing.assert_array_equal(a.predict(x), b.predict(x))
    with pytest.raises(ConversionError, match=r"layer '0' \(BatchNorm1d\) must directly follow a Linear"):
        rtl4ml.convert(nn.Sequential(nn.BatchNorm1d(5), nn.Linear(5, 2)), **kw)


def test_qlinear_followed_by_batchnorm_is_refused_then_fused():
    rng = np.random.default_rng(4)
    model = nn.Sequential(qnn.QInput(5, init_i=2.0), qnn.QLinear(5, 6), nn.BatchNorm1d(6), qnn.QReLU(6),
                          qnn.QLinear(6, 2))
    randomize(model, rng)
    x = rng.normal(0, 1, (400, 5))
    qnn.calibrate(model, x)
    with pytest.raises(ConversionError, match=r"batchnorm=True.*fold_batchnorm"):
        rtl4ml.convert(model)
    fused = qnn.fold_batchnorm(model)
    assert len(fused) == 4 and fused[1].bn is not None
    qnn.calibrate(fused, x)
    d = rtl4ml.convert(fused)
    assert_bit_exact(fused, d, hard_inputs(d, rng, 500))


def test_batchnorm_trains_folded_and_exports_exactly():
    rng = np.random.default_rng(9)
    torch.manual_seed(3)
    model = mlp(batchnorm=True)
    x = torch.tensor(rng.normal(0, 1, (512, 6)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 4, 512))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = model[1].bn.running_mean.clone()
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(x), y) + 1e-5 * qnn.ebops(model)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not torch.equal(before, model[1].bn.running_mean)  # running statistics were updated
    qnn.calibrate(model, x)
    d = rtl4ml.convert(model)
    assert_bit_exact(model, d, hard_inputs(d, rng, 1000))


# --------------------------------------------------------------------------- files and dtypes


def test_saved_qat_model_converts_from_file(tmp_path):
    rng = np.random.default_rng(5)
    model = randomize(mlp(batchnorm=True, out_quant=True), rng)
    x = rng.normal(0, 1, (300, 6))
    qnn.calibrate(model, x)
    d = rtl4ml.convert(model)
    path = tmp_path / "qat.pt"
    torch.save(model, path)
    d2 = rtl4ml.convert(path)
    np.testing.assert_array_equal(d.predict(x), d2.predict(x))
    assert d.verilog == d2.verilog
    from rtl4ml.cli import main
    assert main(["convert", str(path), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "net.v").exists()


class Evil(nn.Module):
    def forward(self, x):
        return x


def test_file_with_foreign_objects_is_refused(tmp_path):
    model = nn.Sequential(qnn.QInput(3, init_i=1.0), Evil())
    path = tmp_path / "evil.pt"
    torch.save(model, path)
    with pytest.raises(ConversionError, match="refused to load"):
        rtl4ml.convert(path)


def test_float32_model_eval_matches_when_values_fit_24_bits():
    rng = np.random.default_rng(8)
    model = randomize(mlp(), rng, f_lo=1, f_hi=5)
    x = rng.normal(0, 1, (1000, 6))
    qnn.calibrate(model, x)
    d = rtl4ml.convert(model)
    model.eval()
    with torch.no_grad():
        y32 = model(torch.from_numpy(x))   # float32 module; evaluation computes in float64 inside
    assert y32.dtype == torch.float32
    np.testing.assert_array_equal(y32.numpy().astype(np.float64), d.predict(x))


def test_float32_model_warns_when_a_value_does_not_fit():
    model = nn.Sequential(qnn.QInput(2, init_i=12.0, init_f=14.0, f_bounds=(-16, 30)),
                          qnn.QLinear(2, 1, init_f=14.0, f_bounds=(-16, 30)))
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0 / 3, 1.0 / 7]]))
    x = np.array([[1234.56789, 0.1234567], [3210.987, 7.654321]])
    qnn.calibrate(model, x)
    d = rtl4ml.convert(model)
    with pytest.warns(RuntimeWarning, match="model.double"):
        with torch.no_grad():
            model(torch.from_numpy(x))
    model.double()
    with torch.no_grad():
        np.testing.assert_array_equal(model(torch.from_numpy(x)).numpy(), d.predict(x))


def test_from_float_starts_from_the_float_weights():
    torch.manual_seed(0)
    rng = np.random.default_rng(12)
    fm = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))
    randomize(fm, rng)
    fm.eval()
    q = qnn.from_float(fm, input=dict(init_f=16.0, init_i=4.0), linear=dict(init_f=18.0), relu=dict(init_f=16.0))
    assert [type(m).__name__ for m in q] == ["QInput", "QLinear", "QReLU", "Dropout", "QLinear"]
    assert q[1].bn is not None and torch.equal(q[1].bn.running_var, fm[1].running_var)
    x = rng.normal(0, 1, (300, 5))
    qnn.calibrate(q, x)
    d = rtl4ml.convert(q)
    with torch.no_grad():
        ref = fm(torch.tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(d.predict(x), ref, atol=1e-3)   # fine bits: close to the float model
    assert_bit_exact(q, d, x)
    with pytest.raises(qnn.QuantizerError, match=r"layer 1 \(Tanh\) has no rtl4ml.nn counterpart"):
        qnn.from_float(nn.Sequential(nn.Linear(2, 2), nn.Tanh()))


def test_state_dict_carries_calibration():
    rng = np.random.default_rng(6)
    model = randomize(mlp(batchnorm=True, out_quant=True), rng)
    x = rng.normal(0, 1, (300, 6))
    qnn.calibrate(model, x)
    d = rtl4ml.convert(model)
    fresh = mlp(batchnorm=True, out_quant=True)
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(rtl4ml.convert(fresh).predict(x), d.predict(x))


@pytest.mark.parametrize("granularity", ["channel", "layer"])
def test_coarser_granularities_are_bit_exact(granularity):
    rng = np.random.default_rng(21)
    torch.manual_seed(4)
    model = nn.Sequential(qnn.QInput(5, granularity=granularity, init_i=2.0),
                          qnn.QLinear(5, 7, granularity=granularity, batchnorm=True),
                          qnn.QReLU(7, granularity=granularity), qnn.QLinear(7, 3, granularity=granularity))
    randomize(model, rng)
    assert model[1].weight_quantizer.f.shape == ((7, 1) if granularity == "channel" else (1, 1))
    qnn.calibrate(model, rng.normal(0, 1, (500, 5)))
    d = rtl4ml.convert(model)
    if granularity == "layer":
        assert len(set(d.graph.input.op.types.fraction.tolist())) == 1
    assert_bit_exact(model, d, hard_inputs(d, rng, 1500))


# --------------------------------------------------------------------------- models with their own forward


class QATNet(nn.Module):
    """QAT layers called from a forward of the user's own, with a skip and exact constants."""

    def __init__(self, scale=0.5):
        super().__init__()
        self.scale = scale
        self.inp = qnn.QInput(6, init_i=2.0)
        self.fc1, self.act, self.fc2 = qnn.QLinear(6, 8), qnn.QReLU(8), qnn.QLinear(8, 3)

    def forward(self, x):
        h = self.act(self.fc1(self.inp(x)))
        return self.fc2(h) * self.scale + h[:, :3] - 1


class DoubledQLinear(qnn.QLinear):
    def forward(self, x):
        return super().forward(x) * 2


def test_qat_layers_in_a_custom_forward_are_bit_exact():
    rng = np.random.default_rng(31)
    torch.manual_seed(5)
    model = randomize(QATNet(), rng)
    x = rng.normal(0, 1.5, (2000, 6))
    qnn.calibrate(model, x)
    design = rtl4ml.convert(model, clock_ns=2.5)
    assert_bit_exact(model, design, hard_inputs(design, rng, 2000, scale=3.0))
    assert float(qnn.ebops(model).detach()) > 0    # registration order is the forward order here
    with pytest.raises(ConversionError, match="input_type does not apply: layer 'inp' \\(QInput\\)"):
        rtl4ml.convert(model, input_type="fixed<8,3>")
    model.scale = 0.3   # not a short binary fraction, and a QAT model has no weight type for it
    with pytest.raises(ConversionError, match=r"the constant 0\.3 is not a short binary fraction.*weight_type"):
        rtl4ml.convert(model)


def test_qat_subclass_overriding_forward_is_refused():
    rng = np.random.default_rng(32)
    model = nn.Sequential(qnn.QInput(3, init_i=2.0), DoubledQLinear(3, 2))
    qnn.calibrate(model, rng.normal(0, 1, (100, 3)))
    with pytest.raises(ConversionError, match=r"layer '1' \(DoubledQLinear\).*overrides forward of QLinear"):
        rtl4ml.convert(model)
