"""Model-level helpers: folding a separate BatchNorm into its QLinear, a QAT copy of a float model."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .conv import QConv1d, QConv2d
from .layers import QInput, QLinear, QReLU
from .quantizer import QuantizerError, WeightQuantizer


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
    if not isinstance(model, nn.Sequential):
        raise QuantizerError("from_float converts nn.Sequential models")
    src = list(_sequential_leaves(model))
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


def copy_float_weights(qat_model: nn.Module, float_model: nn.Module) -> nn.Module:
    """Copy the weights and biases of a trained float model into its QAT twin.

    Layers are paired in registration order by kind (``nn.Linear`` with :class:`QLinear`,
    ``nn.Conv1d`` / ``nn.Conv2d`` with :class:`QConv1d` / :class:`QConv2d`), so any model
    written twice, once with torch layers and once with rtl4ml.nn ones, can start its
    quantization-aware training from the float solution. A BatchNorm right after a float
    layer is copied into the QAT layer's own (``batchnorm=True``). Returns ``qat_model``.
    """
    pairs = ((nn.Linear, QLinear), (nn.Conv1d, QConv1d), (nn.Conv2d, QConv2d))
    mods = list(float_model.modules())
    for f_cls, q_cls in pairs:
        src = [m for m in mods if type(m) is f_cls]
        dst = [m for m in qat_model.modules() if type(m) is q_cls]
        if len(src) != len(dst):
            raise QuantizerError(f"the float model has {len(src)} {f_cls.__name__} layers, the QAT model "
                                 f"{len(dst)} {q_cls.__name__}")
        for k, (a, b) in enumerate(zip(src, dst)):
            if a.weight.shape != b.weight.shape or (a.bias is None) != (b.bias is None):
                raise QuantizerError(f"{f_cls.__name__} number {k}: weight {tuple(a.weight.shape)} "
                                     f"(bias {a.bias is not None}) does not match {q_cls.__name__} "
                                     f"{tuple(b.weight.shape)} (bias {b.bias is not None})")
            with torch.no_grad():
                b.weight.copy_(a.weight)
                if a.bias is not None:
                    b.bias.copy_(a.bias)
            nxt = mods[mods.index(a) + 1] if mods.index(a) + 1 < len(mods) else None
            if b.bn is not None and isinstance(nxt, nn.modules.batchnorm._BatchNorm):
                b.bn.load_state_dict(nxt.state_dict())
    return qat_model


def _sequential_leaves(model: nn.Sequential):
    """The layers of nested Sequentials, in order."""
    for child in model.children():
        if isinstance(child, nn.Sequential):
            yield from _sequential_leaves(child)
        else:
            yield child
