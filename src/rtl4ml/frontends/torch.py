"""PyTorch frontend: an ``nn.Sequential`` to a Graph.

Layers are converted by handlers registered per module class in :data:`LAYER_HANDLERS`,
so QAT modules (``rtl4ml.nn``) and future layers plug in without touching this walk.
Plain ``nn.Linear`` layers use post-training quantization: weights and biases are rounded
to the given types; ``result_type`` is applied to every Linear's output.

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

    def type_for(self, option: str, layer: str, required: bool = True):
        """Resolve a type option that is a string or a ``{layer name: string}`` dict."""
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


def register_layer(cls: type) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        LAYER_HANDLERS[cls] = fn
        return fn
    return deco


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


def _quantized(values: np.ndarray, t, layer: str, what: str) -> np.ndarray:
    if not np.all(np.isfinite(values)):
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
        raise ConversionError(f"layer {layer!r}: {what} has a non-finite value {values[idx]!r} at index {idx}")
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
    if not isinstance(model, nn.Module):
        raise ConversionError(f"expected a torch.nn.Module, got {type(model).__name__}")
    layers = list(_leaves(model)) if isinstance(model, nn.Sequential) else [("", model)]
    ctx = ConvertContext(GraphBuilder(), options)
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
    return ctx.builder.build(ctx.tensor)


# --------------------------------------------------------------------------- model files


def load_torch_file(path: str | Path):
    """Load a ``torch.save``-d model without executing arbitrary pickled code.

    Only the module classes rtl4ml converts are allowed to be reconstructed.
    """
    _require_torch()
    path = Path(path)
    allowed = [c for c in LAYER_HANDLERS] + [nn.Sequential]
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
