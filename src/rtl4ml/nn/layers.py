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

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..fixed import FixedTypeArray
from .export import export_activation, export_input, export_linear, quantized_params
from .quantizer import ActivationQuantizer, QuantizerError, cast_checked
from .weighted import QWeightedLayer


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


class QLinear(QWeightedLayer):
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
        self._init_quantizers(self.out_features, bias or batchnorm,
                              nn.BatchNorm1d(self.out_features, eps=eps, momentum=momentum) if batchnorm else None,
                              granularity=granularity, init_f=init_f, bias_init_f=bias_init_f, rounding=rounding,
                              f_bounds=f_bounds)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, batchnorm={self.bn is not None}")

    # ------------------------------------------------------------------ forward

    _channel_axis = -1

    def _float_output(self, x, w, b):
        return F.linear(x, w, b)

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

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        """Append this layer's Dense node (exact quantized parameters); returns its name."""
        return export_linear(self, ctx, name, inputs)

    def export_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact float64 weight (in, out) and bias (out,) of the exported Dense layer."""
        w, b = quantized_params(self, self.out_features)
        return w.T.copy(), b
