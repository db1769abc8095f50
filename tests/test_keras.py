"""Keras 3 / HGQ2 frontend: rtl4ml's design equals HGQ2's own quantized forward pass
(``model(x, training=False)``) and alkaid's emulation bit for bit, on jets and on inputs at
the quantizers' boundaries, for trained models and for random per-element bit widths; plain
Keras layers; the RTL agrees (one Verilator build); files, ``format=`` and clear refusals."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
hgq = pytest.importorskip("hgq")

from hgq.config import LayerConfigScope, QuantizerConfigScope
from hgq.layers import (
    QAdd,
    QBatchNormalization,
    QBatchNormDense,
    QConv1D,
    QConv2D,
    QDense,
    QEinsumDense,
    Quantizer,
    QUnaryFunctionLUT,
)

import rtl4ml
from rtl4ml.data import load_jets
from rtl4ml.frontends.keras import from_keras
from rtl4ml.torch_common import ConversionError

from .conftest import boundary_inputs


def _np(t) -> np.ndarray:
    return keras.ops.convert_to_numpy(t)


def _jets(n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    d = load_jets()
    X = d["features"].astype(np.float64)
    X = (X - X.mean(0)) / (X.std(0) + 1e-6)
    return X[:n].astype(np.float32), d["labels"][:n].astype(np.int64)


def _scopes(datalane_overflow="WRAP", rounding="RND", beta=1e-5):
    return (QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"),
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode=datalane_overflow,
                                 round_mode=rounding),
            LayerConfigScope(enable_ebops=True, beta0=beta))


def _build(kind: str, datalane_overflow="WRAP", rounding="RND"):
    a, b, c = _scopes(datalane_overflow, rounding)
    with a, b, c:
        if kind == "mlp":
            return keras.Sequential([keras.Input((16,)), QDense(16, activation="relu"), QDense(8, activation="relu"),
                                     QDense(5)])
        inp = keras.Input((16,))                                   # every other HGQ2 layer of the frontend
        h = QDense(8, activation="relu")(inp)
        h2 = QBatchNormDense(8, activation="relu")(h)
        h = QAdd()([h, h2])
        h = QEinsumDense("bi,ij->bj", 6, bias_axes="j", activation="relu")(h)
        h = QUnaryFunctionLUT("tanh")(h)
        h = QBatchNormalization()(h)
        return keras.Model(inp, QDense(5)(h))


def _train(m, epochs: int = 2):
    import torch
    torch.set_num_threads(1)
    keras.utils.set_random_seed(0)
    X, y = _jets()
    m.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    m.fit(X, y, epochs=epochs, batch_size=256, verbose=0)
    return m


def _inputs(graph, rng, n: int = 3000) -> np.ndarray:
    """Jets, then values at the input type's boundaries (ends, one step in, ties, off grid, outside)."""
    X, _ = _jets()
    t = graph.inputs[0].op.types
    edge = boundary_inputs(t, n, rng, overshoot=True)
    tie = np.ldexp(np.floor(np.ldexp(edge[: n // 4], t.fraction)) + 0.5, -t.fraction)   # exact half steps
    return np.concatenate([X, edge, tie]).astype(np.float32)


def _randomize_iq(layer, rng) -> None:
    """Random per-element (k, i, f) of a KIF input quantizer: zero-width, negative-fraction and
    wide elements, so every element has its own type."""
    qi = layer.iq.quantizer
    shape = tuple(qi._i.shape)
    qi._k.assign(rng.integers(0, 2, shape).astype(np.float32))
    qi._i.assign(rng.integers(-2, 5, shape).astype(np.float32))
    qi._f.assign(rng.integers(-1, 7, shape).astype(np.float32))


def _hgq(m, x) -> np.ndarray:
    return _np(m(x, training=False)).astype(np.float64)


@pytest.fixture(scope="module")
def mlp():
    return _train(_build("mlp"))


@pytest.mark.parametrize("overflow,rounding", [("WRAP", "RND"), ("SAT", "TRN"), ("SAT_SYM", "RND_CONV")])
def test_hgq2_model_equals_hgq2_forward_pass(overflow, rounding):
    rng = np.random.default_rng(len(overflow) + len(rounding))
    m = _train(_build("layers", overflow, rounding))
    d = rtl4ml.convert(m)
    x = _inputs(d.graph, rng)
    np.testing.assert_array_equal(d.predict(x), _hgq(m, x))
    # per-element bit widths everywhere: random (k, i, f) for every input quantizer
    for layer in m.layers:
        if getattr(layer, "enable_iq", False) and hasattr(layer.iq, "quantizer") and hasattr(layer.iq.quantizer, "_f"):
            _randomize_iq(layer, rng)
    d = rtl4ml.convert(m)
    t = d.graph.inputs[0].op.types
    assert len({(int(a), int(b), int(c)) for a, b, c in zip(t.signed, t.integer, t.fraction)}) > 5
    assert (t.width == 0).any()
    x = _inputs(d.graph, rng)
    np.testing.assert_array_equal(d.predict(x), _hgq(m, x))


@pytest.mark.parametrize("overflow", ["WRAP", "SAT", "SAT_SYM"])
def test_quantizer_modes_per_element(overflow):
    """A lone HGQ2 Quantizer with every small (k, i, f) per element (zero-width, 1-bit, negative
    i or f), each rounding mode: as the input type and as a Quantize node, equal to HGQ2."""
    rng = np.random.default_rng(8)
    kif = np.array([(k, i, f) for k in (0, 1) for i in range(-2, 4) for f in range(-1, 4)])
    n = len(kif)
    for rounding in ("TRN", "RND", "RND_CONV"):
        m = keras.Sequential([keras.Input((n,)), Quantizer(q_type="kif", round_mode=rounding, overflow_mode=overflow,
                                                           heterogeneous_axis=(1,), name="q")])
        qi = m.layers[0].quantizer
        for var, col in ((qi._k, 0), (qi._i, 1), (qi._f, 2)):
            var.assign(kif[:, col].reshape(tuple(var.shape)).astype(np.float32))
        wide = rtl4ml.fixed.FixedTypeArray.full("fixed<16,6>", (n,))
        x = boundary_inputs(wide, 3000, rng, overshoot=True)
        x[:1000] = np.ldexp(np.floor(np.ldexp(x[:1000], 3)) + 0.5, -3)   # exact ties at 2**-4, the finest step
        x = x.astype(np.float32)
        want = _hgq(m, x)
        for input_type in (None, "fixed<20,8>"):
            g = from_keras(m, input_type=input_type)
            assert [nd.op.kind for nd in g.nodes] == (["input"] if input_type is None else ["input", "quantize"])
            np.testing.assert_array_equal(rtl4ml.convert(g).predict(x), want, err_msg=f"{rounding} {input_type}")


def test_trained_mlp_equals_hgq2_and_alkaid(mlp):
    alkaid = pytest.importorskip("alkaid")  # noqa: F841
    from alkaid.converter import trace_model
    from alkaid.trace import trace
    rng = np.random.default_rng(3)
    d = rtl4ml.convert(mlp)
    x = _inputs(d.graph, rng)
    ours = d.predict(x)
    np.testing.assert_array_equal(ours, _hgq(mlp, x))
    inp, out = trace_model(mlp)
    np.testing.assert_array_equal(trace(inp, out).predict(x.astype(np.float64)), ours)
    # the input type is the first layer's input quantizer, per element, with its modes
    t, iq = d.graph.inputs[0].op.types, mlp.layers[0].iq.quantizer
    k, i, f = (np.asarray(_np(v)).reshape(-1) for v in iq.kif)
    assert (t.overflow, t.rounding) == (iq.overflow_mode, iq.round_mode)
    live = k + i + f > 0
    np.testing.assert_array_equal(t.fraction[live], f[live])
    np.testing.assert_array_equal(t.integer[live], i[live])


def test_conv_models_equal_hgq2():
    rng = np.random.default_rng(4)
    a, b, c = _scopes("SAT", "TRN")
    with a, b, c:
        i2 = keras.Input((6, 6, 2))
        h = QConv2D(3, 3, padding="same", activation="relu")(i2)
        h = QConv2D(2, 3, strides=2, activation="relu")(h)
        m2 = keras.Model(i2, QDense(3)(keras.layers.Flatten()(h)))
        i1 = keras.Input((10, 3))
        h = QConv1D(4, 3, activation="relu")(i1)
        m1 = keras.Model(i1, QDense(2)(keras.layers.Flatten()(h)))
    for m, shape in ((m2, (6, 6, 2)), (m1, (10, 3))):
        x = rng.normal(size=(400,) + shape).astype(np.float32) * 2
        m.compile("adam", "mse")
        m.fit(x, rng.normal(size=(400, m.outputs[0].shape[-1])), epochs=1, verbose=0)
        d = rtl4ml.convert(m)
        x = np.concatenate([x, boundary_inputs(d.graph.inputs[0].op.types, 400, rng, overshoot=True)])
        x = x.astype(np.float32)
        np.testing.assert_array_equal(d.predict(x), _hgq(m, x))


def _exact_weights(m, rng) -> None:
    """Give every layer weights in {0, ±1/2, ±1}, so the float model computes exactly."""
    for layer in m.layers:
        new = []
        for w in layer.get_weights():
            new.append(np.clip(np.round(rng.normal(size=w.shape) * 2) / 2, -1, 1))
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = new
            new = [gamma, beta, mean, np.full_like(var, 1 - layer.epsilon)]   # sqrt(var + eps) == 1 exactly (eps 0.25)
        layer.set_weights([np.asarray(v, np.float32) for v in new])


def _plain_model():
    inp = keras.Input((6, 6, 2))
    h = keras.layers.Conv2D(3, 3, padding="same")(inp)
    h = keras.layers.BatchNormalization(epsilon=0.25)(h)
    h = keras.layers.ReLU()(h)
    h = keras.layers.Conv2D(2, 3, activation="relu")(h)
    h = keras.layers.Flatten()(h)
    a = keras.layers.Dense(4)(h)
    b = keras.layers.Dropout(0.5)(keras.layers.Dense(4, activation="relu")(h))
    h = keras.layers.Concatenate()([keras.layers.Add()([a, b]), keras.layers.Subtract()([a, b])])
    h = keras.layers.Reshape((2, 4))(h)
    return keras.Model(inp, keras.layers.Dense(3)(h))


def test_plain_keras_layers_exact():
    """Weights in {0, ±1/2, ±1} and inputs on a 2**-3 grid: every value of Keras's float32 forward
    pass stays far below 24 significant bits, so it is exact."""
    rng = np.random.default_rng(5)
    m = _plain_model()
    _exact_weights(m, rng)
    g = from_keras(m, input_type="fixed<6,3>")
    x = np.clip(boundary_inputs(g.inputs[0].op.types, 300, rng), -4, 3.875)
    x = np.ldexp(np.floor(np.ldexp(x, 3)), -3)
    np.testing.assert_array_equal(rtl4ml.convert(g).predict(x), _np(m(x)))


def test_plain_keras_types_as_for_pytorch():
    rng = np.random.default_rng(6)
    keras.utils.set_random_seed(6)
    m = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="sigmoid", name="fc1"),
                          keras.layers.Dense(2, name="fc2")])
    with pytest.raises(ConversionError, match=r"layer 'fc1' \(Dense\): the kernel has the value .* pass weight_type"):
        from_keras(m, input_type="fixed<8,3>")
    with pytest.raises(ConversionError, match="input 'input_layer.*': input_type is required"):
        from_keras(m, weight_type="fixed<8,2,RND,SAT>")
    g = from_keras(m, input_type="fixed<8,3>", weight_type={"fc1": "fixed<8,2,RND,SAT>", "fc2": "fixed<6,2,RND,SAT>"},
                   activation_type="ufixed<8,0,RND,SAT>", result_type="fixed<12,4,RND,SAT>")
    x = rng.normal(size=(500, 5))
    y = rtl4ml.convert(g).predict(x)
    assert np.abs(y - _np(m(x.astype(np.float32)))).max() < 0.3   # a quantized model of the float one
    kinds = [n.op.kind for n in g.nodes]
    assert kinds == ["input", "dense", "quantize", "lookup_table", "dense", "quantize"]
    with pytest.raises(ConversionError, match=r"weight_type has entries for layers that do not use it: \['nope'\]"):
        from_keras(m, input_type="fixed<8,3>", result_type="fixed<12,4,RND,SAT>",
                   weight_type={"fc1": "fixed<8,2>", "fc2": "fixed<8,2>", "nope": "fixed<8,2>"})


def test_refusals_name_the_layer():
    m = keras.Sequential([keras.Input((4, 3)), keras.layers.LayerNormalization(name="ln")])
    with pytest.raises(ConversionError, match=r"layer 'ln' \(LayerNormalization\): the layer type "
                                              r"LayerNormalization is not supported; supported: HGQ2"):
        from_keras(m, input_type="fixed<8,3>")
    with QuantizerConfigScope(place="datalane", default_q_type="kif", round_mode="RND_INF"):
        m = keras.Sequential([keras.Input((4,)), QDense(3, name="fc")])
    with pytest.raises(ConversionError, match=r"input 'input_layer.*': the quantizer 'fc_iq' rounds with 'RND_INF'; "
                                              r"rtl4ml maps TRN, RND"):
        from_keras(m)
    with pytest.raises(ConversionError, match=r"layer 'fc' \(QDense\): the quantizer 'fc_iq' rounds with 'RND_INF'"):
        from_keras(m, input_type="fixed<8,3>")
    with QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP_SM", round_mode="RND"):
        m = keras.Sequential([keras.Input((4,)), QDense(3, name="fc2")])
    with pytest.raises(ConversionError, match="the quantizer 'fc2_iq' overflows with 'WRAP_SM'; rtl4ml maps WRAP, "
                                              "SAT, SAT_SYM"):
        from_keras(m)
    m = keras.Sequential([keras.Input((4,)), QDense(3, activation="sigmoid", name="fc3")])
    with pytest.raises(ConversionError, match=r"layer 'fc3' \(QDense\): the activation 'sigmoid' is not supported "
                                              r"inside an HGQ2 layer .*QUnaryFunctionLUT"):
        from_keras(m)


def test_files_and_format(mlp, tmp_path):
    x, _ = _jets(500)
    want = _hgq(mlp, x)
    mlp.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(rtl4ml.convert(tmp_path / "m.keras").predict(x), want)
    (tmp_path / "m.bin").write_bytes((tmp_path / "m.keras").read_bytes())
    with pytest.raises(ConversionError, match=r"m.bin is a Keras 3 model archive: name it model.keras, or pass "
                                              r"format='keras'"):
        rtl4ml.convert(tmp_path / "m.bin")
    np.testing.assert_array_equal(rtl4ml.convert(tmp_path / "m.bin", format="keras").predict(x), want)
    (tmp_path / "old.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(8))
    with pytest.raises(ConversionError, match=r"old.h5: a legacy HDF5 Keras file; .* model.save\('model.keras'\)"):
        rtl4ml.convert(tmp_path / "old.h5")
    with pytest.raises(ValueError, match="format 'tflite' is not one of torch, onnx, keras, xgboost, skops, design"):
        rtl4ml.convert(tmp_path / "m.keras", format="tflite")
    with pytest.raises(ValueError, match="Keras model fixes its input shapes"):
        rtl4ml.convert(mlp, input_shape=(16,))
    with pytest.raises(ValueError, match="format 'onnx' applies to a model file, not to an in-memory Sequential"):
        rtl4ml.convert(mlp, format="onnx")


@pytest.mark.hw
def test_hgq2_design_rtl_is_bit_exact(mlp):
    """One Verilator build: the trained HGQ2 MLP on jets and boundary inputs."""
    rng = np.random.default_rng(7)
    d = rtl4ml.convert(mlp, name="hgq_mlp", clock_ns=3.0)
    x = _inputs(d.graph, rng, 2000)
    r = d.verify(x)
    assert r.ok, str(r)
    np.testing.assert_array_equal(r.outputs, _hgq(mlp, x))
