"""What QLinear and the QConv layers share: learnable-precision weight and bias quantizers and
a BatchNorm folded into the weights *before* they are quantized.

Folding before quantizing is what makes the exported layer exactly the trained one: the
quantizer sees the weights the hardware multiplies by. In training the BatchNorm uses the
batch statistics of the layer's float output (and updates its running ones, as
``nn.BatchNorm`` does); in evaluation and at export its running statistics, in float64.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..torch_common import fold_batchnorm_params
from .quantizer import QuantizerError, WeightQuantizer


class QWeightedLayer(nn.Module):
    """Base of :class:`~rtl4ml.nn.QLinear` and the QConv layers.

    A subclass sets ``self.weight`` (output channels first) and ``self.bias``, calls
    :meth:`reset_parameters` and :meth:`_init_quantizers`, and defines
    :meth:`_float_output` (the layer's float output of ``x``) and ``_channel_axis`` (the
    output axis the BatchNorm normalises).
    """

    _channel_axis: int = 1

    def _init_quantizers(self, n_out: int, has_bias: bool, bn: nn.Module | None, *, granularity: str,
                         init_f: float, bias_init_f: float | None, rounding: str,
                         f_bounds: tuple[float, float]) -> None:
        self.out_channels_ = int(n_out)
        self.weight_quantizer = WeightQuantizer(tuple(self.weight.shape), granularity=granularity, init_f=init_f,
                                                rounding=rounding, f_bounds=f_bounds)
        self.bias_quantizer = WeightQuantizer(
            (self.out_channels_,), granularity="layer" if granularity == "layer" else "element",
            init_f=init_f if bias_init_f is None else bias_init_f, rounding=rounding, f_bounds=f_bounds,
        ) if has_bias else None
        self.bn = bn

    def reset_parameters(self) -> None:
        """As ``nn.Linear`` / ``nn.Conv*d``: Kaiming-uniform weights, uniform bias."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def _float_output(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def folded(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The float weight and bias before quantization (BatchNorm folded in): batch
        statistics of ``x`` in training, running statistics (float64) otherwise."""
        if self.bn is None:
            return self.weight, self.bias
        if not (self.training and x is not None):
            return self._fold_running(torch.float64)
        bn = self.bn
        y = self._float_output(x, self.weight, self.bias)
        axis = self._channel_axis % y.ndim
        if axis == y.ndim - 1:   # rows: samples x particles
            y = y.reshape(-1, self.out_channels_)
            axis = 1
        dims = tuple(d for d in range(y.ndim) if d != axis)
        mean, var = y.mean(dims), y.var(dims, unbiased=False)
        if bn.track_running_stats:
            with torch.no_grad():
                n = y.numel() // self.out_channels_
                m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked + 1)
                bn.running_mean.mul_(1 - m).add_(m * mean.detach().to(bn.running_mean.dtype))
                unbiased = var.detach() * (n / max(n - 1, 1))
                bn.running_var.mul_(1 - m).add_(m * unbiased.to(bn.running_var.dtype))
                bn.num_batches_tracked += 1
        return fold_batchnorm_params(self.weight, self.bias, bn, mean, var)

    def _fold_running(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias with the BatchNorm's running statistics folded in (in ``dtype``)."""
        w, b = self.weight, self.bias
        if dtype is not None:
            w, b = w.to(dtype), None if b is None else b.to(dtype)
        if self.bn is None:
            return w, b
        if not self.bn.track_running_stats:
            raise QuantizerError(f"{type(self).__name__}(batchnorm=True) with track_running_stats=False cannot be "
                                 "evaluated or exported: BatchNorm needs running statistics to fold into the weights")
        return fold_batchnorm_params(w, b, self.bn, self.bn.running_mean.to(w.dtype),
                                    self.bn.running_var.to(w.dtype))

    def quantized(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantized weight and bias (differentiable: STE and f surrogate)."""
        w, b = self.folded(x)
        if not self.training:
            w, b = w.to(torch.float64), None if b is None else b.to(torch.float64)
        wq = self.weight_quantizer(w)
        bq = self.bias_quantizer(b) if (b is not None and self.bias_quantizer is not None) else b
        return wq, bq

    def weight_bits(self) -> torch.Tensor:
        """Differentiable bit count of every quantized weight (the weight's shape); 0 = pruned.
        With a BatchNorm, the weights folded with its running statistics are counted."""
        w, _ = self._fold_running()
        return self.weight_quantizer.bits(w)

    def bias_bits(self) -> torch.Tensor:
        """Differentiable bit count of every quantized bias element, shape (out,)."""
        _, b = self._fold_running()
        if b is None or self.bias_quantizer is None:
            return torch.zeros(self.out_channels_, device=self.weight.device)
        return self.bias_quantizer.bits(b)
