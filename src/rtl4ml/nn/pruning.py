"""Structured pruning: whole hidden neurons, so the next layer loses inputs, not only weights.

Per-weight bit widths already prune single weights (0 bits). A neuron, though, costs its
row of the layer before (its product-sum), its activation quantizer and its column of the
layer after; the hardware saves all of that only when the whole group is zero. The group
lasso below (Yuan & Lin's penalty, ``sqrt(group size) * ||group||_2`` summed over groups)
pulls such groups to zero together, and the weight quantizers then round them to exact
zeros, which the netlist builder removes (a neuron with no live input is a constant; one
with no live output is dead code).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layers import QLinear
from .resources import ordered_layers


def neuron_groups(model: nn.Module) -> list[tuple[str, QLinear, QLinear]]:
    """Consecutive ``(name, producer, consumer)`` QLinear pairs whose hidden neurons form groups.

    Pairs are taken in forward order wherever a QLinear's outputs are the next QLinear's
    inputs (activation layers in between keep one value per neuron); the last layer's
    outputs are the model's and are never pruned.
    """
    layers = [(n, m) for n, m in ordered_layers(model) if isinstance(m, QLinear)]
    return [(na, a, b) for (na, a), (_, b) in zip(layers, layers[1:]) if a.out_features == b.in_features]


def _group_norms(a: QLinear, b: QLinear) -> torch.Tensor:
    sq = a.weight.pow(2).sum(1) + b.weight.pow(2).sum(0)
    if a.bias is not None:
        sq = sq + a.bias.pow(2)
    return torch.sqrt(sq + 1e-12)


def neuron_penalty(model: nn.Module) -> torch.Tensor:
    """Group lasso over hidden neurons: incoming row, bias and outgoing column of each one."""
    total = None
    for _, a, b in neuron_groups(model):
        size = a.in_features + b.out_features + (a.bias is not None)
        term = math.sqrt(size) * _group_norms(a, b).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("neuron_penalty: the model has no pair of consecutive QLinear layers")
    return total


def live_neurons(model: nn.Module) -> dict[str, tuple[int, int]]:
    """Per producer layer: (hidden neurons the hardware keeps, all hidden neurons).

    A neuron is kept when both its quantized incoming row and outgoing column have a non-zero
    weight: with no live input it is the constant ``relu(bias)``, folded into the next
    layer's bias; with no live output nothing reads it.
    """
    out = {}
    with torch.no_grad():
        for name, a, b in neuron_groups(model):
            wa, _ = a.quantized()
            wb, _ = b.quantized()
            live = (wa != 0).any(1) & (wb != 0).any(0)
            out[name] = (int(live.sum()), a.out_features)
    return out
