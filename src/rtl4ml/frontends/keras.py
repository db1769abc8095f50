"""Keras 3 / HGQ2 frontend: a Keras model (in memory or a ``.keras`` file) to a Graph.

The Keras functional graph is walked layer by layer (a ``Sequential`` through its functional
twin, nested models recursively). Shapes in Keras are batch-first and channels-last; Graph
shapes exclude the batch, and convolutions, which rtl4ml computes channels-first, get free
transposes (wiring) around them.

HGQ2 layers (package ``hgq``) carry their own quantization, which is mapped exactly:

- A fixed-point quantizer (``Quantizer``, a layer's input quantizer ``iq`` or output
  quantizer ``oq``) becomes a ``Quantize`` with per-element types ``(k, i, f)`` read from the
  quantizer (``kif``, broadcast to the tensor by the quantizer's own ``bw_mapper``): HGQ2's
  ``k, i, f`` are rtl4ml's ``signed, integer, fraction`` (``i`` excludes the sign bit in
  both). Rounding ``TRN`` / ``RND`` / ``RND_CONV`` (``S_RND`` / ``S_RND_CONV`` are stochastic
  only in training) and overflow ``WRAP`` / ``SAT`` / ``SAT_SYM`` are the same operations in
  both tools (HGQ2 saturates before rounding, rtl4ml after; on a grid-aligned clamp range
  that gives the same code). An element with ``k + i + f <= 0`` is 0 in HGQ2's inference
  pass and gets rtl4ml's zero type; a 1-bit signed ``SAT_SYM`` element (HGQ2: the range
  ``[0, 0]``) too. Other modes (``TRN_ZERO``, ``RND_INF``, ``WRAP_SM``, ...) and float or
  scaled quantizers are refused naming the layer.
- Weights and biases are HGQ2's quantized values (``qkernel`` / ``qbias``, what its
  inference pass multiplies with; a ``QBatchNormDense`` fuses its BatchNorm there), taken
  exactly. ``QDense``, ``QBatchNormDense``, ``QEinsumDense``, ``QConv1D`` / ``QConv2D``,
  ``QBatchNormalization``, ``QAdd`` / ``QSubtract`` / ``QMultiply`` / ``QMaximum`` /
  ``QMinimum`` and ``QUnaryFunctionLUT`` (a table of its function, entries in its output
  quantizer's types) are supported, each with ``relu`` or linear activations.

Plain Keras layers (``Dense``, ``Conv1D``/``Conv2D``, ``EinsumDense``, ``ReLU``,
``Activation``, ``Flatten``, ``Reshape``, ``Dropout``, ``Add``/``Subtract``/``Multiply``,
``Concatenate``, ``BatchNormalization``) take their types as for the PyTorch frontend:
float weights need ``weight_type`` / ``bias_type`` (a type string or ``{layer name: type}``)
unless they are short binary fractions, ``result_type`` rounds each Dense/Conv output,
sigmoid and tanh become tables with entries in ``activation_type``.

Model inputs: ``input_type`` (a type string, a FixedTypeArray, or a dict by input name).
When it is not given and an input is read only by HGQ2 layers whose input quantizers agree,
that quantizer is the input type (the design's inputs are then the quantized values HGQ2
computes with, as in alkaid's designs).

Backend: rtl4ml runs Keras on its PyTorch backend. rtl4ml depends on torch already, so the
``keras`` extra adds only Keras itself (TensorFlow or JAX would add hundreds of MB for
nothing rtl4ml computes with them); ``KERAS_BACKEND=torch`` is set before the first
``import keras`` unless the user chose a backend. The frontend only reads weights and
quantizer parameters through ``keras.ops``, so a model loaded under another backend
converts the same way.
"""

from __future__ import annotations

import os
import shutil
import string
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..fixed import FixedPointError, FixedType, FixedTypeArray, as_type_array, parse_type
from ..graph import Graph, GraphBuilder
from ..graph.composite import softmax as softmax_nodes
from ..graph.ops.base import GraphError
from ..passes.graph_passes import run_passes
from ..torch_common import ConversionError
from .formats import KERAS_H5
from .onnx import DEFAULT_ACTIVATION_TYPES, _sanitize
from .params import exact_or_typed, option_type, refuse_unused_entries

TYPE_OPTIONS = ("weight_type", "bias_type", "result_type", "activation_type", "table_input_type")
#: HGQ2 rounding mode -> rtl4ml's (the stochastic ones are deterministic in inference)
ROUNDING = {"TRN": "TRN", "RND": "RND", "RND_CONV": "RND_CONV", "S_RND": "RND", "S_RND_CONV": "RND_CONV"}
OVERFLOW = ("WRAP", "SAT", "SAT_SYM")


def import_keras():
    """``keras``, on the torch backend unless the user picked one (see the module docstring)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        raise ConversionError("the Keras frontend needs Keras 3: pip install 'rtl4ml[keras]'") from None
    if not hasattr(keras, "ops"):
        raise ConversionError(f"rtl4ml needs Keras 3 (keras.ops); keras {keras.__version__} is installed")
    return keras


def _import_hgq() -> bool:
    """Import HGQ2 when installed (it registers its layers for ``keras.saving.load_model``);
    whether it is."""
    try:
        import hgq  # noqa: F401
    except ImportError:
        return False
    return True


def load_keras(path: str | Path):
    """Load a ``.keras`` file (HGQ2 layers are registered first when ``hgq`` is installed)."""
    path = Path(path)
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise ConversionError(f"{path}: {KERAS_H5}")
    try:
        keras = import_keras()
    except ConversionError as e:
        raise ConversionError(f"{path}: {e}") from None
    has_hgq = _import_hgq()
    try:
        if path.suffix.lower() == ".keras":
            return keras.saving.load_model(path, compile=False)
        with tempfile.TemporaryDirectory() as d:   # Keras reads archives only by the name *.keras
            shutil.copyfile(path, Path(d) / "model.keras")
            return keras.saving.load_model(Path(d) / "model.keras", compile=False)
    except Exception as e:   # noqa: BLE001 - Keras raises KeyError, ValueError, ... for bad archives
        hint = "" if has_hgq else " (if it holds HGQ2 layers: pip install hgq2)"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConversionError(f"{path}: Keras could not load the model{hint}: {first}") from None


def _np(t) -> np.ndarray:
    keras = import_keras()
    return np.asarray(keras.ops.convert_to_numpy(t), dtype=np.float64)


# --------------------------------------------------------------------------- context


class _Context:
    """The builder, the options and the layer being translated (for messages)."""

    def __init__(self, options: dict) -> None:
        self.builder = GraphBuilder()
        self.options = options
        self.used: dict[str, set[str]] = {o: set() for o in TYPE_OPTIONS}
        self.layer = None
        self.what = ""
        self.absorbed: set[int] = set()   # id() of input quantizers that became the Input types

    @property
    def name(self) -> str:
        return _sanitize(self.layer.name)

    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.what}: {message}" if self.what else message)

    def type_for(self, option: str) -> FixedType | None:
        return option_type(self.options, option, (self.layer.name,), self.used, self.error)

    def exact(self, values, what: str, option: str):
        """``(values, None)`` for short binary fractions, else ``(values, the option's type)``."""
        return exact_or_typed(values, what, option, self.type_for, self.error, self.layer.name,
                              "quantize the model with HGQ2")

    def weights(self, w, b) -> tuple:
        """``(w, its type, b, its type)``: exact or typed; a bias beside typed weights is rounded
        to ``bias_type`` (or the weight type) even when its values are short."""
        w, wt = self.exact(w, "the kernel", "weight_type")
        b, bt = self.exact(b, "the bias", "bias_type")
        if wt is not None and bt is None and not np.all(b == 0):
            bt = self.type_for("bias_type") or wt
        return w, wt, b, bt

    def result(self, out: str) -> str:
        rt = self.type_for("result_type")
        return out if rt is None else self.builder.quantize(out, rt, name=f"{self.name}_result")


# --------------------------------------------------------------------------- quantizers


def quantizer_types(q, shape: tuple[int, ...], what: str) -> FixedTypeArray:
    """The per-element types of an HGQ2 ``Quantizer`` on a tensor of ``shape`` (no batch axis)."""
    from hgq.quantizer.internal import FixedPointQuantizerBase
    qi = q.quantizer
    if not isinstance(qi, FixedPointQuantizerBase):
        raise ConversionError(f"{what}: the quantizer {q.name!r} is a {type(qi).__name__}; rtl4ml maps fixed-point "
                              "quantizers (q_type 'kif' or 'kbi'), not float ones")
    if q.scaler is not None or q.affine is not None or q.qnoise_factor not in (None, 1.0):
        raise ConversionError(f"{what}: the quantizer {q.name!r} has a scaler/affine/qnoise_factor, which rtl4ml "
                              "does not map")
    rounding = ROUNDING.get(qi.round_mode)
    if rounding is None:
        raise ConversionError(f"{what}: the quantizer {q.name!r} rounds with {qi.round_mode!r}; rtl4ml maps "
                              f"{', '.join(ROUNDING)}")
    if qi.overflow_mode not in OVERFLOW:
        raise ConversionError(f"{what}: the quantizer {q.name!r} overflows with {qi.overflow_mode!r}; rtl4ml maps "
                              f"{', '.join(OVERFLOW)}")
    full = (1,) + tuple(shape)
    k, i, f = (np.rint(_np(qi.bw_mapper.bw_to_x(v, full))).astype(np.int64).reshape(full)[0] for v in qi.kif)
    zero = (k + i + f <= 0) | ((qi.overflow_mode == "SAT_SYM") & (k == 1) & (i + f == 0))
    k, i, f = np.where(zero, 0, k), np.where(zero, 0, i), np.where(zero, 0, f)
    try:
        return FixedTypeArray(k.astype(bool), i, f, rounding, qi.overflow_mode)
    except FixedPointError as e:
        raise ConversionError(f"{what}: the quantizer {q.name!r}: {e}") from None


def _quantize(ctx: _Context, x: str, q, suffix: str) -> str:
    if id(q) in ctx.absorbed:
        return x
    t = quantizer_types(q, ctx.builder.shape(x), ctx.what)
    return ctx.builder.quantize(x, t, name=f"{ctx.name}_{suffix}")


def _is_hgq(layer) -> bool:
    return type(layer).__module__.split(".")[0] == "hgq"


def _iq(ctx: _Context, layer, xs: list[str]) -> list[str]:
    if not getattr(layer, "enable_iq", False):
        return xs
    iq = layer.iq
    qs = list(iq.quantizers) if hasattr(iq, "quantizers") else [iq]
    if len(qs) != len(xs):
        raise ctx.error(f"has {len(qs)} input quantizers for {len(xs)} inputs")
    return [_quantize(ctx, x, q, "iq" if len(xs) == 1 else f"iq{j}") for j, (x, q) in enumerate(zip(xs, qs))]


def _oq(ctx: _Context, layer, out: str) -> str:
    if not getattr(layer, "enable_oq", False):
        return out
    return _quantize(ctx, out, layer.oq, "oq")


# --------------------------------------------------------------------------- activations


def _activation_name(fn) -> str:
    if fn is None:
        return "linear"
    if isinstance(fn, str):
        return fn
    return getattr(fn, "__name__", type(fn).__name__)


def _activation(ctx: _Context, x: str, fn, hgq: bool) -> str:
    a = _activation_name(fn)
    if a == "linear":
        return x
    if a == "relu":
        return ctx.builder.relu(x, name=f"{ctx.name}_relu")
    if not hgq and a in DEFAULT_ACTIVATION_TYPES:
        t_in = ctx.type_for("table_input_type")
        if t_in is not None:
            x = ctx.builder.quantize(x, t_in, name=f"{ctx.name}_in")
        t = ctx.type_for("activation_type") or DEFAULT_ACTIVATION_TYPES[a]
        try:
            return ctx.builder.lookup(x, a, t, name=f"{ctx.name}_{a}")
        except GraphError as e:
            raise ctx.error(f"{e}; pass table_input_type='fixed<...>' to quantize the table's input") from None
    if not hgq and a == "softmax":
        return softmax_nodes(ctx.builder, x, -1, name=f"{ctx.name}_softmax", out_type=ctx.type_for("activation_type"))
    where = ("inside an HGQ2 layer (its float result would feed the next quantizer; use an HGQ2 "
             "QUnaryFunctionLUT for other functions)" if hgq else "")
    raise ctx.error(f"the activation {a!r} is not supported {where}".rstrip() +
                    "; supported: linear, relu" + ("" if hgq else ", sigmoid, tanh, softmax"))


# --------------------------------------------------------------------------- layers


def _dense(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    x = _iq(ctx, layer, xs)[0] if hgq else xs[0]
    if hgq:
        w, b = _np(layer.qkernel), (None if layer.bias is None else _np(layer.qbias))
    else:
        w, b = _np(layer.kernel), (None if layer.bias is None else _np(layer.bias))
    w, wt, b, bt = ctx.weights(w, np.zeros(w.shape[1]) if b is None else b)
    out = ctx.builder.dense(x, w, b, name=ctx.name, weight_type=wt, bias_type=bt)
    return _finish(ctx, layer, out, hgq)


def _finish(ctx: _Context, layer, out: str, hgq: bool) -> str:
    """A weighted layer's tail: the result type (plain Keras), the activation, the output quantizer."""
    if not hgq:
        out = ctx.result(out)
    return _oq(ctx, layer, _activation(ctx, out, layer.activation, hgq))


def _einsum_equation(ctx: _Context, equation: str, rank: int) -> str:
    """The per-sample equation of a Keras EinsumDense (its first input/output letter is the batch)."""
    lhs, out = equation.replace(" ", "").split("->")
    a, k = lhs.split(",")
    if "..." in a:
        free = [c for c in string.ascii_letters if c not in equation]
        n = rank + 1 - (len(a) - 3)
        dots = "".join(free[:n])
        a, out = a.replace("...", dots), out.replace("...", dots)
    if not a or not out or a[0] != out[0] or a[0] in k or a[0] in a[1:] or a[0] in out[1:]:
        raise ctx.error(f"the equation {equation!r} does not keep the batch axis first; rtl4ml maps equations "
                        "'b...,...->b...' with the batch letter first")
    return f"{a[1:]},{k}->{out[1:]}"


def _einsum_dense(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    x = _iq(ctx, layer, xs)[0] if hgq else xs[0]
    w = _np(layer.qkernel) if hgq else _np(layer.kernel)
    w, wt = ctx.exact(w, "the kernel", "weight_type")
    eq = _einsum_equation(ctx, layer.equation, len(ctx.builder.shape(x)))
    kc = ctx.builder.constant(w, type=wt, name=f"{ctx.name}_kernel")
    out = ctx.builder.einsum(eq, x, kc, name=ctx.name)
    if layer.bias is not None:
        b = _np(layer.qbias) if hgq else _np(layer.bias)
        b, bt = ctx.exact(b, "the bias", "bias_type")
        out = ctx.builder.add(out, ctx.builder.constant(b, type=bt, name=f"{ctx.name}_bias"), name=f"{ctx.name}_add")
    return _finish(ctx, layer, out, hgq)


def _same_padding(ctx: _Context, n: int, k: int, s: int, d: int) -> int:
    total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
    if total % 2:
        raise ctx.error(f"padding='same' pads {total // 2} before and {total - total // 2} after on an axis of "
                        f"size {n} (kernel {k}, stride {s}); rtl4ml pads symmetrically: use an odd kernel with "
                        "stride 1, or padding='valid'")
    return total // 2


def _conv(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    x = _iq(ctx, layer, xs)[0] if hgq else xs[0]
    rank = layer.rank
    if rank not in (1, 2):
        raise ctx.error(f"{rank}-D convolutions are not supported (Conv1D and Conv2D are)")
    if layer.padding not in ("valid", "same"):
        raise ctx.error(f"padding={layer.padding!r} is not supported (valid and same are)")
    last = layer.data_format == "channels_last"
    shape = ctx.builder.shape(x)
    spatial = shape[:-1] if last else shape[1:]
    w = _np(layer.qkernel) if hgq else _np(layer.kernel)          # (*kernel, C_in/groups, C_out)
    w = np.transpose(w, (rank + 1, rank) + tuple(range(rank)))    # (C_out, C_in/groups, *kernel)
    b = np.zeros(w.shape[0]) if layer.bias is None else (_np(layer.qbias) if hgq else _np(layer.bias))
    w, wt, b, bt = ctx.weights(w, b)
    stride, dil = tuple(layer.strides), tuple(layer.dilation_rate)
    pad = (0,) * rank if layer.padding == "valid" else tuple(
        _same_padding(ctx, n, k, s, d) for n, k, s, d in zip(spatial, w.shape[2:], stride, dil))
    if last:
        x = ctx.builder.transpose(x, (rank,) + tuple(range(rank)), name=f"{ctx.name}_cf")
    out = ctx.builder.conv(x, w, b, stride, pad, dil, int(layer.groups), name=ctx.name, weight_type=wt, bias_type=bt)
    if last:
        out = ctx.builder.transpose(out, tuple(range(1, rank + 1)) + (0,), name=f"{ctx.name}_cl")
    return _finish(ctx, layer, out, hgq)


def _bn_shape(ctx: _Context, layer, x: str) -> tuple[int, ...]:
    rank = len(ctx.builder.shape(x)) + 1
    axes = [a % rank for a in (layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis])]
    if axes != [rank - 1]:
        raise ctx.error(f"normalizes over axis {layer.axis}; rtl4ml maps BatchNormalization over the last axis")
    return ctx.builder.shape(x)[-1:]


def _qbatchnorm(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    x = _iq(ctx, layer, xs)[0]
    _bn_shape(ctx, layer, x)
    s, o = (_np(v) for v in layer.qscaler_and_qoffset)
    out = ctx.builder.affine(x, s.reshape(-1), o.reshape(-1), name=ctx.name)
    return _oq(ctx, layer, out)


def _batchnorm(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    x = xs[0]
    _bn_shape(ctx, layer, x)
    gamma = _np(layer.gamma) if layer.scale else 1.0
    beta = _np(layer.beta) if layer.center else 0.0
    scale = gamma / np.sqrt(_np(layer.moving_variance) + layer.epsilon)
    shift = beta - _np(layer.moving_mean) * scale
    scale, st = ctx.exact(scale, "the folded scale", "weight_type")
    shift, bt = ctx.exact(shift, "the folded shift", "bias_type")
    return ctx.builder.affine(x, scale, shift, name=ctx.name, scale_type=st, shift_type=bt)


def _merge(method: str) -> Callable:
    def handler(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
        xs = _iq(ctx, layer, xs) if hgq else xs
        if len(xs) < 2:
            raise ctx.error(f"merges {len(xs)} inputs")
        if method == "sub" and len(xs) != 2:
            raise ctx.error("subtracts exactly two inputs")
        out = xs[0]
        for j, x in enumerate(xs[1:], 1):
            out = getattr(ctx.builder, method)(out, x, name=ctx.name if j == len(xs) - 1 else f"{ctx.name}_{j}")
        return _oq(ctx, layer, out) if hgq else out
    return handler


def _concat(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    rank = len(ctx.builder.shape(xs[0])) + 1
    axis = layer.axis % rank
    if axis == 0:
        raise ctx.error("concatenates along the batch axis")
    return ctx.builder.concat(xs, axis - 1, name=ctx.name)


def _relu_layer(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
        raise ctx.error("ReLU with max_value, negative_slope or threshold is not supported (plain ReLU is)")
    return ctx.builder.relu(xs[0], name=ctx.name)


def _activation_layer(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    return _activation(ctx, xs[0], layer.activation, False)


def _quantizer_layer(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    return _quantize(ctx, xs[0], layer, "q")


def _lut(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    """``QUnaryFunctionLUT``: its input quantizer, then a table of its function whose entries are
    its output quantizer's values (what HGQ2 computes in inference: ``oq(f(iq(x)))``)."""
    if type(layer).__name__ != "QUnaryFunctionLUT":
        raise ctx.error("only QUnaryFunctionLUT tables are supported")
    if not (layer.enable_iq and layer.enable_oq):
        raise ctx.error("a table needs both its input and its output quantizer (enable_iq and enable_oq)")
    x = _iq(ctx, layer, xs)[0]
    shape = ctx.builder.shape(x)
    t_out = quantizer_types(layer.oq, shape, ctx.what)
    keras = import_keras()
    fn = layer.activation

    def table(v: np.ndarray) -> np.ndarray:
        return np.asarray(keras.ops.convert_to_numpy(fn(keras.ops.convert_to_tensor(np.asarray(v, np.float32)))),
                          dtype=np.float64)
    try:
        return ctx.builder.lookup(x, table, t_out, name=ctx.name)
    except GraphError as e:
        raise ctx.error(str(e)) from None


def _flatten(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    if getattr(layer, "data_format", "channels_last") == "channels_first" and len(ctx.builder.shape(xs[0])) > 1:
        raise ctx.error("Flatten with data_format='channels_first' is not supported")
    return ctx.builder.flatten(xs[0], name=ctx.name)


def _reshape(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    target = list(layer.target_shape)
    n = int(np.prod(ctx.builder.shape(xs[0])))
    if -1 in target:
        known = int(np.prod([t for t in target if t != -1]))
        target[target.index(-1)] = n // known
    if int(np.prod(target)) != n:
        raise ctx.error(f"cannot reshape {ctx.builder.shape(xs[0])} to {tuple(layer.target_shape)}")
    return ctx.builder.reshape(xs[0], target, name=ctx.name)


def _identity(ctx: _Context, layer, xs: list[str], hgq: bool) -> str:
    return xs[0]


#: layer class name -> handler(ctx, layer, input node names, is an HGQ2 layer)
HGQ_LAYERS: dict[str, Callable] = {
    "QDense": _dense, "QBatchNormDense": _dense, "QEinsumDense": _einsum_dense, "QConv1D": _conv,
    "QConv2D": _conv, "QBatchNormalization": _qbatchnorm, "QAdd": _merge("add"), "QSubtract": _merge("sub"),
    "QMultiply": _merge("mul"), "QMaximum": _merge("maximum"), "QMinimum": _merge("minimum"),
    "Quantizer": _quantizer_layer, "QUnaryFunctionLUT": _lut,
}
KERAS_LAYERS: dict[str, Callable] = {
    "Dense": _dense, "EinsumDense": _einsum_dense, "Conv1D": _conv, "Conv2D": _conv, "ReLU": _relu_layer,
    "Activation": _activation_layer, "Flatten": _flatten, "Reshape": _reshape, "Dropout": _identity,
    "Add": _merge("add"), "Subtract": _merge("sub"), "Multiply": _merge("mul"), "Maximum": _merge("maximum"),
    "Minimum": _merge("minimum"), "Concatenate": _concat, "BatchNormalization": _batchnorm,
}


# --------------------------------------------------------------------------- the walk


def _functional(model):
    keras = import_keras()
    return model._functional if isinstance(model, keras.Sequential) else model


def _nodes(model):
    """The model's layer calls in execution order: (layer, call arguments, output tensors)."""
    by_depth = model._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            yield node.operation, node.arguments.args, node.outputs


def _tensor_args(args) -> list:
    """The KerasTensors among a call's positional arguments (a merge layer takes a list)."""
    keras = import_keras()
    flat = []
    for a in args:
        if isinstance(a, (list, tuple)):
            flat.extend(t for t in a if isinstance(t, keras.KerasTensor))
        elif isinstance(a, keras.KerasTensor):
            flat.append(a)
    return flat


def _walk(ctx: _Context, model, inputs: list[str]) -> list[str]:
    keras = import_keras()
    model = _functional(model)
    tensors = {t.name: n for t, n in zip(model.inputs, inputs)}
    for layer, args, outputs in _nodes(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        xs = [tensors[t.name] for t in _tensor_args(args)]
        ctx.layer = layer
        ctx.what = f"layer {layer.name!r} ({type(layer).__name__})"
        if isinstance(layer, keras.Model):
            outs = _walk(ctx, layer, xs)
        else:
            out = _layer(ctx, layer, xs)
            outs = [out]
        if len(outs) != len(outputs):
            raise ctx.error(f"has {len(outputs)} outputs; rtl4ml translates single-output layers")
        for t, n in zip(outputs, outs):
            tensors[t.name] = n
    return [tensors[t.name] for t in model.outputs]


def _layer(ctx: _Context, layer, xs: list[str]) -> str:
    cls = type(layer).__name__
    hgq = _is_hgq(layer)
    handler = (HGQ_LAYERS if hgq else KERAS_LAYERS).get(cls)
    if handler is None:
        raise ctx.error(f"the layer type {cls} is not supported; supported: HGQ2 {', '.join(sorted(HGQ_LAYERS))}; "
                        f"Keras {', '.join(sorted(KERAS_LAYERS))}")
    try:
        return handler(ctx, layer, xs, hgq)
    except ConversionError:
        raise
    except (GraphError, FixedPointError) as e:
        raise ctx.error(str(e)) from None


def _first_quantizer(model, tensor) -> object | None:
    """The input quantizer every reader of ``tensor`` applies to it, when they all apply the same
    types (then that quantizer is the input's type), else None."""
    keras = import_keras()
    found = []
    for layer, args, _ in _nodes(_functional(model)):
        ts = _tensor_args(args)
        for j, t in enumerate(ts):
            if t.name != tensor.name:
                continue
            if isinstance(layer, keras.Model) or not _is_hgq(layer):
                return None
            if type(layer).__name__ == "Quantizer":
                found.append(layer)
            elif getattr(layer, "enable_iq", False):
                iq = layer.iq
                found.append(list(iq.quantizers)[j] if hasattr(iq, "quantizers") else iq)
            else:
                return None
    return found or None


def _input_types(ctx: _Context, model, t, name: str, spec) -> FixedTypeArray:
    shape = tuple(int(d) for d in t.shape[1:])
    if spec is not None:
        try:
            return as_type_array(spec if isinstance(spec, FixedTypeArray) else parse_type(spec), shape)
        except FixedPointError as e:
            raise ConversionError(f"input_type for input {name!r}: {e}") from None
    qs = _first_quantizer(model, t)
    if qs:
        types = [quantizer_types(q, shape, f"input {name!r}") for q in qs]
        if all(_same_types(types[0], u) for u in types[1:]):
            ctx.absorbed.update(id(q) for q in qs)
            return types[0]
    raise ConversionError(f"input {name!r}: input_type is required (e.g. input_type='fixed<16,6>'), unless every "
                          "layer reading it is an HGQ2 layer with an input quantizer (the same one)")


def _input_name(t) -> str:
    """The name of the Input layer that makes ``t`` (Keras's tensor names are generated)."""
    history = getattr(t, "_keras_history", None)
    return _sanitize(history[0].name if history else t.name)


def _same_types(a: FixedTypeArray, b: FixedTypeArray) -> bool:
    return (a.rounding, a.overflow) == (b.rounding, b.overflow) and all(
        np.array_equal(x, y) for x, y in ((a.signed, b.signed), (a.integer, b.integer), (a.fraction, b.fraction)))


def from_keras(model_or_path, input_type=None, weight_type=None, bias_type=None, result_type=None,
               activation_type=None, table_input_type=None) -> Graph:
    """A Keras 3 model (HGQ2 or plain layers) or ``.keras`` file as a Graph (see the module docstring)."""
    source = None
    if isinstance(model_or_path, (str, Path)):
        source = Path(model_or_path)
        model = load_keras(source)
    else:
        model = model_or_path
    keras = import_keras()
    if not isinstance(model, keras.Model):
        raise ConversionError(f"expected a keras.Model or a .keras file, got {type(model).__name__}")
    options = dict(weight_type=weight_type, bias_type=bias_type, result_type=result_type,
                   activation_type=activation_type, table_input_type=table_input_type)
    try:
        return _convert(model, input_type, options)
    except ConversionError as e:
        raise ConversionError(f"{source}: {e}" if source else str(e)) from None


def _convert(model, input_type, options: dict) -> Graph:
    if not model.built or not getattr(_functional(model), "inputs", None):
        raise ConversionError(f"model {model.name!r} has no known inputs (a subclassed or unbuilt model); rtl4ml "
                              "converts Sequential and functional models with an Input shape")
    fm = _functional(model)
    ctx = _Context(options)
    names = [_input_name(t) for t in fm.inputs]
    if isinstance(input_type, dict):
        unknown = sorted(set(input_type) - set(names))
        if unknown:
            raise ConversionError(f"input_type names inputs the model does not have: {unknown} (its inputs: {names})")
    nodes = []
    for t, name in zip(fm.inputs, names):
        if any(d is None for d in t.shape[1:]):
            raise ConversionError(f"input {name!r} has a dynamic shape {tuple(t.shape)}; give the Input a fixed "
                                  "sample shape")
        spec = input_type.get(name) if isinstance(input_type, dict) else input_type
        nodes.append(ctx.builder.input(_input_types(ctx, model, t, name, spec), name=name))
    outs = _walk(ctx, model, nodes)
    ctx.what = ""
    refuse_unused_entries(options, ctx.used, TYPE_OPTIONS, "layers")
    if len(set(outs)) != len(outs):
        raise ConversionError("two outputs of the model are the same tensor")
    return run_passes(ctx.builder.build(outs))


__all__ = ["HGQ_LAYERS", "KERAS_LAYERS", "from_keras", "import_keras", "load_keras", "quantizer_types"]
