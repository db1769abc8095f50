"""PyTorch frontend: an ``nn.Sequential`` to a Graph.

Layers are converted by handlers registered per module class in :data:`LAYER_HANDLERS`,
so QAT modules (``rtl4ml.nn``) and future layers plug in without touching this walk.
Plain ``nn.Linear`` layers use post-training quantization: weights and biases are rounded
to the given types; ``result_type`` is applied to every Linear's output. A ``BatchNorm1d``
right after an ``nn.Linear`` is folded into it (running statistics) before the rounding.
Quantization-aware layers (:mod:`rtl4ml.nn`) register their own handlers and carry their
own types, so such a model converts with no type arguments.

Model files are loaded with ``torch.load(weights_only=True)`` and an allow-list of exactly
the layer classes rtl4ml converts, so a file that holds anything else (arbitrary pickled
objects, code) is refused instead of executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..fixed import FixedPointError, FixedTypeArray, as_type_array, parse_type, quantize
from ..graph import Graph, GraphBuilder, GraphError

try:  # torch is an optional extra
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - exercised only without the extra
    torch = None
    nn = None


class ConversionError(GraphError):
    """A model that rtl4ml cannot convert; the message names the layer."""


@dataclass
class ConvertContext:
    """State threaded through the layer handlers of one conversion."""

    builder: GraphBuilder
    options: dict
    tensor: str | None = None      # name of the current graph tensor
    size: int | None = None        # its number of elements
    linear_names: list[str] = field(default_factory=list)
    model: "nn.Module | None" = None   # the whole model being converted
    cache: dict = field(default_factory=dict)   # per-conversion memo for handlers
    #: type options (``weight_type``, ...) that some layer looked up with :meth:`type_for`.
    used_options: set[str] = field(default_factory=set)
    #: ``check(graph)`` callables run on the finished graph (e.g. exactness checks).
    checks: list[Callable[[Graph], None]] = field(default_factory=list)

    def type_for(self, option: str, layer: str, required: bool = True):
        """Resolve a type option that is a string or a ``{layer name: string}`` dict."""
        self.used_options.add(option)
        spec = self.options.get(option)
        if isinstance(spec, dict):
            if layer not in spec:
                if not required:
                    return None
                raise ConversionError(f"{option} has no entry for layer {layer!r} (its keys: {sorted(spec)})")
            spec = spec[layer]
        if spec is None:
            if required:
                raise ConversionError(f"layer {layer!r} needs {option}, e.g. {option}='fixed<8,3,RND,SAT>'")
            return None
        try:
            return parse_type(spec)
        except FixedPointError as e:
            raise ConversionError(f"{option} for layer {layer!r}: {e}") from None


Handler = Callable[[ConvertContext, str, "nn.Module"], None]

#: ``module class -> handler(ctx, layer_name, module)``; a handler appends graph nodes.
LAYER_HANDLERS: dict[type, Handler] = {}


#: Sub-module classes (not layers themselves) that a saved model may contain, e.g. quantizers.
SAFE_CLASSES: set[type] = set()


def register_layer(cls: type) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        LAYER_HANDLERS[cls] = fn
        return fn
    return deco


def register_safe_class(cls: type) -> type:
    """Allow ``cls`` (a sub-module of a convertible layer) when loading model files."""
    SAFE_CLASSES.add(cls)
    return cls


def _load_plugins() -> None:
    """Import the packages that register layer handlers (rtl4ml.nn), once torch is there."""
    from .. import nn as _qat  # noqa: F401  (registers QInput, QLinear, QReLU, ...)


def _require_torch() -> None:
    if torch is None:
        raise ImportError("the PyTorch frontend needs torch: pip install torch==2.13.0 'rtl4ml[torch]'")


def _ensure_input(ctx: ConvertContext, layer: str, size: int) -> None:
    """Create the Input node from ``input_type`` before the first layer that needs one."""
    if ctx.tensor is not None:
        if ctx.size != size:
            raise ConversionError(f"layer {layer!r} expects {size} inputs but receives {ctx.size}")
        return
    spec = ctx.options.get("input_type")
    if spec is None:
        raise ConversionError("input_type is required for this model, e.g. input_type='fixed<16,6>'")
    try:
        types = spec if isinstance(spec, FixedTypeArray) else as_type_array(parse_type(spec), (size,))
    except FixedPointError as e:
        raise ConversionError(f"input_type: {e}") from None
    ctx.tensor, ctx.size = ctx.builder.input(types, name="x"), size


def check_finite(values: np.ndarray, layer: str, what: str) -> None:
    """Refuse NaN/inf parameters with the layer, the array and the index in the message."""
    if not np.all(np.isfinite(values)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ConversionError(f"layer {layer!r}: {what} has a non-finite value {float(values[idx])} at index {idx}")


def _quantized(values: np.ndarray, t, layer: str, what: str) -> np.ndarray:
    check_finite(values, layer, what)
    return quantize(values, t)


def _tensor(p) -> np.ndarray:
    return p.detach().cpu().to(torch.float64).numpy()


def _linear(ctx: ConvertContext, name: str, m) -> None:
    _ensure_input(ctx, name, m.in_features)
    wt = ctx.type_for("weight_type", name)
    bt = ctx.type_for("bias_type", name, required=False) or wt
    w = _quantized(_tensor(m.weight).T, wt, name, "weight")
    b = _quantized(_tensor(m.bias), bt, name, "bias") if m.bias is not None else np.zeros(m.out_features)
    ctx.linear_names.append(name)
    ctx.tensor, ctx.size = ctx.builder.dense(ctx.tensor, w, b, name=name), m.out_features
    rt = ctx.type_for("result_type", name, required=False)
    if rt is not None:
        ctx.tensor = ctx.builder.quantize(ctx.tensor, rt, ctx.size, name=f"{name}_result")


def _relu(ctx: ConvertContext, name: str, m) -> None:
    if ctx.tensor is None:
        raise ConversionError(f"layer {name!r} (ReLU) comes before any layer that fixes the input size")
    ctx.tensor = ctx.builder.relu(ctx.tensor, name=name)


def _passthrough(ctx: ConvertContext, name: str, m) -> None:
    """Layers that are the identity at inference on 1-D inputs (Identity, Dropout, Flatten)."""


if torch is not None:
    register_layer(nn.Linear)(_linear)
    register_layer(nn.ReLU)(_relu)
    for _cls in (nn.Identity, nn.Dropout, nn.Flatten):
        register_layer(_cls)(_passthrough)
    register_safe_class(nn.BatchNorm1d)  # folded into the Linear before it (see _fold_batchnorms)


def fold_batchnorm_params(weight, bias, bn, mean, var):
    """Weight (out, in) and bias (out,) of ``bn(x @ weight.T + bias)`` with the BatchNorm
    ``bn`` normalizing by ``mean`` and ``var``; ``bias`` may be ``None``.

    The one place that folds a BatchNorm (the frontend, with running statistics, and
    ``rtl4ml.nn.QLinear``, with batch statistics while training): it computes in
    ``weight``'s dtype and does not detach, so gradients flow to every input.
    """
    gamma = bn.weight.to(weight.dtype) if bn.affine else torch.ones_like(mean)
    beta = bn.bias.to(weight.dtype) if bn.affine else torch.zeros_like(mean)
    scale = gamma / torch.sqrt(var + bn.eps)
    b0 = bias if bias is not None else torch.zeros_like(mean)
    return weight * scale[:, None], (b0 - mean) * scale + beta


def _fold_into_linear(lin, bn):
    """A float64 ``nn.Linear`` equal to ``bn(lin(x))`` in evaluation mode."""
    f64 = torch.float64
    out = nn.Linear(lin.in_features, lin.out_features, dtype=f64)
    with torch.no_grad():
        w, b = fold_batchnorm_params(lin.weight.to(f64), None if lin.bias is None else lin.bias.to(f64), bn,
                                     bn.running_mean.to(f64), bn.running_var.to(f64))
        out.weight.copy_(w)
        out.bias.copy_(b)
    return out


def _fold_batchnorms(layers: list) -> list:
    """Fold every ``BatchNorm1d`` into the plain ``nn.Linear`` right before it."""
    out: list = []
    for name, m in layers:
        if not isinstance(m, nn.BatchNorm1d):
            out.append((name, m))
            continue
        prev = out[-1] if out else None
        if prev is not None and type(prev[1]).__name__ == "QLinear":
            raise ConversionError(
                f"layer {name!r} (BatchNorm1d) follows QLinear {prev[0]!r}, whose weights were quantized without it; "
                "build that layer as qnn.QLinear(..., batchnorm=True) so the folded weights are quantized in "
                "training (or call rtl4ml.nn.fold_batchnorm(model), then calibrate again)")
        if prev is None or not isinstance(prev[1], nn.Linear):
            raise ConversionError(f"layer {name!r} (BatchNorm1d) must directly follow a Linear layer, into which "
                                  "it is folded")
        if not m.track_running_stats or m.running_mean is None:
            raise ConversionError(f"layer {name!r} (BatchNorm1d) has no running statistics to fold")
        if m.num_features != prev[1].out_features:
            raise ConversionError(f"layer {name!r} (BatchNorm1d) has {m.num_features} features but follows a "
                                  f"layer with {prev[1].out_features} outputs")
        out[-1] = (prev[0], _fold_into_linear(prev[1], m))
    return out


def _leaves(model, prefix: str = ""):
    """Leaf layers of nested Sequentials, with their ``named_modules()`` names."""
    for name, child in model.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, nn.Sequential):
            yield from _leaves(child, full + ".")
        else:
            yield full, child


def _handler(module) -> Handler | None:
    for cls in type(module).__mro__:
        if cls in LAYER_HANDLERS:
            return LAYER_HANDLERS[cls]
    return None


def from_torch(model, **options) -> Graph:
    """Convert an ``nn.Sequential`` (possibly nested) to a Graph.

    ``options``: ``input_type``, ``weight_type``, ``bias_type``, ``result_type`` (each a
    type string or ``{layer name: type string}``), used by layers that need them.
    """
    _require_torch()
    _load_plugins()
    if not isinstance(model, nn.Module):
        raise ConversionError(f"expected a torch.nn.Module, got {type(model).__name__}")
    layers = list(_leaves(model)) if isinstance(model, nn.Sequential) else [("", model)]
    layers = _fold_batchnorms(layers)
    ctx = ConvertContext(GraphBuilder(), options, model=model)
    for opt in ("weight_type", "bias_type", "result_type"):
        spec = options.get(opt)
        if isinstance(spec, dict):
            known = {n for n, _ in layers}
            unknown = sorted(set(spec) - known)
            if unknown:
                raise ConversionError(f"{opt} names layers the model does not have: {unknown} (layers: {sorted(known)})")
    for name, m in layers:
        handler = _handler(m)
        if handler is None:
            supported = sorted({c.__name__ for c in LAYER_HANDLERS})
            raise ConversionError(f"layer {name or '<model>'!r} ({type(m).__name__}) is not supported; "
                                  f"supported layers: {', '.join(supported)}")
        handler(ctx, name, m)
    if ctx.tensor is None:
        raise ConversionError("the model has no layers to convert")
    if ctx.builder.nodes[-1].op.kind == "input":
        raise ConversionError("the model has no computing layer (only pass-through layers)")
    unused = [o for o in ("weight_type", "bias_type", "result_type")
              if options.get(o) is not None and o not in ctx.used_options]
    if unused:
        raise ConversionError(f"{', '.join(unused)} given, but no layer of this model uses it: layers from "
                              "rtl4ml.nn carry their own trained types; remove the argument")
    graph = ctx.builder.build(ctx.tensor)
    for check in ctx.checks:
        check(graph)
    return graph


# --------------------------------------------------------------------------- model files


def load_torch_file(path: str | Path):
    """Load a ``torch.save``-d model without executing arbitrary pickled code.

    Only the module classes rtl4ml converts are allowed to be reconstructed.
    """
    _require_torch()
    _load_plugins()
    path = Path(path)
    allowed = [c for c in LAYER_HANDLERS] + sorted(SAFE_CLASSES, key=lambda c: c.__name__) + [nn.Sequential]
    try:
        with torch.serialization.safe_globals(allowed):
            obj = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - turn the unpickler's report into one clear line
        msg = str(e)
        m = re.search(r"Unsupported global: GLOBAL ([\w.]+)", msg)
        what = f"it contains {m.group(1)}, which" if m else "it contains an object that"
        raise ConversionError(
            f"{path}: refused to load: {what} is not one of the layer classes rtl4ml converts "
            f"({', '.join(sorted(c.__name__ for c in allowed))}). rtl4ml never unpickles arbitrary objects."
        ) from None
    if isinstance(obj, dict):
        raise ConversionError(f"{path} holds a state_dict (weights only, no architecture); "
                              "save the module itself with torch.save(model, path)")
    if not isinstance(obj, nn.Module):
        raise ConversionError(f"{path} does not hold a torch.nn.Module (found {type(obj).__name__})")
    return obj
