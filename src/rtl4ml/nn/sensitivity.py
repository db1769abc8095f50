"""Sensitivity-guided initial bit widths: the Fisher information of a trained float model.

Rounding a weight to ``f`` fractional bits adds noise of variance ``4**-f / 12``; to second
order the loss grows by that noise times the weight's Fisher information ``F`` (the mean
squared gradient, the empirical Fisher diagonal), which is FIT's sensitivity measure
(Zandonati et al., 2022). Spending a fixed total of bits so that ``sum F_i 4**-f_i`` is
smallest gives ``f_i = c + log2(F_i) / 2``: half a bit more for every doubling of the
sensitivity. :func:`sensitivity_init` starts a QAT model from its float twin's weights with
those widths (per weight, per channel or per layer, by each quantizer's granularity) and the
same rule for the activations, the mean kept at the widths the model was built with (one budget
for all weights, one for all activations, shared across layers as in FIT), so QAT
starts where the float model is least hurt instead of at one width everywhere.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .layers import QActivation, QInput, QLinear
from .quantizer import QuantizerError
from .utils import copy_float_weights


def fisher_diagonal(model: nn.Module, x, y, *, batch_size: int = 512, batches: int = 64,
                    seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Empirical Fisher diagonals of a float classifier: (per ``nn.Linear`` weight, per ReLU output).

    Mean squared mini-batch gradient of the cross entropy, over ``batches`` random batches; the
    activation entries are per feature (the mean over the batch of the squared gradient of the
    summed loss at each ReLU output). The input's entry comes first in the activation list.
    """
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y), dtype=torch.long)
    linears = [m for m in model.modules() if type(m) is nn.Linear]
    relus = [m for m in model.modules() if type(m) is nn.ReLU]
    if not linears:
        raise QuantizerError("fisher_diagonal: the float model has no nn.Linear layer")
    acts: list[torch.Tensor] = []

    def keep(_module, _inputs, out: torch.Tensor) -> None:
        out.retain_grad()
        acts.append(out)

    hooks = [m.register_forward_hook(keep) for m in relus]
    fw = [torch.zeros_like(m.weight) for m in linears]
    fa: list[torch.Tensor] | None = None
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        for _ in range(batches):
            idx = torch.randint(len(xt), (min(batch_size, len(xt)),), generator=gen)
            xb = xt[idx].clone().requires_grad_(True)
            acts.clear()
            model.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yt[idx])
            loss.backward()
            for k, m in enumerate(linears):
                fw[k] += m.weight.grad.detach() ** 2 / batches
            # per-sample gradients of the summed loss at the input and at each ReLU output
            scale = len(idx)
            per_feature = [(xb.grad * scale).pow(2).mean(0)] + [(a.grad * scale).pow(2).mean(0) for a in acts]
            fa = [p / batches for p in per_feature] if fa is None else [s + p / batches for s, p in zip(fa, per_feature)]
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return fw, fa or []


def _group_logs(fisher: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``log2(F) / 2`` per group of a quantizer whose bits have ``shape`` (broadcastable to F):
    a channel's or a layer's mean Fisher per element."""
    f = fisher.to(torch.float64)
    if f.dim() == len(shape):
        for axis, n in enumerate(shape):
            if n == 1 and f.shape[axis] != 1:
                f = f.mean(axis, keepdim=True)
    f = f.reshape(shape)
    return 0.5 * torch.log2(f.clamp_min(1e-30))


def allocate_bits(fishers: list[torch.Tensor], shapes: list[torch.Size], mean_f: float,
                  spread: float) -> list[torch.Tensor]:
    """Fractional bits ``c + log2(F) / 2`` for each quantizer (of bit tensor ``shapes``), one ``c``
    for all, clipped to ``mean_f +- spread``, ``c`` such that the clipped widths average ``mean_f``
    over every group: layers compete for one budget, as in FIT."""
    logs = [_group_logs(f, s) for f, s in zip(fishers, shapes)]
    flat = torch.cat([g.flatten() for g in logs])
    floor = float(torch.quantile(flat, 0.01)) if flat.numel() > 1 else float(flat.min())
    logs = [g.clamp_min(floor) for g in logs]   # dead weights (F = 0) count as the least sensitive
    flat = flat.clamp_min(floor)
    lo, hi = mean_f - float(flat.max()) - spread, mean_f - float(flat.min()) + spread
    for _ in range(60):                         # bisection on c
        c = 0.5 * (lo + hi)
        if float((flat + c).clamp(mean_f - spread, mean_f + spread).mean()) < mean_f:
            lo = c
        else:
            hi = c
    c = 0.5 * (lo + hi)
    return [(g + c).clamp(mean_f - spread, mean_f + spread).to(torch.float32) for g in logs]


def sensitivity_init(qat_model: nn.Module, float_model: nn.Module, x, y, *, spread: float = 3.0,
                     activations: bool = True, batch_size: int = 512, batches: int = 64,
                     seed: int = 0) -> dict[str, float]:
    """Copy ``float_model``'s weights into ``qat_model`` and set its initial bits by sensitivity.

    Layers pair by kind in order (as :func:`~rtl4ml.nn.copy_float_weights`); activation
    quantizers pair with the float model's input and its ``nn.ReLU`` outputs in order
    (``activations=False`` leaves them as built); a quantizer with other than one width per
    feature or per layer is left as built. Call after :func:`~rtl4ml.nn.init_lazy`. Returns
    the mean initial fractional bits of each layer's weights, for logs.
    """
    copy_float_weights(qat_model, float_model)
    fw, fa = fisher_diagonal(float_model, x, y, batch_size=batch_size, batches=batches, seed=seed)
    qlinears = [m for m in qat_model.modules() if isinstance(m, QLinear)]
    with torch.no_grad():
        wq = [m.weight_quantizer for m in qlinears]
        for q, f in zip(wq, allocate_bits(fw, [q.f.shape for q in wq], float(torch.cat([q.f.flatten() for q in wq])
                                                                              .mean()), spread)):
            q.f.copy_(f)
        summary = {f"linear{k}": float(q.f.mean()) for k, q in enumerate(wq)}
        if activations:
            quants = [m.quantizer for m in qat_model.modules() if isinstance(m, QInput)] + \
                     [m.quantizer for m in qat_model.modules() if isinstance(m, QActivation) and not isinstance(m, QInput)]
            pairs = [(q, f) for q, f in zip(quants, fa) if q.f.dim() == 1 and q.f.shape[0] in (1, f.shape[-1])]
            if pairs:
                mean = float(torch.cat([q.f.flatten() for q, _ in pairs]).mean())
                new = allocate_bits([f.reshape(-1) for _, f in pairs], [q.f.shape for q, _ in pairs], mean, spread)
                for (q, _), f in zip(pairs, new):
                    q.f.copy_(f)
    return summary
