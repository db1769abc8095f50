"""Model-level helpers: folding a separate BatchNorm into its QLinear, initializing lazy sizes."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..frontends.torch import _leaves
from .layers import QLinear
from .quantizer import ActivationQuantizer, QuantizerError


def fold_batchnorm(model: nn.Sequential) -> nn.Sequential:
    """A copy of ``model`` where each ``QLinear`` followed by ``BatchNorm1d`` becomes one
    ``QLinear(batchnorm=True)``.

    The fused layer quantizes the *folded* weights, so its evaluation forward pass is what
    the hardware computes. The folded model's quantized weights differ from the unfused
    model's: fine-tune it a little if needed, then calibrate it before converting.
    """
    if not isinstance(model, nn.Sequential):
        raise QuantizerError("fold_batchnorm works on nn.Sequential models")
    out: list[nn.Module] = []
    for child in model:
        child = copy.deepcopy(child)
        if isinstance(child, nn.Sequential):
            child = fold_batchnorm(child)
        if isinstance(child, nn.BatchNorm1d) and out and isinstance(out[-1], QLinear) and out[-1].bn is None:
            lin = out[-1]
            if child.num_features != lin.out_features:
                raise QuantizerError(f"BatchNorm1d({child.num_features}) cannot fold into a QLinear with "
                                     f"{lin.out_features} outputs")
            lin.bn = child
            if lin.bias_quantizer is None:  # the folded bias needs a quantizer
                from .quantizer import WeightQuantizer
                f0 = float(lin.weight_quantizer.f.detach().max())
                lin.bias_quantizer = WeightQuantizer((lin.out_features,), init_f=f0,
                                                     rounding=lin.weight_quantizer.rounding,
                                                     f_bounds=lin.weight_quantizer.f_bounds)
            continue
        out.append(child)
    return nn.Sequential(*out)


def from_float(model: nn.Sequential, *, input: dict | None = None, linear: dict | None = None,
               relu: dict | None = None) -> nn.Sequential:
    """A QAT copy of a float ``nn.Sequential``: a :class:`QInput` in front, every ``nn.Linear``
    a :class:`QLinear` with the same weights (a following ``BatchNorm1d`` fused into it), every
    ``nn.ReLU`` a :class:`QReLU`.

    Starting quantization-aware training from a trained float model converges in fewer
    epochs than starting from scratch. ``input``, ``linear`` and ``relu`` are keyword
    arguments for the new layers (e.g. ``linear={"init_f": 6}``).
    """
    from .layers import QInput, QReLU
    if not isinstance(model, nn.Sequential):
        raise QuantizerError("from_float converts nn.Sequential models")
    src = [m for _, m in _leaves(model)]
    first = next((m for m in src if isinstance(m, nn.Linear)), None)
    if first is None:
        raise QuantizerError("the model has no nn.Linear layer")
    out: list[nn.Module] = [QInput(first.in_features, **(input or {}))]
    width = first.in_features
    for k, m in enumerate(src):
        if isinstance(m, nn.Linear):
            nxt = src[k + 1] if k + 1 < len(src) else None
            bn = nxt if isinstance(nxt, nn.BatchNorm1d) else None
            q = QLinear(m.in_features, m.out_features, bias=m.bias is not None, batchnorm=bn is not None,
                        **(linear or {}))
            with torch.no_grad():
                q.weight.copy_(m.weight)
                if m.bias is not None:
                    q.bias.copy_(m.bias)
            if bn is not None:
                q.bn.load_state_dict(bn.state_dict())
            out.append(q)
            width = m.out_features
        elif isinstance(m, nn.BatchNorm1d):
            if not (k > 0 and isinstance(src[k - 1], nn.Linear)):
                raise QuantizerError(f"layer {k} (BatchNorm1d) must follow a Linear layer to be folded into it")
        elif isinstance(m, nn.ReLU):
            out.append(QReLU(width, **(relu or {})))
        elif isinstance(m, (nn.Identity, nn.Dropout, nn.Flatten)):
            out.append(copy.deepcopy(m))
        else:
            raise QuantizerError(f"layer {k} ({type(m).__name__}) has no rtl4ml.nn counterpart")
    return nn.Sequential(*out).to(first.weight.dtype)


def init_lazy(model: nn.Module, x) -> nn.Module:
    """Create the parameters of quantizers built without a size (``qnn.QReLU()``) with one
    forward pass on a few samples of ``x``, without touching BatchNorm statistics.

    Call it before building the optimizer, so that it sees every parameter.
    """
    lazy = [m for m in model.modules() if isinstance(m, ActivationQuantizer) and not m.initialized]
    if not lazy:
        return model
    xs = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    was = model.training
    model.eval()
    sat = [m for m in model.modules() if isinstance(m, ActivationQuantizer) and m.saturating]
    ready = [bool(m.i_ready) for m in sat]
    try:
        for m in sat:  # a dry run must not fail on (or initialize) a SAT quantizer's integer bits
            m.i_ready.fill_(True)
        with torch.no_grad():
            p = next((t for t in model.parameters() if t.is_floating_point()
                      and not isinstance(t, nn.parameter.UninitializedParameter)), None)
            model(xs[:8].to(p.dtype if p is not None else torch.float32))
    finally:
        for m, r in zip(sat, ready):
            m.i_ready.fill_(r)
        for m in model.modules():
            if isinstance(m, ActivationQuantizer):
                m._last_range = None
        model.train(was)
    return model
