"""ONNX / QONNX frontend: hand-built QONNX graphs equal a numpy reference of the QONNX
semantics bit for bit (incl. type boundaries); malformed graphs are refused naming the node."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from rtl4ml.frontends.onnx import from_onnx, quant_numpy  # noqa: E402
from rtl4ml.torch_common import ConversionError  # noqa: E402

QD = "qonnx.custom_op.general"


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)


def _quant(name, x, out, scale, bits, signed=1, narrow=0, mode="ROUND", zp=0.0):
    inits = [_init(f"{name}_s", scale), _init(f"{name}_z", zp), _init(f"{name}_b", bits)]
    node = helper.make_node("Quant", [x, f"{name}_s", f"{name}_z", f"{name}_b"], [out], name=name, domain=QD,
                            signed=signed, narrow=narrow, rounding_mode=mode)
    return node, inits


def _mlp(rng, n_in=6, n_hid=5, n_out=3, act_mode="ROUND", zp=0.0, narrow=0, in_shape=None):
    nodes, inits = [], []
    n, i = _quant("q_in", "x", "xq", 2.0 ** -4, 6)
    nodes.append(n); inits += i
    w1 = rng.normal(size=(n_hid, n_in))
    inits.append(_init("w1", w1))
    n, i = _quant("q_w1", "w1", "w1q", 2.0 ** -3, 4, narrow=1)
    nodes.append(n); inits += i
    inits.append(_init("b1", np.round(rng.normal(size=n_hid) * 16) / 16))
    nodes.append(helper.make_node("Gemm", ["xq", "w1q", "b1"], ["h"], name="fc1", transB=1))
    nodes.append(helper.make_node("Relu", ["h"], ["hr"], name="relu1"))
    n, i = _quant("q_act", "hr", "hq", 2.0 ** -2, 5, signed=0, narrow=narrow, mode=act_mode, zp=zp)
    nodes.append(n); inits += i
    w2 = np.round(rng.normal(size=(n_hid, n_out)) * 8) / 8
    inits.append(_init("w2", w2))
    nodes.append(helper.make_node("MatMul", ["hq", "w2"], ["y"], name="fc2"))
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape or ["N", n_in])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QD, 1)])


def _reference(model, x):
    """The QONNX model evaluated with numpy (float64), node by node."""
    env = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    env["x"] = x
    for n in model.graph.node:
        a = {t.name: helper.get_attribute_value(t) for t in n.attribute}
        a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in a.items()}
        ins = [env[i] for i in n.input]
        if n.op_type == "Quant":
            y = quant_numpy(ins[0], ins[1], ins[2], int(ins[3]), a.get("signed", 1), a.get("narrow", 0),
                            a.get("rounding_mode", "ROUND"))
        elif n.op_type == "Gemm":
            y = ins[0] @ (ins[1].T if a.get("transB") else ins[1]) + ins[2]
        elif n.op_type == "MatMul":
            y = ins[0] @ ins[1]
        elif n.op_type == "Relu":
            y = np.maximum(ins[0], 0)
        env[n.output[0]] = y
    return env["y"]


def _inputs(rng, n_in):
    # random values, every rounding tie of the input quantizer, and values past both saturation bounds
    x = rng.normal(size=(3000, n_in)) * 1.5
    ties = (np.arange(-70, 70) + 0.5) / 16
    x[:len(ties)] = ties[:, None]
    x[-50:] = rng.choice([-9.0, 9.0, -2.0, 1.97], size=(50, n_in))
    return x


def quantizer_inputs(rng, scale: float, bits: int, shape: tuple[int, ...], n: int, lo: int | None = None) -> np.ndarray:
    """float32 inputs for a model whose input quantizer has step ``scale`` and signed ``bits``-bit
    codes (or codes ``lo .. lo + 2**bits - 1``): random values distributed as the calibration data
    (standard normal), codes near them, the ties between codes, one float32 ulp either side of a
    tie, and values at and past both of the quantizer's bounds."""
    lo = -(2 ** (bits - 1)) if lo is None else lo
    hi = lo + 2 ** bits - 1
    k = np.clip(np.round(rng.normal(0, 1 / scale, size=(n, *shape))), lo, hi).astype(np.float32)
    extreme = rng.random(k.shape) < 0.03
    k[extreme] = rng.choice([lo, lo + 1, hi - 1, hi], size=int(extreme.sum()))   # the extreme codes
    tie = ((k + np.float32(0.5)) * np.float32(scale)).astype(np.float32)
    cases = [rng.normal(0, 1, size=k.shape).astype(np.float32),                 # random
             k * np.float32(scale),                                             # on a code
             tie, np.nextafter(tie, np.float32(np.inf)), np.nextafter(tie, np.float32(-np.inf)),
             np.float32(rng.choice([lo - 0.5, lo - 3, hi + 0.5, hi + 3, hi + 0.49], size=k.shape) * scale)]
    pick = rng.choice(len(cases), size=k.shape, p=[0.3, 0.15, 0.2, 0.15, 0.17, 0.03])
    x = np.choose(pick, cases).astype(np.float32)
    x[: n // 10] = cases[0][: n // 10]          # some samples entirely random
    return x


@pytest.mark.parametrize("mode,zp,narrow", [("ROUND", 0.0, 0), ("FLOOR", 0.0, 1), ("CEIL", 3.0, 0),
                                            ("ROUND", -2.0, 1)])
def test_qonnx_mlp_equals_reference(mode, zp, narrow):
    rng = np.random.default_rng(1)
    m = _mlp(rng, act_mode=mode, zp=zp, narrow=narrow)
    g = from_onnx(m)
    x = _inputs(rng, 6)
    np.testing.assert_array_equal(g.predict(x), _reference(m, x))


def test_plain_onnx_against_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(2)
    w = np.round(rng.normal(size=(4, 3)) * 8) / 8
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"), helper.make_node("Relu", ["h"], ["y"], name="r")]
    g = helper.make_graph(nodes, "p", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], [_init("w", w)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    graph = from_onnx(m, input_type="fixed<10,4>")
    x = np.round(rng.normal(size=(500, 4)) * 64) / 64
    sess = ort.InferenceSession(m.SerializeToString())
    np.testing.assert_array_equal(graph.predict(x), sess.run(None, {"x": x.astype(np.float32)})[0])


def test_refusals_name_the_node():
    rng = np.random.default_rng(3)
    m = _mlp(rng)
    m.graph.node[3].op_type = "Foo"
    with pytest.raises(ConversionError, match=r"node 'relu1' \(Foo\): the op 'Foo' is not supported"):
        from_onnx(m)
    with pytest.raises(ConversionError, match=r"input 'x' has a dynamic shape"):
        from_onnx(_mlp(rng, in_shape=["N", "F"]))
    m = _mlp(rng)
    next(a for a in m.graph.node[4].attribute if a.name == "rounding_mode").s = b"HALF_DOWN"
    with pytest.raises(ConversionError, match=r"node 'q_act' \(Quant\): rounding_mode 'HALF_DOWN' is not supported"):
        from_onnx(m)
    g = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], name="flat", allowzero=1)], "r",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 0])],
                          [numpy_helper.from_array(np.array([1, 0], np.int64), "shape")])
    with pytest.raises(ConversionError, match=r"node 'flat' \(Reshape\): shape \[1, 0\] with allowzero=1 makes an "
                                              r"empty axis"):
        from_onnx(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]), input_type="fixed<8,3>")


def test_convert_reads_onnx_files(tmp_path):
    """rtl4ml.convert and the command line take a .onnx path (by extension)."""
    import rtl4ml
    from rtl4ml.cli import main
    from onnx import TensorProto, helper, numpy_helper

    w = np.array([[0.5, -0.25], [1.0, 0.75], [0.125, -1.0]], dtype=np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                              "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
                              [numpy_helper.from_array(w, "W")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    d = rtl4ml.convert(path, input_type="fixed<8,3>")
    x = np.random.default_rng(0).normal(size=(200, 3))
    np.testing.assert_array_equal(d.predict(x), np.maximum(rtl4ml.quantize(x, "fixed<8,3>") @ w.astype(np.float64), 0))
    with pytest.raises(ValueError, match="an ONNX model fixes its input shapes"):
        rtl4ml.convert(path, input_type="fixed<8,3>", input_shape=(3,))
    assert main(["convert", str(path), "--input-type", "fixed<8,3>", "-o", str(tmp_path / "out")]) == 0
