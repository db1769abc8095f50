"""No silently wrong design: post-training quantization is measured and warned about, and
``design.fidelity`` compares the design with the float model."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest

import rtl4ml
from rtl4ml.fidelity import (
    Fidelity,
    QuantizationWarning,
    Rtl4mlWarning,
    TimingWarning,
    measure_parameter,
    parameter_quantization,
    suggest_type,
)
from rtl4ml.fixed import parse_type

torch = pytest.importorskip("torch")
nn = torch.nn


def small_weights_model(seed: int = 0) -> nn.Module:
    """A 16-8-5 MLP whose weights and biases lie in [-0.25, 0.25]."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5))
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-0.25, 0.25)
    return m


def convert_quietly(model, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = rtl4ml.convert(model, **kw)
    return d, [w for w in caught if issubclass(w.category, Rtl4mlWarning)]


@pytest.fixture
def x(rng):
    return rng.normal(size=(2000, 16))


@pytest.mark.parametrize("wt,what", [
    ("ufixed<8,0>", "wrap around (WRAP)"),      # negative weights wrap to about +1
    ("fixed<8,-3>", "wrap around (WRAP)"),      # range +-0.0625
    ("fixed<8,10>", "non-zero weights become zero"),   # steps of 4
    ("int<8>", "non-zero weights become zero"),
])
def test_a_type_that_corrupts_the_weights_warns_with_a_better_type(wt, what, x):
    model = small_weights_model()
    d, caught = convert_quietly(model, input_type="fixed<16,6>", weight_type=wt)
    assert [str(w.message).split(":")[0] for w in caught] == ["layer '0' (Linear)", "layer '2' (Linear)"]
    assert all(w.category is QuantizationWarning and w.filename == __file__ for w in caught)
    msg = str(caught[0].message)
    assert f"weight_type {parse_type(wt)}: " in msg and what in msg
    assert "bias_type" in msg and "(the weight_type; no bias_type given)" in msg
    f = d.fidelity(x)
    assert f.correlation < 0.5, f   # what the warning is about
    # the suggestion keeps the width and the modes, and then the design follows the float model
    better = msg.split("Try weight_type='")[1].split("'")[0]
    t = parse_type(better)
    assert t.width == parse_type(wt).width and t.signed
    good, caught = convert_quietly(model, input_type="fixed<16,6>", weight_type={"0": better, "2": better})
    assert not [w for w in caught if "weight_type" in str(w.message).split("bias_type")[0]]
    assert good.fidelity(x).correlation > 0.99


def test_the_warning_text():
    _, caught = convert_quietly(small_weights_model(), input_type="fixed<16,6>", weight_type="fixed<8,-3>")
    assert str(caught[0].message) == (
        "layer '0' (Linear): weight_type fixed<8,-3>: 94 of 128 weights lie outside its range [-0.0625, 0.06201] and "
        "wrap around (WRAP); 1 of 128 non-zero weights become zero; relative error 106% RMS, 184% at worst (largest "
        "|value| 0.248). Try weight_type='fixed<8,-1>' (relative error 0.82% RMS). bias_type fixed<8,-3> (the "
        "weight_type; no bias_type given): 6 of 8 bias values lie outside its range [-0.0625, 0.06201] and wrap "
        "around (WRAP); relative error 111% RMS, 144% at worst (largest |value| 0.205). Try bias_type='fixed<8,-1>' "
        "(relative error 0.73% RMS).")


def test_demo_types_on_a_trained_jet_mlp_do_not_warn():
    from rtl4ml.data import load_jets
    from rtl4ml.demo import INPUT_TYPE, RESULT_TYPE, train_float_mlp
    jets = load_jets()
    x = jets["features"][:1500].astype(np.float64)
    x = (x - x.mean(0)) / x.std(0)
    model = train_float_mlp(x, jets["labels"][:1500].astype(np.int64), epochs=2)
    for wt in ("fixed<6,2,RND,SAT>", "fixed<8,3,RND,SAT>"):
        _, caught = convert_quietly(model, input_type=INPUT_TYPE, weight_type=wt, result_type=RESULT_TYPE)
        assert caught == [], [str(w.message) for w in caught]
    reports = parameter_quantization(rtl4ml.convert(model, input_type=INPUT_TYPE, weight_type="fixed<6,2,RND,SAT>").graph)
    assert len(reports) == 6 and not any(r.bad for r in reports)
    assert all(0 < r.rms_relative_error < 0.3 for r in reports)


def test_qat_models_quantize_in_training_and_do_not_warn(rng):
    import rtl4ml.nn as qnn
    torch.manual_seed(0)
    model = nn.Sequential(qnn.QInput(4, init_i=2.0), qnn.QLinear(4, 8), qnn.QReLU(8, overflow="WRAP"),
                          qnn.QLinear(8, 3))
    xs = np.clip(rng.normal(size=(500, 4)), -3.5, 3.5)
    qnn.calibrate(model, xs)
    d, caught = convert_quietly(model)
    assert caught == [] and parameter_quantization(d.graph) == []
    f = d.fidelity(xs)   # the float64 eval forward pass is the hardware's arithmetic
    assert f.max_abs_difference == 0 and f.correlation == pytest.approx(1.0)


def test_weights_are_measured_after_batchnorm_folding():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        model[0].weight.uniform_(-0.25, 0.25)
        model[1].running_var.fill_(1e-3)   # the folded weights are 30 times larger
    _, caught = convert_quietly(model, input_type="fixed<10,4>", weight_type="fixed<8,1,RND,SAT>")
    assert len(caught) == 1
    assert str(caught[0].message).startswith("layer '0' (Linear) with layer '1' (BatchNorm1d) folded in: weight_type "
                                             "fixed<8,1,RND,SAT>: ")
    assert "are clipped (SAT)" in str(caught[0].message)
    model[1].running_var.fill_(1.0)
    assert convert_quietly(model, input_type="fixed<10,4>", weight_type="fixed<8,1,RND,SAT>")[1] == []


def test_saturation_of_a_few_outliers_is_tolerated(rng):
    t = parse_type("fixed<6,2,RND,SAT>")
    w = rng.uniform(-0.5, 0.5, 400)
    w[0] = 2.5   # one value clipped to 1.9375: 0.25 % of the values
    r = measure_parameter(w, t, "layer 'fc'", "weights", "weight_type")
    assert r.n_overflow == 1 and not r.bad
    w[1:20] = 1.98   # clipped to 1.9375 as well, but by little
    r = measure_parameter(w, t, "layer 'fc'", "weights", "weight_type")
    assert (r.n_overflow, r.n_overflow_far) == (20, 1) and not r.bad
    w[:10] = 2.5   # 2.5 % clipped by 22 %
    r = measure_parameter(w, t, "layer 'fc'", "weights", "weight_type")
    assert r.bad and "20 of 400 weights lie outside its range [-2, 1.938] and are clipped (SAT)" in r.message()
    assert r.suggestion == parse_type("fixed<6,3,RND,SAT>")


def test_measurement_counts_against_numbers_worked_by_hand():
    w = np.array([0.3, -0.3, 0.01, -0.01, 0.0, 1.2])
    r = measure_parameter(w, parse_type("fixed<4,1,RND,WRAP>"), "L", "weights", "weight_type")
    # steps of 1/8, range [-1, 0.875]: 1.2 wraps to -0.75; 0.01 and -0.01 round to 0
    assert (r.n, r.n_nonzero, r.n_overflow, r.n_zeroed) == (6, 5, 1, 2)
    q = np.array([0.25, -0.25, 0, 0, 0, -0.75])
    assert r.rms_relative_error == pytest.approx(np.linalg.norm(q - w) / np.linalg.norm(w))
    assert r.worst_relative_error == pytest.approx(1.95 / 1.2)
    assert r.bad and r.largest == 1.2
    # 4 bits, 1 integer bit: 0.3 -> 0.25, 1.2 -> 1.25, +-0.01 -> 0 (2 of 5), 7 % RMS
    assert suggest_type(w, parse_type("fixed<4,1,RND,WRAP>")) == (parse_type("fixed<4,2,RND,WRAP>"),
                                                                   pytest.approx(0.069, abs=0.001))
    assert suggest_type(np.zeros(3), parse_type("fixed<4,1>")) is None


def test_typed_constants_are_measured():
    g = rtl4ml.graph.GraphBuilder()
    x = g.input("fixed<8,3>", 2)
    c = g.constant(np.array([0.45, 0.3]), type=parse_type("int<8>"), name="gain")
    G = g.build(g.mul(x, c))
    (r,) = parameter_quantization(G, {"gain": "function operator.mul"})
    assert r.bad and r.layer == "function operator.mul" and r.what == "constant values"
    assert "2 of 2 non-zero constant values become zero" in r.message()


def test_fidelity_api(x):
    model = small_weights_model()
    d = rtl4ml.convert(model, input_type="fixed<16,6>", weight_type="fixed<8,-1,RND,SAT>")
    assert d.model is model and "model" not in json.dumps(d.to_json()).replace('"graph"', "")
    f = d.fidelity(x)
    assert isinstance(f, Fidelity) and len(f.outputs) == 1
    o = f[0]
    assert o is f["2"] and o.name == "2" and o.n_samples == 2000
    with torch.no_grad():
        ref = model.double()(torch.tensor(x)).numpy()
    y = d.predict(x)
    assert o.max_abs_difference == pytest.approx(np.abs(y - ref).max())
    assert o.mean_abs_difference == pytest.approx(np.abs(y - ref).mean())
    assert o.argmax_agreement == pytest.approx(np.mean(y.argmax(1) == ref.argmax(1)))
    assert o.correlation == pytest.approx(min(np.corrcoef(y[:, j], ref[:, j])[0, 1] for j in range(5)))
    assert 0.98 < o.correlation < 1 and f.correlation == o.correlation
    assert str(f) == (f"design vs float model, output '2': correlation {o.correlation:.4f}, max |difference| "
                      f"{o.max_abs_difference:.4g}, mean |difference| {o.mean_abs_difference:.4g}, argmax agrees on "
                      f"{100 * o.argmax_agreement:.2f}% (2000 samples)")
    # any callable as the reference; a loaded design has no model
    f2 = d.fidelity(x, reference=lambda a: y)
    assert f2.max_abs_difference == 0 and f2.correlation == pytest.approx(1.0)
    loaded = rtl4ml.Design.from_json(d.to_json())
    assert loaded.model is None
    with pytest.raises(ValueError, match="no float model to compare with: pass reference="):
        loaded.fidelity(x)
    assert loaded.fidelity(x, reference=model).correlation == f.correlation
    assert d.with_options(clock_ns=2.0).model is model
    with pytest.raises(ValueError, match="no samples"):
        d.fidelity(x[:0])


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(3, 1)

    def forward(self, x):
        return {"scores": self.a(x), "energy": self.b(x)}


def test_fidelity_of_several_outputs(rng):
    torch.manual_seed(0)
    d = rtl4ml.convert(TwoHeads(), input_type="fixed<12,4>", weight_type="fixed<8,1,RND,SAT>")
    f = d.fidelity(rng.normal(size=(300, 3)))
    assert [o.name for o in f.outputs] == d.output_names == ["scores", "energy"]
    assert f["scores"].argmax_agreement is not None and f["energy"].argmax_agreement is None
    assert f.argmax_agreement == f["scores"].argmax_agreement and f.correlation > 0.98
    assert "output 'energy'" in str(f).splitlines()[1]
    one = d.fidelity(rng.normal(size=(1, 3)))
    assert math.isnan(one.correlation) and "correlation n/a" in str(one)


def test_inputs_outside_the_input_type_warn(rng):
    d = rtl4ml.convert(small_weights_model(), input_type="fixed<8,7>", weight_type="fixed<8,-1>")
    x = rng.normal(size=(10, 16))
    x[2, 5] = 100.0
    x[7, 0] = -300.0
    with pytest.warns(QuantizationWarning) as caught:
        d.fidelity(x)
    assert str(caught[0].message) == ("input 'x': 2 of 160 values lie outside the input type's range and wrap around "
                                      "(WRAP); the first, x[2, 5] = 100, is outside fixed<8,7> [-64, 63.5] and "
                                      "becomes -28")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d.fidelity(x[:2])   # in range: no warning
    sat = rtl4ml.convert(small_weights_model(), input_type="fixed<8,7,TRN,SAT>", weight_type="fixed<8,-1>")
    with pytest.warns(QuantizationWarning, match=r"and saturate \(SAT\); the first, x\[2, 5\] = 100, .* becomes 63.5"):
        sat.fidelity(x)


def test_verify_refuses_no_samples():
    d = rtl4ml.convert(small_weights_model(), input_type="fixed<8,7>", weight_type="fixed<8,-1>")
    with pytest.raises(ValueError, match=r"no samples: the input array has shape \(0, 16\)"):
        d.verify(np.zeros((0, 16)))


def test_an_unrealistic_clock_warns():
    model = small_weights_model()
    with pytest.warns(TimingWarning, match=r"clock_ns=0.1 is shorter than one adder in the delay model \(0.5 ns"):
        rtl4ml.convert(model, input_type="fixed<8,3>", weight_type="fixed<8,-1>", clock_ns=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = rtl4ml.convert(model, input_type="fixed<8,3>", weight_type="fixed<8,-1>", clock_ns=2.0)
        assert d.pipeline.meets_timing
    # above one adder, but below the slowest operation of this design: known when it is scheduled
    d = rtl4ml.convert(model, input_type="fixed<8,3>", weight_type="fixed<8,-1>", clock_ns=0.6)
    with pytest.warns(TimingWarning, match=r"^the design cannot meet clock_ns=0.6: its slowest operation alone takes "
                                           r"0.\d+ ns in the delay model, and a pipeline stage cannot split it$") as w:
        assert not d.pipeline.meets_timing
    assert w[0].filename == __file__
