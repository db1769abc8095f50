"""Post-training quantization of torch nn.Sequential models, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

import rtl4ml
from rtl4ml.fixed import quantize

torch = pytest.importorskip("torch")
nn = torch.nn


def _mlp(seed=0, sizes=(6, 8, 4, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).double()


def _reference(model, x, input_type, weight_type, bias_type=None, result_type=None):
    """The documented PTQ semantics, computed independently in float64 (exact for these widths)."""
    h = quantize(x, input_type)
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            wt = weight_type[name] if isinstance(weight_type, dict) else weight_type
            bt = bias_type or wt
            h = h @ quantize(m.weight.detach().numpy().T, wt) + quantize(m.bias.detach().numpy(), bt)
            if result_type:
                h = quantize(h, result_type)
        elif isinstance(m, nn.ReLU):
            h = np.maximum(h, 0)
    return h


def test_ptq_semantics(rng):
    model = _mlp()
    x = rng.normal(size=(1000, 6)) * 3
    for kw in [dict(weight_type="fixed<8,3,RND,SAT>"),
               dict(weight_type="fixed<6,2>", bias_type="fixed<10,4>", result_type="fixed<12,5,RND,SAT>")]:
        d = rtl4ml.convert(model, input_type="fixed<12,4>", **kw)
        np.testing.assert_array_equal(d.predict(x), _reference(model, x, "fixed<12,4>", **kw))


def test_per_layer_weight_types(rng):
    model = _mlp()
    wt = {"0": "fixed<8,3>", "2": "fixed<4,1,RND,SAT>", "4": "fixed<6,2>"}
    d = rtl4ml.convert(model, input_type="fixed<12,4>", weight_type=wt)
    x = rng.normal(size=(300, 6))
    np.testing.assert_array_equal(d.predict(x), _reference(model, x, "fixed<12,4>", wt))


def test_nested_sequential_and_passthrough_layers(rng):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(4, 3), nn.ReLU()), nn.Dropout(0.1), nn.Linear(3, 2))
    d = rtl4ml.convert(model.eval(), input_type="fixed<10,3>", weight_type={"1.0": "fixed<8,2>", "3": "fixed<8,2>"})
    assert [n.name for n in d.graph.nodes] == ["x", "1.0", "1.1", "3"]


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    with pytest.raises(rtl4ml.graph.GraphError, match=r"layer '1' \(Tanh\) is not supported"):
        rtl4ml.convert(model, input_type="fixed<8,3>", weight_type="fixed<8,3>")


def test_nan_weight_is_named():
    model = _mlp()
    with torch.no_grad():
        model[2].weight[1, 3] = float("nan")
    with pytest.raises(rtl4ml.graph.GraphError, match=r"layer '2'.*weight.*nan"):
        rtl4ml.convert(model, input_type="fixed<8,3>", weight_type="fixed<8,3>")


@pytest.mark.parametrize("kw,match", [
    (dict(input_type="fixed<8,3", weight_type="fixed<8,3>"), r"input_type.*'fixed<8,3'"),
    (dict(input_type="fixed<8,3>", weight_type="fixed<8,3,ROUND>"), r"weight_type.*layer '0'.*ROUND"),
    (dict(input_type="fixed<8,3>", weight_type={"0": "fixed<8,3>"}), r"weight_type has no entry for layer '2'"),
    (dict(input_type="fixed<8,3>", weight_type={"0": "fixed<8,3>", "2": "fixed<8,3>", "4": "fixed<8,3>",
                                                "fc9": "fixed<8,3>"}), r"names layers the model does not have: \['fc9'\]"),
    (dict(weight_type="fixed<8,3>"), r"input_type is required"),
])
def test_bad_type_arguments(kw, match):
    with pytest.raises(rtl4ml.graph.GraphError, match=match):
        rtl4ml.convert(_mlp(), **kw)


def test_width_the_emulator_cannot_represent():
    model = _mlp(sizes=(4, 3))
    d = rtl4ml.convert(model, input_type="fixed<50,20>", weight_type="fixed<30,10>")
    with pytest.raises(rtl4ml.fixed.WidthError, match=r"node '0'.*bits"):
        d.predict(np.ones((2, 4)))


def test_bad_convert_arguments():
    with pytest.raises(ValueError, match="clock_ns"):
        rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>", clock_ns=0)
    with pytest.raises(ValueError, match="not a valid Verilog module name"):
        rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>", name="2net")
    with pytest.raises(ValueError, match="'small' .* keyword"):
        rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>", name="small")
    with pytest.raises(TypeError, match="cannot convert a list"):
        rtl4ml.convert([1, 2], input_type="fixed<8,3>")


def test_wrong_input_shape_is_explained():
    d = rtl4ml.convert(_mlp(), input_type="fixed<8,3>", weight_type="fixed<8,3>")
    with pytest.raises(rtl4ml.graph.GraphError, match=r"shape \(N, 6\), got \(5, 4\)"):
        d.predict(np.zeros((5, 4)))
