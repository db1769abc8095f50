"""Export of rtl4ml.nn layers through the PyTorch frontend: each layer becomes Graph nodes.

Registered with :func:`rtl4ml.frontends.torch.register_layer`, so ``rtl4ml.convert(model)``
needs no type arguments: the input types come from :class:`QInput`, the weights are the
quantized (BatchNorm-folded) values, the activation types come from the calibrated
quantizers. After the graph is built, every Dense layer's sums are checked to fit 53 bits,
the condition for the model's float64 forward pass to be exact and hence equal to the
design bit for bit.
"""

from __future__ import annotations

from ..frontends.torch import (ConversionError, ConvertContext, _ensure_input, check_finite, register_layer,
                               register_safe_class)
from ..graph import Graph
from .calibrate import check_calibrated, parameter_digest
from .layers import QActivation, QInput, QLinear, QReLU
from .quantizer import ActivationQuantizer, QuantizerError, WeightQuantizer

#: float64 represents every integer below 2**53 exactly.
FLOAT64_EXACT_BITS = 53


def _digest(ctx: ConvertContext) -> int:
    if "qat_digest" not in ctx.cache:
        ctx.cache["qat_digest"] = parameter_digest(ctx.model)
    return ctx.cache["qat_digest"]


def _types(ctx: ConvertContext, name: str, m: QActivation):
    q = m.quantizer
    try:
        check_calibrated(ctx.model, q, name, _digest(ctx) if q.needs_calibration and q.initialized
                         and bool(q.calibrated) else None)
        return q.fixed_types()
    except QuantizerError as e:
        raise ConversionError(str(e)) from None


def _qinput(ctx: ConvertContext, name: str, m: QInput) -> None:
    if ctx.tensor is not None:
        raise ConversionError(f"layer {name!r} (QInput) must be the model's first computing layer")
    if ctx.options.get("input_type") is not None:
        raise ConversionError(f"input_type does not apply: layer {name!r} (QInput) defines the input types; "
                              "remove the input_type argument")
    types = _types(ctx, name, m)
    ctx.tensor, ctx.size = ctx.builder.input(types, name="x"), len(types)


def _qactivation(ctx: ConvertContext, name: str, m: QActivation) -> None:
    if ctx.tensor is None:
        raise ConversionError(f"layer {name!r} ({type(m).__name__}) comes before any layer that fixes the input; "
                              "start the model with qnn.QInput")
    types = _types(ctx, name, m)
    if len(types) != ctx.size:
        raise ConversionError(f"layer {name!r} ({type(m).__name__}) has {len(types)} elements but receives {ctx.size}")
    if m.activation == "relu":
        ctx.tensor = ctx.builder.relu(ctx.tensor, name=f"{name}_relu" if name else "relu")
    ctx.tensor = ctx.builder.quantize(ctx.tensor, types, name=name or "quant")


def _qlinear(ctx: ConvertContext, name: str, m: QLinear) -> None:
    for opt in ("weight_type", "bias_type", "result_type"):
        spec = ctx.options.get(opt)
        if isinstance(spec, dict) and name in spec:
            raise ConversionError(f"{opt} for layer {name!r} does not apply: a QLinear's weights and outputs "
                                  "are quantized by training; remove the entry")
    if ctx.tensor is None and ctx.options.get("input_type") is None:
        raise ConversionError(f"layer {name!r} (QLinear) has no input quantizer: start the model with "
                              f"qnn.QInput({m.in_features}) (or pass input_type=...)")
    _ensure_input(ctx, name, m.in_features)
    try:
        w, b = m.export_params()
    except QuantizerError as e:
        raise ConversionError(f"layer {name!r} (QLinear): {e}") from None
    check_finite(w, name, "QLinear weight")
    check_finite(b, name, "QLinear bias")
    node = ctx.builder.dense(ctx.tensor, w, b, name=name or "dense")
    ctx.tensor, ctx.size = node, m.out_features
    ctx.checks.append(lambda g, node=node, name=name: check_float64_exact(g, node, name))


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
    if bits > FLOAT64_EXACT_BITS:
        raise ConversionError(
            f"layer {layer!r} (QLinear): its sums need {bits} bits, more than the {FLOAT64_EXACT_BITS} that "
            "float64 holds exactly, so the model's forward pass could differ from the hardware; narrow its "
            "input or weight types (e.g. lower f_bounds) or add a quantizer in front of it")


def _register() -> None:
    register_layer(QInput)(_qinput)
    register_layer(QActivation)(_qactivation)
    register_layer(QReLU)(_qactivation)
    register_layer(QLinear)(_qlinear)
    for cls in (ActivationQuantizer, WeightQuantizer):  # nn.BatchNorm1d: registered by the frontend
        register_safe_class(cls)


_register()
