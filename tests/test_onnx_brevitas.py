"""QONNX models exported by Brevitas: rtl4ml's design equals the QONNX model's own execution
(``qonnx.core.onnx_exec.execute_onnx`` after qonnx's cleanup) on every input, including values
at, around and between the input quantizer's codes and past both of its bounds; the RTL agrees
(Verilator, one build per model). The models are built with a fixed seed, calibrated on random
data so that their activations use many codes (checked), and exported at test time."""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict

import numpy as np
import pytest

torch = pytest.importorskip("torch")
qnn = pytest.importorskip("brevitas.nn")
pytest.importorskip("qonnx")
pytest.importorskip("onnxoptimizer")   # brevitas' ONNX export needs it

import onnx  # noqa: E402
from brevitas.export import export_qonnx  # noqa: E402
from brevitas.graph.calibrate import calibration_mode  # noqa: E402
from brevitas.quant import (  # noqa: E402
    Int8ActPerTensorFixedPoint,
    Int8WeightPerTensorFixedPoint,
    Int16Bias,
    Uint8ActPerTensorFixedPoint,
    Uint8ActPerTensorFloat,
)
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint  # noqa: E402
from brevitas.quant.scaled_int import RoundTo8bit  # noqa: E402
from qonnx.core.modelwrapper import ModelWrapper  # noqa: E402
from qonnx.core.onnx_exec import execute_onnx  # noqa: E402
from qonnx.util.cleanup import cleanup_model  # noqa: E402

import rtl4ml  # noqa: E402
from rtl4ml.fidelity import QuantizationWarning  # noqa: E402
from rtl4ml.torch_common import ConversionError  # noqa: E402

from .test_onnx import quantizer_inputs  # noqa: E402

ACT, UACT, WEIGHT = Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint


class RoundTo4bit(RoundTo8bit):
    """Brevitas' rounding truncator to 4 bits: TruncAvgPool2d's 6-bit sums lose 2 bits (a ``Trunc``
    that rounds, half to even)."""
    bit_width = 4


class MLP(torch.nn.Module):
    """16-10-6-5: 8-bit input, 4-bit, 6-bit per-channel and 8-bit weights, 6- and 5-bit ReLUs,
    16-bit biases."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=ACT, bit_width=8, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(16, 10, weight_quant=WEIGHT, weight_bit_width=4, bias_quant=Int16Bias,
                                   return_quant_tensor=True)
        self.relu1 = qnn.QuantReLU(act_quant=UACT, bit_width=6, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(10, 6, weight_quant=Int8WeightPerChannelFixedPoint, weight_bit_width=6,
                                   bias_quant=Int16Bias, return_quant_tensor=True)
        self.relu2 = qnn.QuantReLU(act_quant=UACT, bit_width=5, return_quant_tensor=True)
        self.fc3 = qnn.QuantLinear(6, 5, weight_quant=WEIGHT, weight_bit_width=8, bias_quant=Int16Bias)

    def forward(self, x):
        return self.fc3(self.relu2(self.fc2(self.relu1(self.fc1(self.inp(x))))))


class CNN(torch.nn.Module):
    """1x6x6 image: conv 3x3 (pad 1, per-channel 5-bit weights) + 4-bit ReLU + max pool 2,
    conv 2x2 (4-bit) + 4-bit ReLU + TruncAvgPool2d 2 (a rounding ``Trunc`` to 4 bits), reshape, 6-bit linear."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=ACT, bit_width=6, return_quant_tensor=True)
        self.conv1 = qnn.QuantConv2d(1, 4, 3, padding=1, weight_quant=Int8WeightPerChannelFixedPoint,
                                     weight_bit_width=5, bias_quant=Int16Bias, return_quant_tensor=True)
        self.relu1 = qnn.QuantReLU(act_quant=UACT, bit_width=4, return_quant_tensor=True)
        self.pool1 = torch.nn.MaxPool2d(2)
        self.conv2 = qnn.QuantConv2d(4, 4, 2, weight_quant=WEIGHT, weight_bit_width=4, bias_quant=Int16Bias,
                                     return_quant_tensor=True)
        self.relu2 = qnn.QuantReLU(act_quant=UACT, bit_width=4, return_quant_tensor=True)
        self.pool2 = qnn.TruncAvgPool2d(2, trunc_quant=RoundTo4bit)
        self.fc = qnn.QuantLinear(4, 3, weight_quant=WEIGHT, weight_bit_width=6, bias_quant=Int16Bias)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(self.inp(x))))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(x.reshape(x.shape[0], -1))


def _front(n_out: int, weight_bits: int) -> list[tuple[str, torch.nn.Module]]:
    """An 8-bit input quantizer and a first 16 -> ``n_out`` linear layer with a 16-bit bias."""
    return [("inp", qnn.QuantIdentity(act_quant=ACT, bit_width=8, return_quant_tensor=True)),
            ("fc1", qnn.QuantLinear(16, n_out, weight_quant=WEIGHT, weight_bit_width=weight_bits,
                                    bias_quant=Int16Bias, return_quant_tensor=True))]


def tables() -> torch.nn.Module:
    """QuantSigmoid and QuantTanh (a Sigmoid / Tanh read by a 6-bit Quant: one table each)."""
    return torch.nn.Sequential(OrderedDict(_front(8, 4) + [
        ("q1", qnn.QuantIdentity(act_quant=ACT, bit_width=6, return_quant_tensor=True)),
        ("sigmoid", qnn.QuantSigmoid(act_quant=UACT, bit_width=6, return_quant_tensor=True)),
        ("fc2", qnn.QuantLinear(8, 6, weight_quant=WEIGHT, weight_bit_width=5, bias_quant=Int16Bias,
                                return_quant_tensor=True)),
        ("q2", qnn.QuantIdentity(act_quant=ACT, bit_width=7, return_quant_tensor=True)),
        ("tanh", qnn.QuantTanh(act_quant=ACT, bit_width=6))]))


class Residual(torch.nn.Module):
    """A QuantEltwiseAdd of a 6-bit ReLU and the quantized input (both requantized to 8 bits)."""

    def __init__(self) -> None:
        super().__init__()
        (_, self.inp), (_, self.fc1) = _front(16, 4)
        self.relu1 = qnn.QuantReLU(act_quant=UACT, bit_width=6, return_quant_tensor=True)
        self.add = qnn.QuantEltwiseAdd(input_quant=ACT, input_bit_width=8, output_quant=ACT, output_bit_width=8,
                                       return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(16, 4, weight_quant=WEIGHT, weight_bit_width=4, bias_quant=Int16Bias)

    def forward(self, x):
        x = self.inp(x)
        return self.fc2(self.add(self.relu1(self.fc1(x)), x))


def float_scale_output() -> torch.nn.Module:
    """An MLP ending in a per-tensor float-scale 3-bit quantizer (not a power of two) after a
    6-bit ReLU."""
    return torch.nn.Sequential(OrderedDict(_front(8, 4) + [
        ("relu1", qnn.QuantReLU(act_quant=UACT, bit_width=6, return_quant_tensor=True)),
        ("out", qnn.QuantIdentity(act_quant=Uint8ActPerTensorFloat, bit_width=3))]))


def float_scale_wide() -> torch.nn.Module:
    """A float-scale ReLU reading a linear layer's wide output directly: not foldable."""
    return torch.nn.Sequential(OrderedDict(_front(8, 6) + [
        ("relu1", qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, bit_width=4))]))


def _export(module: torch.nn.Module, shape: tuple[int, ...], path, seed: int = 0, **kw) -> torch.nn.Module:
    """Initialize with ``seed``, calibrate the activation scales on random data, export QONNX."""
    torch.manual_seed(seed)
    m = module
    for layer in m.modules():   # weights about as large as trained ones (activations spread over many codes)
        if isinstance(layer, (qnn.QuantLinear, qnn.QuantConv2d)):
            with torch.no_grad():
                layer.weight.normal_(0, 1.5 / layer.weight[0].numel() ** 0.5)
                layer.bias.normal_(0, 0.3)
    with torch.no_grad(), calibration_mode(m):
        for _ in range(4):
            m(torch.randn(256, *shape))
    m.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_qonnx(m, torch.randn(1, *shape), str(path), **{"dynamo": False, **kw})
    return m


def qonnx_execute(path, x: np.ndarray, full: bool = False):
    """The model's own QONNX execution (float32) after qonnx's cleanup transforms."""
    m = cleanup_model(ModelWrapper(str(path)), override_inpsize=len(x))
    ctx = execute_onnx(m, {m.graph.input[0].name: x.astype(np.float32)}, return_full_exec_context=full)
    return (ctx, m) if full else ctx[m.graph.output[0].name]


def input_quantizer(path) -> tuple[float, int]:
    """The scale and bit width of the (signed) Quant reading the model input."""
    m = onnx.load(str(path))
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    consts.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in m.graph.node
                   if n.op_type == "Constant"})
    q = next(n for n in m.graph.node if m.graph.input[0].name in n.input)
    assert q.op_type == "Quant"
    return float(consts[q.input[1]]), int(consts[q.input[3]])


def _activations_spread(path, x: np.ndarray) -> None:
    """Every activation quantizer (a Quant of a computed tensor) uses at least a quarter of its
    codes over ``x`` (or half the values its input takes, for a requantizer) and saturates at
    most 10% of its values: the test exercises the arithmetic."""
    ctx, m = qonnx_execute(path, x, full=True)
    init = {i.name for i in m.graph.initializer}
    for node in m.graph.node:
        if node.op_type != "Quant" or node.input[0] in init or node.input[0] == m.graph.input[0].name:
            continue
        scale, bits = float(ctx[node.input[1]]), int(ctx[node.input[3]])
        codes = np.round(ctx[node.output[0]] / scale)
        wanted = min(2 ** bits // 4, len(np.unique(ctx[node.input[0]])) // 2)   # a requantizer: its input's
        assert len(np.unique(codes)) >= wanted, (node.name, np.unique(codes))
        assert np.mean(codes == codes.max()) <= 0.10, (node.name, np.mean(codes == codes.max()))


MODELS = {"mlp": (MLP, (16,)), "cnn": (CNN, (1, 6, 6)), "tables": (tables, (16,)),
          "residual": (Residual, (16,))}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """``name -> (path, inputs, qonnx outputs)`` for the MLP and the CNN."""
    out = {}
    for k, (make, shape) in MODELS.items():
        path = tmp_path_factory.mktemp("brevitas") / f"{k}.onnx"
        _export(make(), shape, path)
        scale, bits = input_quantizer(path)
        x = quantizer_inputs(np.random.default_rng(7), scale, bits, shape, 600 if k == "cnn" else 1500)
        out[k] = path, x, qonnx_execute(path, x)
    return out


@pytest.mark.parametrize("name", sorted(MODELS))
def test_brevitas_model_equals_qonnx_execution(exported, name):
    path, x, want = exported[name]
    _activations_spread(path, x)
    d = rtl4ml.convert(path)
    got = d.predict(x.astype(np.float64))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want.astype(np.float64))
    assert len(np.unique(want, axis=0)) > len(want) // 5      # outputs are not a few saturated vectors


@pytest.mark.hw
@pytest.mark.parametrize("name", ["mlp", pytest.param("cnn", marks=pytest.mark.slow)])
def test_brevitas_model_rtl_is_bit_exact(exported, name):
    """One Verilator build per model; the inputs past the input quantizer's bounds saturate in
    the RTL as in QONNX (and are reported as such)."""
    path, x, want = exported[name]
    d = rtl4ml.convert(path, name=f"brevitas_{name}", clock_ns=2.0)
    with pytest.warns(QuantizationWarning):
        r = d.verify(x.astype(np.float64))
    assert r.ok, str(r)
    np.testing.assert_array_equal(r.outputs, want.astype(np.float64))


def test_dynamic_batch_exports(tmp_path):
    """A batch axis exported as dynamic (TorchScript ``dynamic_axes``) converts the same way,
    and a non-batch dynamic axis is refused naming the input."""
    path = tmp_path / "mlp_dyn.onnx"
    _export(MLP(), (16,), path, input_names=["features"], dynamic_axes={"features": {0: "batch"}})
    m = onnx.load(str(path))
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    scale, bits = input_quantizer(path)
    x = quantizer_inputs(np.random.default_rng(8), scale, bits, (16,), 400)
    np.testing.assert_array_equal(rtl4ml.convert(path).predict(x.astype(np.float64)),
                                  qonnx_execute(path, x).astype(np.float64))
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "features"
    with pytest.raises(ConversionError, match=r"input 'features' has a dynamic shape \['batch', 'features'\]"):
        rtl4ml.frontends.onnx.from_onnx(m)


def test_dynamo_export_with_dynamic_batch(tmp_path):
    """The torch.export-based exporter (export_qonnx's default on torch >= 2.9; different node
    names, ``Reshape`` with ``allowzero``, a symbolic batch axis) converts the CNN the same way."""
    path = tmp_path / "cnn_dynamo.onnx"
    _export(CNN(), (1, 6, 6), path, dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},))
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_param
    scale, bits = input_quantizer(path)
    x = quantizer_inputs(np.random.default_rng(10), scale, bits, (1, 6, 6), 400)
    np.testing.assert_array_equal(rtl4ml.convert(path).predict(x.astype(np.float64)),
                                  qonnx_execute(path, x).astype(np.float64))


def test_float_scale_with_few_codes_is_an_exact_table(tmp_path):
    """A per-tensor float scale on a 6-bit tensor folds into a table of exact values: equal to
    qonnx's float32 execution after rounding rtl4ml's exact value to float32, on every code."""
    path = tmp_path / "float_scale.onnx"
    m = _export(float_scale_output(), (16,), path)
    s = float(m.out.act_quant.scale())
    assert np.frexp(s)[0] != 0.5                       # not a power of two
    scale, bits = input_quantizer(path)
    x = quantizer_inputs(np.random.default_rng(9), scale, bits, (16,), 1500)
    want = qonnx_execute(path, x)
    got = rtl4ml.convert(path).predict(x.astype(np.float64))
    np.testing.assert_array_equal(got.astype(np.float32), want)
    np.testing.assert_array_equal(got, np.round(got / s) * s)    # exact multiples of the float scale
    assert len(np.unique(want)) == 8                   # every output code is reached


def test_float_scale_on_a_wide_tensor_is_refused(tmp_path):
    path = tmp_path / "float_wide.onnx"
    m = _export(float_scale_wide(), (16,), path)
    s = float(m.relu1.act_quant.scale())
    node = next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Quant" and "relu1" in n.name)
    with pytest.raises(ConversionError, match=rf"node '{re.escape(node)}' \(Quant\): scale {re.escape(repr(s))} is "
                                              r"not a power of two; rtl4ml folds such a scale exactly only into a "
                                              r"table over an input of at most 2\*\*12 codes, and this input has \d+"):
        rtl4ml.convert(path)
