"""QAT convolutions and pooling: QConv1d, QConv2d, QMaxPool1d/2d, QAvgPool1d/2d.

As for :class:`~rtl4ml.nn.QLinear`, the evaluation forward pass is the exported op value
for value: a convolution of exactly quantized (BatchNorm-folded) weights computed in
float64, exact while every partial sum stays below 2**53 (checked at export); a max pool is
exact; an average pool is the window's sum times ``1/count`` quantized to ``scale_type``
(exact and free when the count is a power of two).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..fixed import parse_type, quantize
from .export import export_avgpool, export_conv, export_maxpool, quantized_params
from .quantizer import QuantizerError, cast_checked
from .weighted import QWeightedLayer

_CONV = {1: F.conv1d, 2: F.conv2d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def _tuple(v, n: int) -> tuple[int, ...]:
    return (int(v),) * n if isinstance(v, (int, np.integer)) else tuple(int(a) for a in v)


class _QConv(QWeightedLayer):
    """``conv(x, Wq, bq)`` with weights and bias quantized to learnable per-element precision.

    ``granularity`` of the weights' fractional bits: ``"element"`` (default), ``"channel"``
    (one per output channel) or ``"layer"``. ``batchnorm=True`` folds a BatchNorm of the
    output into the weights before they are quantized, in training as at export.
    """

    ndim: int = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, *, batchnorm: bool = False, granularity: str = "element",
                 init_f: float = 6.0, bias_init_f: float | None = None, rounding: str = "RND",
                 f_bounds: tuple[float, float] = (-16, 24), eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        n = self.ndim
        if in_channels % groups or out_channels % groups:
            raise QuantizerError(f"groups={groups} must divide in_channels={in_channels} and "
                                 f"out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size = _tuple(kernel_size, n)
        self.stride, self.padding, self.dilation = _tuple(stride, n), _tuple(padding, n), _tuple(dilation, n)
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.empty(self.out_channels)) if bias else None
        self.reset_parameters()
        self._init_quantizers(self.out_channels, bias or batchnorm,
                              _BN[n](self.out_channels, eps=eps, momentum=momentum) if batchnorm else None,
                              granularity=granularity, init_f=init_f, bias_init_f=bias_init_f, rounding=rounding,
                              f_bounds=f_bounds)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}, batchnorm={self.bn is not None}")

    def _conv(self, x, w, b):
        return _CONV[self.ndim](x, w, b, self.stride, self.padding, self.dilation, self.groups)

    _float_output = _conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != self.ndim + 2 or x.shape[1] != self.in_channels:
            raise QuantizerError(f"{type(self).__name__}({self.in_channels}, {self.out_channels}) expects an input "
                                 f"of shape (N, {self.in_channels}, {', '.join('L' * self.ndim)}), "
                                 f"got {tuple(x.shape)}")
        if self.training:
            wq, bq = self.quantized(x)
            return self._conv(x, wq, bq)
        wq, bq = self.quantized()
        return cast_checked(self._conv(x.to(torch.float64), wq, bq), self.weight.dtype, self)

    def ebops(self, bits_in: torch.Tensor, accumulator: bool = True) -> torch.Tensor:
        """``sum over output positions and taps of bits(x) * bits(w)`` (padding reads 0 bits),
        plus the accumulator term ``bits(x) + bits(w)`` per live tap: a convolution of the
        input's bit map with the weights' bit counts."""
        bw = self.weight_bits()
        bx = bits_in.to(bw.dtype).reshape((1, self.in_channels) + tuple(bits_in.shape[-self.ndim:]))
        term = self._conv(bx, bw, None).sum()
        if accumulator:
            live = (bw.detach() > 0).to(bw.dtype)
            term = term + self._conv(bx, live, None).sum() + self._conv(torch.ones_like(bx), bw * live, None).sum()
        return term

    def export_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact float64 weight (C_out, C_in/groups, *kernel) and bias (C_out,)."""
        return quantized_params(self, self.out_channels)

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        return export_conv(self, ctx, name, inputs)


class QConv1d(_QConv):
    """Quantized ``nn.Conv1d`` (channels first: input ``(N, C, L)``)."""

    ndim = 1


class QConv2d(_QConv):
    """Quantized ``nn.Conv2d`` (channels first: input ``(N, C, H, W)``)."""

    ndim = 2


class _QMaxPool(nn.Module):
    ndim = 0

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1) -> None:
        super().__init__()
        n = self.ndim
        self.kernel_size = _tuple(kernel_size, n)
        self.stride = self.kernel_size if stride is None else _tuple(stride, n)
        self.padding, self.dilation = _tuple(padding, n), _tuple(dilation, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fn = F.max_pool1d if self.ndim == 1 else F.max_pool2d
        return fn(x, self.kernel_size, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        return export_maxpool(self, ctx, name, inputs)


class QMaxPool1d(_QMaxPool):
    """Max pooling; exact (the exported Pool op)."""

    ndim = 1


class QMaxPool2d(_QMaxPool):
    """Max pooling; exact (the exported Pool op)."""

    ndim = 2


class _QAvgPool(nn.Module):
    ndim = 0

    def __init__(self, kernel_size, stride=None, padding=0, scale_type: str = "ufixed<16,1,RND,SAT>") -> None:
        super().__init__()
        n = self.ndim
        self.kernel_size = _tuple(kernel_size, n)
        self.stride = self.kernel_size if stride is None else _tuple(stride, n)
        self.padding = _tuple(padding, n)
        count = int(np.prod(self.kernel_size))
        #: ``1/count`` as the hardware multiplies by it (exact for a power of two)
        self.scale = float(quantize(np.array(1.0 / count), parse_type(scale_type)))
        if self.scale == 0:
            raise QuantizerError(f"scale_type {scale_type} rounds 1/{count} to zero")

    def window_sum(self, x: torch.Tensor) -> torch.Tensor:
        """The sum over each window (zero padding), exact in float64."""
        if self.ndim == 1:   # avg_pool1d has no divisor_override: a (k, 1) window in 2-d
            return F.avg_pool2d(x[..., None], (self.kernel_size[0], 1), (self.stride[0], 1), (self.padding[0], 0),
                                divisor_override=1)[..., 0]
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, divisor_override=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.window_sum(x) * self.scale
        return cast_checked(self.window_sum(x.to(torch.float64)) * self.scale, x.dtype, self)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, scale={self.scale}"

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        return export_avgpool(self, ctx, name, inputs)


class QAvgPool1d(_QAvgPool):
    """Average pooling as the hardware does it: the window's sum times ``1/count`` quantized."""

    ndim = 1


class QAvgPool2d(_QAvgPool):
    """Average pooling as the hardware does it: the window's sum times ``1/count`` quantized."""

    ndim = 2
