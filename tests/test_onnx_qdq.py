"""Standard ONNX QDQ models (QuantizeLinear / DequantizeLinear with power-of-two scales, integer
zero points, per-axis weight scales): rtl4ml equals onnxruntime on every input, run as the file
says (no graph optimizations) and with onnxruntime's default optimizations (which fuse QDQ
groups into integer kernels); the quantizer reading the input defines the input type. Float
scales, as onnxruntime's own quantization tools choose them, are refused naming the node and
the value; so is a dynamic non-batch axis, naming the input."""

from __future__ import annotations

import re

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

import rtl4ml  # noqa: E402
from rtl4ml.fidelity import QuantizationWarning  # noqa: E402
from rtl4ml.frontends.onnx import from_onnx  # noqa: E402
from rtl4ml.torch_common import ConversionError  # noqa: E402

from .test_onnx import quantizer_inputs  # noqa: E402


class QDQBuilder:
    """Nodes and initializers of a QDQ graph; every tensor crosses QuantizeLinear -> DequantizeLinear."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list = []
        self.inits: list = []

    def init(self, name: str, a: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(a, name))
        return name

    def qdq(self, x: str, name: str, scale: float, dtype=np.int8, zp: int = 0) -> str:
        s = self.init(f"{name}_s", np.array(scale, np.float32))
        z = self.init(f"{name}_z", np.array(zp, dtype))
        self.nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_q"], name=f"{name}_quantize"))
        self.nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [f"{name}_dq"],
                                           name=f"{name}_dequantize"))
        return f"{name}_dq"

    def weight(self, name: str, shape: tuple[int, ...], scales: np.ndarray, axis: int, bits: int = 6) -> str:
        """int8 codes of ``bits`` bits dequantized with per-axis power-of-two ``scales``."""
        q = self.rng.integers(-(2 ** (bits - 1)) + 1, 2 ** (bits - 1), size=shape).astype(np.int8)
        s = self.init(f"{name}_s", scales.astype(np.float32))
        z = self.init(f"{name}_z", np.zeros(scales.shape, np.int8))
        self.nodes.append(helper.make_node("DequantizeLinear", [self.init(f"{name}_q", q), s, z], [name],
                                           name=f"{name}_dequantize", axis=axis))
        return name

    def bias(self, name: str, scales: np.ndarray) -> str:
        """int32 codes at scale (input scale x weight scale), as QDQ tools store biases."""
        q = self.rng.integers(-200, 200, size=scales.shape).astype(np.int32)
        s = self.init(f"{name}_s", scales.astype(np.float32))
        z = self.init(f"{name}_z", np.zeros(scales.shape, np.int32))
        self.nodes.append(helper.make_node("DequantizeLinear", [self.init(f"{name}_q", q), s, z], [name],
                                           name=f"{name}_dequantize", axis=0))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def model(self, in_shape: list, out: str, n_out: int):
        g = helper.make_graph(self.nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", n_out])], self.inits)
        return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def qdq_mlp(rng, in_dtype=np.int8, in_zp: int = 0, in_shape=None):
    """x (int8 or uint8 with a zero point) -> MatMul + Add (per-column weight scales) -> Relu ->
    uint8 -> Gemm transB (per-tensor) -> int8 with zero point 3."""
    b = QDQBuilder(rng)
    xd = b.qdq("x", "in", 2.0 ** -4, in_dtype, in_zp)
    s1 = 2.0 ** -rng.integers(3, 6, size=10)
    h = b.node("MatMul", [xd, b.weight("w1", (12, 10), s1, axis=1)], "fc1")
    h = b.node("Add", [h, b.bias("b1", s1 * 2.0 ** -4)], "fc1_bias")
    r = b.qdq(b.node("Relu", [h], "relu1"), "act1", 2.0 ** -3, np.uint8)
    s2 = np.array(2.0 ** -5)
    y = b.node("Gemm", [r, b.weight("w2", (4, 10), s2, axis=0), b.bias("b2", np.full(4, s2 * 2.0 ** -3))], "fc2",
               transB=1)
    return b.model(in_shape or ["N", 12], b.qdq(y, "out", 2.0 ** -2, np.int8, 3), 4)


def qdq_cnn(rng):
    """x 2x6x6 int8 -> Conv 3x3 pad 1 (per-output-channel scales) -> Relu -> uint8 -> MaxPool 2
    -> Flatten -> Gemm."""
    b = QDQBuilder(rng)
    xd = b.qdq("x", "in", 2.0 ** -5, np.int8)
    s1 = 2.0 ** -rng.integers(3, 6, size=3)
    c = b.node("Conv", [xd, b.weight("w1", (3, 2, 3, 3), s1, axis=0), b.bias("b1", s1 * 2.0 ** -5)], "conv1",
               pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    r = b.qdq(b.node("Relu", [c], "relu1"), "act1", 2.0 ** -4, np.uint8)
    p = b.node("Flatten", [b.node("MaxPool", [r], "pool1", kernel_shape=[2, 2], strides=[2, 2])], "flat")
    s2 = np.array(2.0 ** -4)
    y = b.node("Gemm", [p, b.weight("w2", (5, 27), s2, axis=0), b.bias("b2", np.full(5, s2 * 2.0 ** -4))], "fc",
               transB=1)
    return b.model(["N", 2, 6, 6], y, 5)


def run_ort(model, x: np.ndarray, optimize: bool) -> np.ndarray:
    opts = ort.SessionOptions()
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x.astype(np.float32)})[0].astype(np.float64)


CASES = {"mlp_int8": (lambda rng: qdq_mlp(rng), (12,), 2.0 ** -4, -128),
         "mlp_uint8_zp": (lambda rng: qdq_mlp(rng, np.uint8, 128), (12,), 2.0 ** -4, -128),
         "mlp_uint8": (lambda rng: qdq_mlp(rng, np.uint8, 0), (12,), 2.0 ** -4, 0),
         "cnn": (qdq_cnn, (2, 6, 6), 2.0 ** -5, -128)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_qdq_model_equals_onnxruntime(case):
    build, shape, scale, lo = CASES[case]
    rng = np.random.default_rng(5)
    model = build(rng)
    x = quantizer_inputs(rng, scale, 8, shape, 2000 if len(shape) == 1 else 500, lo=lo)
    got = from_onnx(model).predict(x.astype(np.float64))
    for optimize in (False, True):
        np.testing.assert_array_equal(got, run_ort(model, x, optimize), err_msg=f"optimize={optimize}")
    assert len(np.unique(got)) >= 20          # not a few saturated values


def test_qdq_input_type_comes_from_the_input_quantizer():
    g = from_onnx(qdq_mlp(np.random.default_rng(1), np.uint8, 128))
    t = g.inputs[0].op.types
    assert np.all(t.signed) and np.all(t.integer == 3) and np.all(t.fraction == 4) and t.overflow == "SAT"


def test_onnxruntime_quantized_model_is_refused_naming_the_node(tmp_path):
    """onnxruntime.quantization picks float scales: refused at the first quantizer, with its value."""
    qt = pytest.importorskip("onnxruntime.quantization")
    rng = np.random.default_rng(2)
    b = QDQBuilder(rng)
    b.node("Relu", [b.node("MatMul", ["x", b.init("w", rng.normal(size=(6, 3)).astype(np.float32))], "mm")], "y")
    float_model = b.model(["N", 6], "y", 3)

    class Reader(qt.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": rng.normal(size=(1, 6)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.batches, None)

    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(float_model, str(src))
    qt.quantize_static(str(src), str(dst), Reader(), quant_format=qt.QuantFormat.QDQ)
    q = onnx.load(str(dst))
    first = next(n for n in q.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    scale = float(numpy_helper.to_array(next(i for i in q.graph.initializer if i.name == first.input[1])))
    with pytest.raises(ConversionError, match=rf"node '{re.escape(first.name)}' \(QuantizeLinear\): scale "
                                              rf"{re.escape(repr(scale))} is not a power of two; .*onnxruntime"):
        from_onnx(q)


def test_qdq_dynamic_feature_axis_is_refused_naming_the_input():
    with pytest.raises(ConversionError, match=r"input 'x' has a dynamic shape \['N', 'F'\]: only the first "
                                              r"\(batch\) axis may be dynamic"):
        from_onnx(qdq_mlp(np.random.default_rng(3), in_shape=["N", "F"]))


@pytest.mark.hw
@pytest.mark.slow
def test_qdq_mlp_with_zero_point_rtl_is_bit_exact():
    rng = np.random.default_rng(5)
    model = qdq_mlp(rng, np.uint8, 128)
    x = quantizer_inputs(rng, 2.0 ** -4, 8, (12,), 1000)
    d = rtl4ml.convert(from_onnx(model), name="qdq_mlp", clock_ns=2.0)
    with pytest.warns(QuantizationWarning):
        r = d.verify(x.astype(np.float64))
    assert r.ok, str(r)
    np.testing.assert_array_equal(r.outputs, run_ort(model, x, optimize=True))
