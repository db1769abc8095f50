"""One training loop for float and QAT models: Adam, cosine learning rate, the EBOPs term.

The demo, the examples and the benchmarks all train the same way, so they call this rather
than each keeping a loop: a float model and its QAT counterpart trained by :func:`fit` with
the same ``epochs`` and ``seed`` are compared on equal terms.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from .. import progress
from .calibrate import init_lazy
from .distill import distillation_loss
from .pruning import neuron_penalty
from .resources import BetaScheduler, bit_parameters, ebops

#: ``loss(output, target) -> scalar``; "score" trains a model whose output is its own loss
#: per sample (an autoencoder returning its reconstruction error).
LOSSES: dict[str, Callable] = {
    "cross_entropy": lambda out, y: nn.functional.cross_entropy(out, y),
    "mse": lambda out, y: nn.functional.mse_loss(out, y),
    "score": lambda out, y: out.mean(),
}


def _is_qat(model: nn.Module) -> bool:
    return bool(bit_parameters(model))


def fit(model: nn.Module, x, target=None, *, loss: str | Callable = "cross_entropy", epochs: int = 20,
        batch_size: int = 256, lr: float = 3e-3, bits_lr: float = 2e-2, beta: float = 0.0, warmup: int = 2,
        teacher: nn.Module | None = None, distill: float = 0.5, temperature: float = 2.0,
        group_lasso: float = 0.0, layer_beta: Mapping[str, float] | None = None, seed: int = 0, label: str = "training") -> nn.Module:
    """Train ``model`` on ``x`` (and ``target``, unless ``loss="score"``) and return it in eval mode.

    A model with rtl4ml.nn layers also learns its bit widths (their own learning rate
    ``bits_lr``) and pays ``beta * EBOPs``, ramped up after ``warmup`` epochs
    (:class:`BetaScheduler`). Progress shows loss, accuracy for classifiers and EBOPs.
    Calibrate a QAT model afterwards (:func:`rtl4ml.nn.calibrate`).

    ``teacher`` (a trained classifier, e.g. the float model): the cross entropy becomes
    :func:`~rtl4ml.nn.distillation_loss` with weight ``distill`` on the teacher's outputs at
    ``temperature``. ``group_lasso`` adds that times :func:`~rtl4ml.nn.neuron_penalty`
    (structured pruning of hidden neurons). ``layer_beta`` weighs the EBOPs of named layers
    (see :func:`~rtl4ml.nn.ebops`).
    """
    loss_fn = LOSSES[loss] if isinstance(loss, str) else loss
    torch.manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    yt = None if target is None else torch.as_tensor(np.asarray(target))
    if yt is not None and yt.dtype.is_floating_point:
        yt = yt.to(torch.float32)
    qat = _is_qat(model) or any(isinstance(p, nn.parameter.UninitializedParameter) for p in model.parameters())
    if qat:
        init_lazy(model, xt[:8])
        bits = bit_parameters(model)
        rest = [p for p in model.parameters() if all(p is not b for b in bits)]
        opt = torch.optim.Adam([{"params": rest}, {"params": bits, "lr": bits_lr}], lr=lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    beta_at = BetaScheduler(beta, warmup=warmup, ramp=max(1, epochs // 3))
    gen = torch.Generator().manual_seed(seed)
    classify = loss == "cross_entropy"
    if teacher is not None:
        if not classify:
            raise ValueError("fit: a teacher needs loss='cross_entropy' (distillation of a classifier)")
        teacher.eval()
    with progress.task(label, total=epochs) as bar:
        for epoch in range(epochs):
            model.train()
            correct, total = 0, 0.0
            for idx in torch.randperm(len(xt), generator=gen).split(batch_size):
                out = model(xt[idx])
                if teacher is not None:
                    with torch.no_grad():
                        soft = teacher(xt[idx]).to(out.dtype)
                    value = distillation_loss(out, soft, yt[idx], alpha=distill, temperature=temperature)
                else:
                    value = loss_fn(out, None if yt is None else yt[idx])
                if group_lasso > 0:
                    value = value + group_lasso * neuron_penalty(model)
                if qat and beta > 0:
                    value = value + beta_at(epoch) * ebops(model, layer_beta=layer_beta)
                opt.zero_grad()
                value.backward()
                opt.step()
                total += float(value.detach()) * len(idx)
                if classify:
                    correct += int((out.argmax(1) == yt[idx]).sum())
            sched.step()
            status = f"loss {total / len(xt):.4f}"
            if classify:
                status += f", accuracy {100 * correct / len(xt):.1f} %"
            if qat:
                status += f", EBOPs {float(ebops(model).detach()):.0f}"
            bar.advance(status=status)
    return model.eval()
