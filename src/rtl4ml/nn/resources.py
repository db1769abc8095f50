"""Differentiable resource terms for the loss: effective bit operations and L1 bit pressure.

EBOPs (effective bit operations) estimate what the shift-and-add hardware of a layer costs:
a constant multiplication ``x_i * w_ij`` costs about ``bits(x_i) * bits(w_ij)`` bit-level
adder cells, and adding the product into the output's sum costs about
``bits(x_i) + bits(w_ij)`` more (the accumulator term). A pruned weight (0 bits) or a
constant-zero activation (0 bits) costs nothing, exactly as in the generated hardware. Bit
counts come from the quantizers with a gradient of 1 per fractional bit, so
``loss = task_loss + beta * ebops(model)`` trades accuracy against hardware during training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Mapping

import torch
from torch import nn

from ..torch_common import export_class
from .attention import QEinsum, QSelfAttention
from .conv import _QAvgPool, _QConv, _QMaxPool
from .layers import QLinear
from .tables import QSoftmax, QTable
from .quantizer import ActivationQuantizer, QuantizerError, WeightQuantizer

_PASSTHROUGH = (nn.Identity, nn.Dropout, nn.Flatten)


def ordered_layers(model: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """Leaf layers in forward order (registration order; nested Sequentials flattened).

    Exportable layers (rtl4ml.nn's, by the export protocol) are leaves even though they own
    quantizer sub-modules. For models with their own ``forward``, registration order is the
    forward order only if the model registers its layers in the order it calls them.
    """
    if export_class(type(model)) is not None or isinstance(model, QSelfAttention) or not list(model.children()):
        yield prefix.rstrip("."), model
        return
    for name, child in model.named_children():
        yield from ordered_layers(child, f"{prefix}{name}.")


@dataclass
class LayerCost:
    """Resource figures of one QLinear layer (floats, for reports)."""

    name: str
    ebops: float              # sum of input bits x weight bits
    accumulator: float        # sum over live weights of (input bits + weight bits)
    live_weights: int
    weights: int
    mean_weight_bits: float   # over live weights
    live_inputs: int
    inputs: int


def _layer_terms(model: nn.Module):
    """Yield (name, QLinear, QConv, QTable or QSoftmax, input bits or None) in forward order.

    The bits of a layer's input come from the quantizer before it (a QActivation, a table's
    output quantizer); pooling passes the largest bits of each window on, flattening keeps
    them; any other layer in between makes them unknown. A QLinear right after another one
    that read known bits reads the same tensor (the projections of one input).
    """
    bits_in = sibling = None
    for name, m in ordered_layers(model):
        q = getattr(m, "quantizer", None)
        if isinstance(m, QLinear) and bits_in is None and sibling is not None and \
                sibling.numel() % m.in_features == 0 and sibling.shape[-1] == m.in_features:
            bits_in = sibling     # a second layer reading the same tensor (projections of one input)
        if isinstance(m, QSelfAttention):
            for term in m.layer_terms(name, bits_in):
                yield term
            bits_in = None
        elif isinstance(m, QEinsum):
            yield name, m, None
            bits_in = None
        elif isinstance(m, (QTable, QSoftmax)):
            yield name, m, bits_in
            bits_in = q.bits().reshape(q.shape)
        elif isinstance(q, ActivationQuantizer):
            bits_in, sibling = q.bits().reshape(q.shape), None
        elif isinstance(m, (QLinear, _QConv)):
            yield name, m, bits_in
            bits_in, sibling = None, bits_in
        elif getattr(m, "emits_bits", False):               # a LUT network's encoder or LUT layer
            bits_in, sibling = torch.ones(m.out_bits), None
        elif isinstance(m, (_QMaxPool, _QAvgPool)) and bits_in is not None:
            fn = torch.nn.functional.max_pool1d if m.ndim == 1 else torch.nn.functional.max_pool2d
            bits_in = fn(bits_in[None], m.kernel_size, m.stride, m.padding)[0]
        elif isinstance(m, nn.Flatten) and bits_in is not None:
            bits_in = bits_in.reshape(-1)
        elif isinstance(m, (nn.ReLU,) + _PASSTHROUGH):
            continue
        else:
            bits_in = None


def ebops(model: nn.Module, accumulator: bool = True, layer_beta: Mapping[str, float] | None = None) -> torch.Tensor:
    """Differentiable effective bit operations of every QLinear and QConv in ``model``.

    ``sum_ij bits(x_i) * bits(w_ij)``, plus with ``accumulator=True`` the accumulator term
    ``sum over live w_ij of (bits(x_i) + bits(w_ij))``; a convolution counts every output
    position (the hardware is fully parallel). Input bits come from the quantizer in
    front of each layer (:class:`QInput`, :class:`QReLU`, ...), as of the last forward pass
    (training) or the calibration (evaluation). ``accumulator=False`` is the EBOPs figure of
    HGQ.

    ``layer_beta`` weighs the term of the named layers (names of :func:`ordered_layers`; the
    others weigh 1): the per-layer resource coefficient of HGQ2's ``beta0``, so that a
    sensitive layer (the classifier head) pays less per bit than a wide hidden one.
    """
    scale = _layer_scales(layer_beta)
    total, seen = None, []
    for name, layer, bits_in in _layer_terms(model):
        seen.append(name)
        if bits_in is None and not isinstance(layer, (QSoftmax, QEinsum)):
            raise QuantizerError(f"layer {name!r} has no quantizer in front of it (qnn.QInput, qnn.QReLU or "
                                 "qnn.QActivation), so its input bits are unknown")
        if isinstance(layer, QEinsum):
            term = layer.ebops()
        elif isinstance(layer, (QTable, QSoftmax)):
            term = table_cost(layer, bits_in)
        elif isinstance(layer, _QConv):
            term = layer.ebops(bits_in, accumulator)
        else:
            bw = layer.weight_bits()
            if bits_in.numel() % layer.in_features or bits_in.shape[-1] != layer.in_features:
                raise QuantizerError(f"layer {name!r} (QLinear({layer.in_features}, ...)) follows a quantizer of "
                                     f"shape {tuple(bits_in.shape)}, so its input bits are unknown; put a "
                                     "qnn.QActivation right before it")
            rows = bits_in.reshape(-1, layer.in_features).to(bw.dtype)   # one row per particle / position
            term = (bw[None] * rows[:, None, :]).sum()
            if accumulator:
                live = (bw.detach() > 0).to(bw.dtype)
                term = term + (live[None] * (bw[None] + rows[:, None, :])).sum()
        if name in scale:
            term = term * scale[name]
        total = term if total is None else total + term
    if total is None:
        raise QuantizerError("the model has no QLinear or QConv layer to count EBOPs for")
    unknown = sorted(set(scale) - set(seen))
    if unknown:   # a typo would otherwise weigh nothing, silently
        raise QuantizerError(f"layer_beta names {unknown}, which are not costed layers of the model; "
                             f"its layers with an EBOPs term are {seen}")
    return total


def _layer_scales(layer_beta: Mapping[str, float] | None) -> dict[str, float]:
    if not layer_beta:
        return {}
    bad = {k: v for k, v in layer_beta.items() if not (math.isfinite(float(v)) and float(v) >= 0)}
    if bad:
        raise QuantizerError(f"layer_beta weights must be finite and >= 0, got {bad}")
    return {k: float(v) for k, v in layer_beta.items()}


def table_cost(layer, bits_in: torch.Tensor | None) -> torch.Tensor:
    """What a table layer adds to EBOPs, in LUT6 (about one EBOP each): a table of ``a``
    address bits and ``b`` output bits is ``b * 2**max(a - 6, 0)`` LUTs per element; a
    softmax's own tables are fixed, its learnable part is the product ``e * r`` rounded to
    the output type (about exp bits x output bits)."""
    out = layer.quantizer.bits()
    if isinstance(layer, QSoftmax):
        n = layer.quantizer.shape[layer.dim - 1 if layer.dim > 0 else layer.dim]   # shape excludes the batch
        return (out * layer.internal_types(n)["exp_type"].width).sum()
    addr = bits_in.reshape(-1).to(out.dtype)
    return (out * torch.exp2(torch.relu(addr - 6))).sum()


def bit_penalty(model: nn.Module) -> torch.Tensor:
    """L1 pressure on bit counts: the total bits of every quantized weight, bias and activation."""
    total = None
    for m in model.modules():
        if isinstance(m, QLinear):
            t = m.weight_bits().sum() + m.bias_bits().sum()
        elif isinstance(m, ActivationQuantizer):
            t = m.bits().sum()
        else:
            continue
        total = t if total is None else total + t
    if total is None:
        raise QuantizerError("the model has no rtl4ml.nn layers")
    return total


def layer_costs(model: nn.Module) -> list[LayerCost]:
    """Per-layer (QLinear, QConv) resource figures (after a forward pass or calibration), for reports."""
    out = []
    with torch.no_grad():
        for name, layer, bits_in in _layer_terms(model):
            if isinstance(layer, (QTable, QSoftmax, QEinsum)):
                continue
            bw = layer.weight_bits().double()
            live = bw > 0
            if isinstance(layer, _QConv):
                n_in = layer.in_channels
                bi = bits_in.double() if bits_in is not None else None
                e = float(layer.ebops(bi, accumulator=False)) if bi is not None else 0.0
                acc = float(layer.ebops(bi)) - e if bi is not None else 0.0
            else:
                n_in = layer.in_features
                bi = bits_in.reshape(-1).double() if bits_in is not None else torch.zeros(n_in, dtype=torch.float64)
                rows = bi.reshape(-1, n_in)
                e = float((bw[None] * rows[:, None, :]).sum())
                acc = float((live[None] * (bw[None] + rows[:, None, :])).sum())
            out.append(LayerCost(
                name=name, ebops=e, accumulator=acc, live_weights=int(live.sum()), weights=bw.numel(),
                mean_weight_bits=float(bw[live].mean()) if live.any() else 0.0,
                live_inputs=int((bi > 0).sum()) if bi is not None else 0,
                inputs=bi.numel() if bi is not None else n_in))
    return out


class BetaScheduler:
    """The EBOPs coefficient per epoch: 0 during warm-up, then a ramp to ``beta``, then constant.

    ``mode="log"`` ramps geometrically from ``beta * start_fraction`` (the usual choice: the
    resource term spans orders of magnitude), ``"linear"`` linearly from 0.

        sched = BetaScheduler(3e-6, warmup=5, ramp=20)
        for epoch in range(epochs):
            beta = sched(epoch)
    """

    def __init__(self, beta: float, warmup: int = 0, ramp: int = 0, mode: str = "log",
                 start_fraction: float = 1e-2) -> None:
        if beta < 0:
            raise ValueError(f"beta must be >= 0, got {beta}")
        if mode not in ("log", "linear"):
            raise ValueError(f"mode must be 'log' or 'linear', got {mode!r}")
        if not 0 < start_fraction <= 1:
            raise ValueError(f"start_fraction must be in (0, 1], got {start_fraction}")
        self.beta, self.warmup, self.ramp, self.mode = float(beta), int(warmup), int(ramp), mode
        self.start_fraction = float(start_fraction)

    def __call__(self, epoch: float) -> float:
        if epoch < self.warmup:
            return 0.0
        if self.ramp <= 0 or epoch >= self.warmup + self.ramp:
            return self.beta
        t = (epoch - self.warmup) / self.ramp
        if self.mode == "linear":
            return self.beta * t
        return self.beta * math.exp(math.log(self.start_fraction) * (1 - t))


def bit_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The learnable bit counts (``f``, and ``i`` of SAT quantizers) of every rtl4ml.nn quantizer.

    Useful for an optimizer parameter group with its own learning rate: with Adam a bit
    count moves about one learning rate per step, so short trainings may want a larger one.
    """
    out = []
    for m in model.modules():
        if isinstance(m, (ActivationQuantizer, WeightQuantizer)):
            out.append(m.f)
            if getattr(m, "i", None) is not None:
                out.append(m.i)
    return out
