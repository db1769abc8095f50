"""Export of rtl4ml.nn layers: the ``rtl4ml_export`` protocol of :mod:`rtl4ml.torch_common`.

The layers' ``rtl4ml_export`` methods call these functions, so ``rtl4ml.convert(model)``
needs no type arguments: the input types come from :class:`~rtl4ml.nn.QInput`, the weights
are the quantized (BatchNorm-folded) values, the activation types come from the calibrated
quantizers. Every Dense layer's sums are checked on the finished graph to fit 53 bits, the
condition for the model's float64 forward pass to be exact and hence equal to the design bit
for bit. This module knows the Graph and the export context, never the torch frontend.
"""

from __future__ import annotations

import numpy as np
import torch

from ..graph import Graph
from ..graph.composite import softmax
from ..graph.ops import Affine, Dense, GraphError
from ..torch_common import ConversionError, ExportContext, check_finite
from .calibrate import check_calibrated, parameter_digest
from .quantizer import QuantizerError

#: float64 represents every integer below 2**53 exactly.
FLOAT64_EXACT_BITS = 53


def _digest(ctx: ExportContext) -> int:
    if "qat_digest" not in ctx.cache:
        ctx.cache["qat_digest"] = parameter_digest(ctx.model)
    return ctx.cache["qat_digest"]


def quantized_params(layer, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """A QLinear's or QConv's exact float64 quantized weight and bias (zeros without one),
    as its evaluation forward pass uses them, whatever mode the layer is in."""
    was = layer.training
    layer.eval()
    try:
        with torch.no_grad():
            wq, bq = layer.quantized()
    finally:
        layer.train(was)
    b = np.zeros(n_out) if bq is None else bq.detach().cpu().numpy().copy()
    return wq.detach().cpu().numpy().copy(), b


def one_input(inputs: list, name: str, layer) -> object:
    """The single tensor an exported layer takes (refused naming the layer otherwise)."""
    if len(inputs) != 1:
        raise ConversionError(f"layer {name!r} ({type(layer).__name__}) takes one tensor, got {len(inputs)} arguments")
    return inputs[0]


def activation_types(ctx: ExportContext, name: str, layer):
    """The calibrated per-element types of a QActivation (or its subclasses)."""
    return _quantizer_types(ctx, name, layer.quantizer)


def export_input(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    """QInput: the quantizer's types become the types of the model input it reads."""
    value = one_input(inputs, name, layer)
    return ctx.define_input(value, activation_types(ctx, name, layer), name)


def export_activation(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    """QActivation / QReLU: an optional ReLU, then a Quantize to the calibrated types."""
    value = one_input(inputs, name, layer)
    types = activation_types(ctx, name, layer)
    cls = type(layer).__name__
    x = ctx.node(value, name, shape=types.shape, advice=f"layer {name!r} ({cls}) comes before any layer that fixes "
                 "the input; start the model with qnn.QInput")
    shape = ctx.builder.shape(x)
    if shape != types.shape:
        raise ConversionError(f"layer {name!r} ({cls}) has {len(types)} elements but receives a tensor of shape "
                              f"{shape}")
    if layer.activation == "relu":
        x = ctx.builder.relu(x, name=f"{name}_relu" if name else "relu")
    return ctx.builder.quantize(x, types, name=name or "quant")


def export_linear(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    """QLinear: a Dense with the exact quantized (BatchNorm-folded) weights and bias."""
    value = one_input(inputs, name, layer)
    entries = ctx.type_entries(name)
    if entries:
        raise ConversionError(f"{entries[0]} for layer {name!r} does not apply: a QLinear's weights and outputs "
                              "are quantized by training; remove the entry")
    n_in = layer.in_features
    x = ctx.node(value, name, features=n_in, advice=f"layer {name!r} (QLinear) has no input quantizer: start the "
                 f"model with qnn.QInput({n_in}) (or pass input_type=...)")
    if not ctx.builder.shape(x) or ctx.builder.shape(x)[-1] != n_in:
        raise ConversionError(f"layer {name!r} (QLinear) takes inputs of shape (N, ..., {n_in}), got (N, "
                              f"{', '.join(map(str, ctx.builder.shape(x)))})")
    try:
        w, b = layer.export_params()
    except QuantizerError as e:
        raise ConversionError(f"layer {name!r} (QLinear): {e}") from None
    check_finite(w, name, "QLinear weight")
    check_finite(b, name, "QLinear bias")
    node = ctx.builder.dense(x, w, b, name=name or "dense")
    ctx.add_check(lambda g: _check_linear(g, node, name))
    return node


def _check_linear(graph: Graph, node: str, layer: str) -> None:
    if node not in graph:
        return
    kind = "QLinear" if isinstance(graph[node].op, Dense) else "QConv1d/QConv2d"
    for n in graph.nodes:
        if isinstance(n.op, Affine) and node in n.inputs:
            raise ConversionError(
                f"layer {n.name!r} (a BatchNorm) follows {kind} {layer!r}, whose weights were quantized without it; "
                f"build that layer as qnn.{kind}(..., batchnorm=True) so the folded weights are quantized in "
                "training (or call rtl4ml.nn.fold_batchnorm(model), then calibrate again)")
    check_float64_exact(graph, node, layer)


def export_conv(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    """QConv1d / QConv2d: a Conv with the exact quantized (BatchNorm-folded) weights and bias."""
    value = one_input(inputs, name, layer)
    cls = type(layer).__name__
    entries = ctx.type_entries(name)
    if entries:
        raise ConversionError(f"{entries[0]} for layer {name!r} does not apply: a {cls}'s weights are quantized by "
                              "training; remove the entry")
    x = ctx.node(value, name, advice=f"layer {name!r} ({cls}) has no input quantizer: start the model with "
                 "qnn.QInput((C, ...)) (or pass input_type= and input_shape=)")
    try:
        w, b = layer.export_params()
    except QuantizerError as e:
        raise ConversionError(f"layer {name!r} ({cls}): {e}") from None
    check_finite(w, name, f"{cls} weight")
    check_finite(b, name, f"{cls} bias")
    try:
        node = ctx.builder.conv(x, w, b, layer.stride, layer.padding, layer.dilation, layer.groups,
                                name=name or "conv")
    except GraphError as e:
        raise ConversionError(f"layer {name!r} ({cls}): {e}") from None
    ctx.add_check(lambda g: _check_linear(g, node, name))
    return node


def export_maxpool(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    x = ctx.node(one_input(inputs, name, layer), name)
    return ctx.builder.pool(x, "max", layer.kernel_size, layer.stride, layer.padding, layer.dilation,
                            name=name or "maxpool")


def export_avgpool(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    """The window sum, then the exact (already quantized) ``1/count``."""
    x = ctx.node(one_input(inputs, name, layer), name)
    s = ctx.builder.pool(x, "sum", layer.kernel_size, layer.stride, layer.padding, name=f"{name or 'avgpool'}_sum")
    return ctx.builder.affine(s, np.array(layer.scale), np.array(0.0), name=name or "avgpool")


def export_table(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    """QTable / QSigmoid / QTanh: a LookupTable whose entries are quantized to the trained types."""
    x = ctx.node(one_input(inputs, name, layer), name)
    types = activation_types(ctx, name, layer)
    if ctx.builder.shape(x) != types.shape:
        raise ConversionError(f"layer {name!r} ({type(layer).__name__}) has types of shape {types.shape} but "
                              f"receives a tensor of shape {ctx.builder.shape(x)}")
    try:
        return ctx.builder.lookup(x, layer.function, types, name=name or layer.function)
    except GraphError as e:
        raise ConversionError(f"layer {name!r} ({type(layer).__name__}): {e}; put a qnn.QActivation with fewer "
                              "bits in front of it") from None


def export_softmax(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    x = ctx.node(one_input(inputs, name, layer), name)
    types = activation_types(ctx, name, layer)
    ax = layer.dim - 1 if layer.dim > 0 else layer.dim     # graph shapes exclude the batch
    try:
        return softmax(ctx.builder, x, ax, name=name or "softmax", out_type=types, **layer.types)
    except GraphError as e:
        raise ConversionError(f"layer {name!r} (QSoftmax): {e}") from None


def _quantizer_types(ctx: ExportContext, name: str, q):
    try:
        check_calibrated(ctx.model, q, name, _digest(ctx) if q.needs_calibration and q.initialized
                         and bool(q.calibrated) else None)
        return q.fixed_types()
    except QuantizerError as e:
        raise ConversionError(str(e)) from None


def export_einsum(layer, ctx: ExportContext, name: str, inputs: list) -> str:
    """QEinsum: each operand quantized to its calibrated types, then an exact Einsum whose
    float64 forward pass is checked to be exact (every partial sum below 2**53)."""
    cls = type(layer).__name__
    if len(inputs) != 2:
        raise ConversionError(f"layer {name!r} ({cls}) takes two tensors, got {len(inputs)} arguments")
    nodes = []
    for k, (value, q) in enumerate(zip(inputs, (layer.quantizer_a, layer.quantizer_b))):
        types = _quantizer_types(ctx, name, q)
        x = ctx.node(value, name, shape=types.shape, advice=f"layer {name!r} ({cls}) comes before any layer that "
                     "fixes the input; start the model with qnn.QInput")
        if ctx.builder.shape(x) != types.shape:
            raise ConversionError(f"layer {name!r} ({cls}): operand {k} has types of shape {types.shape} but the "
                                  f"tensor has shape {ctx.builder.shape(x)}")
        nodes.append(ctx.builder.quantize(x, types, name=f"{name or 'einsum'}_{'ab'[k]}"))
    try:
        node = ctx.builder.einsum(layer.graph_equation, *nodes, name=name or "einsum", dense=False)
    except GraphError as e:
        raise ConversionError(f"layer {name!r} ({cls}): {e}") from None
    ctx.add_check(lambda g: _check_einsum(g, node, name))
    return node


def _check_einsum(graph: Graph, node: str, layer: str) -> None:
    if node not in graph:
        return
    n = graph[node]
    try:
        n.op.emulator([graph.types[i] for i in n.inputs], graph.types[node])
    except Exception as e:   # WidthError: the int64 emulator cannot hold it either
        raise ConversionError(f"layer {layer!r} (QEinsum): {e}") from None
    bits = n.op.sum_bound(*[graph.types[i] for i in n.inputs]).bit_length()
    if bits > FLOAT64_EXACT_BITS:
        raise ConversionError(
            f"layer {layer!r} (QEinsum): its sums need {bits} bits, more than the {FLOAT64_EXACT_BITS} that float64 "
            "holds exactly, so the model's forward pass could differ from the hardware; quantize its operands to "
            "fewer bits")


def sum_bound_bits(graph: Graph, node: str) -> int:
    """Bits of the largest partial sum of a Dense node, in units of its output's LSB.

    Every partial sum of ``x @ W + b`` in any order is bounded by
    ``sum_i |w_ij| * max|x_i| + |b_j|``; aligned to the output fraction this is an integer
    (see :meth:`rtl4ml.graph.ops.Dense.sum_bound`).
    """
    n = graph[node]
    return n.op.sum_bound(graph.types[n.inputs[0]]).bit_length()


def check_float64_exact(graph: Graph, node: str, layer: str) -> None:
    bits = sum_bound_bits(graph, node)
    kind = "QLinear" if isinstance(graph[node].op, Dense) else "QConv"
    if bits > FLOAT64_EXACT_BITS:
        raise ConversionError(
            f"layer {layer!r} ({kind}): its sums need {bits} bits, more than the {FLOAT64_EXACT_BITS} that "
            "float64 holds exactly, so the model's forward pass could differ from the hardware; narrow its "
            "input or weight types (e.g. lower f_bounds) or add a quantizer in front of it")
