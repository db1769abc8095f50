"""QAT layers: an input quantizer, activation quantizers and a quantized Linear layer.

Each layer's evaluation forward pass is, value for value, the Graph op it exports to (by its
``rtl4ml_export`` method, the export protocol of :mod:`rtl4ml.torch_common`):

* :class:`QInput`    -> the graph's ``Input`` node, with the quantizer's per-element types;
* :class:`QLinear`   -> ``Dense`` with the quantized (BatchNorm-folded) weights and bias;
  the product-sum is exact, as in hardware;
* :class:`QReLU`     -> ``ReLU`` then ``Quantize``;
* :class:`QActivation` -> ``Quantize`` (optionally after a ReLU).

In training mode the layers compute in the module's dtype (float32 is fine). In evaluation
mode they compute in float64 whatever the module's dtype: quantization is exact there, and
a float64 product-sum is exact while it stays below 2**53 (checked at export).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..fixed import FixedTypeArray
from ..torch_common import fold_batchnorm_params
from .export import export_activation, export_input, export_linear, quantized_params
from .quantizer import ActivationQuantizer, QuantizerError, WeightQuantizer, cast_checked


class QActivation(nn.Module):
    """Quantizes activations (after an optional ReLU) to learnable per-element fixed-point types.

    ``size`` is the number of features; leave it ``None`` to take it from the first batch
    (run one forward pass before creating the optimizer). Other keyword arguments go to
    :class:`~rtl4ml.nn.quantizer.ActivationQuantizer` (``granularity``, ``init_f``,
    ``rounding``, ``overflow``, ``signed``, ``init_i``, ``f_bounds``, ``i_bounds``).
    """

    activation: str | None = None

    def __init__(self, size: int | None = None, *, activation: str | None = None, **quantizer) -> None:
        super().__init__()
        if activation is not None:
            self.activation = activation
        if self.activation not in (None, "relu"):
            raise QuantizerError(f"activation must be None or 'relu', got {self.activation!r}")
        if self.activation == "relu":
            quantizer.setdefault("signed", False)
        self.quantizer = ActivationQuantizer(size, **quantizer)

    @property
    def size(self) -> int | None:
        return self.quantizer.size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            x = torch.relu(x)
        return self.quantizer(x)

    def fixed_types(self) -> FixedTypeArray:
        """The per-element types of this layer's output (after calibration)."""
        return self.quantizer.fixed_types()

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        """Append this layer's Graph nodes (ReLU, Quantize); returns the output node."""
        return export_activation(self, ctx, name, inputs)


class QReLU(QActivation):
    """``quantize(relu(x))`` with unsigned per-element types (WRAP: integer bits from calibration)."""

    activation = "relu"

    def __init__(self, size: int | None = None, **quantizer) -> None:
        super().__init__(size, **quantizer)


class QInput(QActivation):
    """The model's input quantizer; its types become the design's input types.

    Defaults to ``overflow="SAT"`` with learnable integer bits: inputs are quantized (and
    clipped) before they reach the hardware, so saturation costs nothing there. Feed it
    standardized features (subtract the training mean, divide by the standard deviation).
    """

    def __init__(self, size: int, **quantizer) -> None:
        quantizer.setdefault("overflow", "SAT")
        super().__init__(size, **quantizer)

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        """The model input this layer reads becomes a Graph input with the quantizer's types."""
        return export_input(self, ctx, name, inputs)


class QLinear(nn.Module):
    """``y = x @ Wq.T + bq`` with weights and bias quantized to learnable per-element precision.

    ``granularity`` of the weights' fractional bits: ``"element"`` (one per weight, the
    default), ``"channel"`` (one per output neuron) or ``"layer"``. ``batchnorm=True`` adds a
    BatchNorm1d on the output that is folded into the weights *before* they are quantized,
    during training as at export, so the exported Dense layer is exactly what was trained.
    The output is not rounded: follow with :class:`QReLU` / :class:`QActivation`.

    An input ``(N, ..., in_features)`` applies the same weights to every row (particle,
    position), as the exported Dense does (one adder graph, instantiated per row); its EBOPs
    count every row with its own input bits.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, batchnorm: bool = False,
                 granularity: str = "element", init_f: float = 6.0, bias_init_f: float | None = None,
                 rounding: str = "RND", f_bounds: tuple[float, float] = (-16, 24), eps: float = 1e-5,
                 momentum: float = 0.1) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = nn.Parameter(torch.empty(self.out_features, self.in_features))
        self.bias = nn.Parameter(torch.empty(self.out_features)) if bias else None
        self.reset_parameters()
        self.weight_quantizer = WeightQuantizer((self.out_features, self.in_features), granularity=granularity,
                                                init_f=init_f, rounding=rounding, f_bounds=f_bounds)
        has_bias = bias or batchnorm
        self.bias_quantizer = WeightQuantizer(
            (self.out_features,), granularity="layer" if granularity == "layer" else "element",
            init_f=init_f if bias_init_f is None else bias_init_f, rounding=rounding, f_bounds=f_bounds,
        ) if has_bias else None
        self.bn = nn.BatchNorm1d(self.out_features, eps=eps, momentum=momentum) if batchnorm else None

    def reset_parameters(self) -> None:
        """As ``nn.Linear``: Kaiming-uniform weights, uniform bias."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, batchnorm={self.bn is not None}")

    # ------------------------------------------------------------------ folding

    def folded(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The float weight and bias before quantization (BatchNorm folded in).

        Training: the BatchNorm uses the batch statistics of ``x`` (and updates its running
        ones); evaluation and export: the running statistics, folded in float64.
        """
        if self.bn is None:
            return self.weight, self.bias
        if self.training and x is not None:
            bn = self.bn
            y = F.linear(x, self.weight, self.bias).reshape(-1, self.out_features)   # rows: samples x particles
            mean, var = y.mean(0), y.var(0, unbiased=False)
            if bn.track_running_stats:
                with torch.no_grad():
                    n = y.shape[0]
                    m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked + 1)
                    bn.running_mean.mul_(1 - m).add_(m * mean.detach().to(bn.running_mean.dtype))
                    unbiased = var.detach() * (n / max(n - 1, 1))
                    bn.running_var.mul_(1 - m).add_(m * unbiased.to(bn.running_var.dtype))
                    bn.num_batches_tracked += 1
            return fold_batchnorm_params(self.weight, self.bias, self.bn, mean, var)
        return self._fold_running(torch.float64)

    def _fold_running(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Weight and bias with the BatchNorm's running statistics folded in (in ``dtype``)."""
        w, b = self.weight, self.bias
        if dtype is not None:
            w, b = w.to(dtype), None if b is None else b.to(dtype)
        if self.bn is None:
            return w, b
        if not self.bn.track_running_stats:
            raise QuantizerError("QLinear(batchnorm=True) with track_running_stats=False cannot be evaluated or "
                                 "exported: BatchNorm needs running statistics to fold into the weights")
        return fold_batchnorm_params(w, b, self.bn, self.bn.running_mean.to(w.dtype),
                                    self.bn.running_var.to(w.dtype))

    # ------------------------------------------------------------------ forward

    def quantized(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Quantized weight (out, in) and bias (differentiable: STE and f surrogate)."""
        w, b = self.folded(x)
        if not self.training:
            w = w.to(torch.float64)
            b = None if b is None else b.to(torch.float64)
        wq = self.weight_quantizer(w)
        bq = self.bias_quantizer(b) if (b is not None and self.bias_quantizer is not None) else b
        return wq, bq

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 2 or x.shape[-1] != self.in_features:
            raise QuantizerError(f"QLinear({self.in_features}, {self.out_features}) received input of shape "
                                 f"{tuple(x.shape)}; it applies to the last axis (N, ..., {self.in_features})")
        if self.training:
            wq, bq = self.quantized(x)
            return F.linear(x, wq, bq)
        wq, bq = self.quantized()
        y = F.linear(x.to(torch.float64), wq, bq)
        return cast_checked(y, self.weight.dtype, self)

    # ------------------------------------------------------------------ resources and export

    def weight_bits(self) -> torch.Tensor:
        """Differentiable bit count of every quantized weight, shape (out, in); 0 = pruned.

        With a BatchNorm, the weights folded with its running statistics are counted.
        """
        w, _ = self._fold_running()
        return self.weight_quantizer.bits(w)

    def bias_bits(self) -> torch.Tensor:
        """Differentiable bit count of every quantized bias element, shape (out,)."""
        _, b = self._fold_running()
        if b is None or self.bias_quantizer is None:
            return torch.zeros(self.out_features, device=self.weight.device)
        return self.bias_quantizer.bits(b)

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        """Append this layer's Dense node (exact quantized parameters); returns its name."""
        return export_linear(self, ctx, name, inputs)

    def export_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact float64 weight (in, out) and bias (out,) of the exported Dense layer."""
        w, b = quantized_params(self, self.out_features)
        return w.T.copy(), b
